"""Grounded answers with a fallback chain: LLM primary -> LLM secondary -> extractive ->
escalate.

The decider's I/O shell builds a :class:`Question` from the retrieval result, calls
``responder.answer(question, on_token=...)`` and records the returned :class:`Answer`
(``answer.to_dict()``) in an event; replay reads the event and never calls an LLM.
"""

from agent.responder.chain import LLMLink, Rejected, Responder
from agent.responder.extractive import ExtractiveResponder
from agent.responder.grounding import GroundingPolicy, GroundingVerdict, check_answer
from agent.responder.injection import InjectionReport, detect_injection
from agent.responder.ports import LLM, LLMReply, LLMTimeout, LLMUnavailable, Message
from agent.responder.prompt import CANARY, SYSTEM_PROMPT, build_messages
from agent.responder.types import Answer, Passage, Question
from agent.responder.wiring import build_responder

__all__ = [
    "CANARY",
    "LLM",
    "SYSTEM_PROMPT",
    "Answer",
    "ExtractiveResponder",
    "GroundingPolicy",
    "GroundingVerdict",
    "InjectionReport",
    "LLMLink",
    "LLMReply",
    "LLMTimeout",
    "LLMUnavailable",
    "Message",
    "Passage",
    "Question",
    "Rejected",
    "Responder",
    "build_messages",
    "build_responder",
    "check_answer",
    "detect_injection",
]
