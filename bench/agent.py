"""Agent benchmark: per-turn decision latency through the log driver, without and with an LLM.

Plays the conversation suite (default ``tests/scenario/conversations``) turn by turn
through the same steps the worker runs (enrich -> decide -> act, knowledge-base answers
included), as ``casestream eval conversations`` does, twice:
  no_llm: the embedded default (extractive answers from the knowledge base);
  llm: the responder's primary link is an OpenAI-compatible server on 127.0.0.1
      (tests/fakes/openai_server.py, driven by the real ``openai`` client) that waits
      ``--llm-delay-ms`` before streaming a grounded answer (a sentence of the first
      retrieved passage, cited), so the LLM link's answer passes the grounding check.
Each LLM call is timed at the port (a decorator over the real adapter) and the turn clock
stops while it runs, so with the LLM a turn's time is what the agent adds around the call
(``llm_rest``: enrich, decide, retrieval, prompt, grounding check, events). Prints
progress to stderr and ends with one JSON line on stdout: p50/p99 of turns without an
LLM, of the rest with it (all turns, and the turns that asked for a knowledge-base
answer), of the LLM calls, and which link gave each answer.
Usage: python bench/agent.py [--conversations DIR] [--llm-delay-ms MS] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.evaluate import load_conversations, percentile, run_conversation
from agent.responder import LLM, LLMReply, Message, build_responder
from agent.responder.openai_llm import OpenAICompatibleLLM
from agent.responder.ports import TokenCallback
from agent.responder.wiring import llm_settings
from events.actions import ActionCompleted
from events.codec import AvroCodec
from events.registry import InProcessRegistry
from streams.act import Actor
from streams.bootstrap import build_kb_retriever, build_model, build_workflows_for
from streams.settings import Settings, load_settings
from streams.steps import Steps
from streams.topics import Topics
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer, user_message

#: A passage as the prompt carries it: ``[id] title`` then its text.
PASSAGE = re.compile(r"^\[([^\]\s]+)\] [^\n]*\n([^\n]+)", re.MULTILINE)


def log(msg: str) -> None:
    print(f"[bench-agent] {msg}", file=sys.stderr, flush=True)


def grounded_reply(body: dict[str, Any]) -> str:
    """The first sentence of the first passage in the prompt, cited."""
    match = PASSAGE.search(user_message(body) or "")
    if match is None:
        return "I don't know."
    sentence = re.split(r"(?<=[.!?])\s", match.group(2).strip(), maxsplit=1)[0]
    return f"{sentence} [{match.group(1)}]"


class TimedLLM:
    """The LLM port around another adapter: each call's wall time, and their running sum."""

    def __init__(self, inner: LLM) -> None:
        self.inner = inner
        self.calls_ms: list[float] = []
        self.spent_s = 0.0

    @property
    def model(self) -> str:
        return self.inner.model

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        on_token: TokenCallback | None = None,
    ) -> LLMReply:
        started = time.perf_counter()
        try:
            return self.inner.complete(messages, timeout_s=timeout_s, on_token=on_token)
        finally:
            elapsed = time.perf_counter() - started
            self.spent_s += elapsed
            self.calls_ms.append(elapsed * 1000.0)


def build_steps(settings: Settings, llm: TimedLLM | None, tenants: set[str]) -> Steps:
    """The worker's steps; adapters and each tenant's knowledge base built up front."""
    llms: dict[str, LLM] = {"llm": llm} if llm is not None else {}
    actor = Actor(
        workflows=lambda clock: build_workflows_for(settings, clock),
        responder=lambda: build_responder(settings, llms=llms),
        retriever=build_kb_retriever(settings),
    )
    actor.warm(sorted(tenants))  # as a worker does at start
    return Steps(
        AvroCodec(InProcessRegistry()),
        Topics(settings.topic_prefix),
        build_model(settings),
        actor=lambda: actor,
    )


def stats(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
    }


def play(steps: Steps, conversations: list[Any], llm: TimedLLM | None) -> dict[str, Any]:
    """Turn latencies; with an LLM, the turn clock stops while the LLM is called, so a
    turn's time is what the agent adds around the call (the ``rest``)."""

    def clock() -> float:
        return time.perf_counter() - (llm.spent_s if llm is not None else 0.0)

    turns: list[float] = []
    answer_turns: list[float] = []
    slowest: list[tuple[float, str, int, int]] = []
    links: dict[str, int] = {}
    for i, conv in enumerate(conversations):
        per_turn, latencies = run_conversation(steps, conv, clock=clock)
        for n, (events, ms) in enumerate(zip(per_turn, latencies, strict=True)):
            turns.append(ms)
            answers = [e for e in events if isinstance(e, ActionCompleted) and e.kind == "answer"]
            slowest = sorted([*slowest, (ms, conv.id, n + 1, len(answers))], reverse=True)[:5]
            if answers:
                answer_turns.append(ms)
            for answer in answers:
                links[answer.link or "none"] = links.get(answer.link or "none", 0) + 1
        if (i + 1) % 50 == 0:
            log(f"  {i + 1}/{len(conversations)} conversations")
    return {
        "turns": stats(turns),
        "answer_turns": stats(answer_turns),
        "llm_calls": stats(llm.calls_ms if llm is not None else []),
        "answers_by_link": links,
        # the turns behind the p99: (ms, conversation, turn, knowledge-base answers in it)
        "slowest": [[round(ms, 1), cid, turn, n] for ms, cid, turn, n in slowest],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=Path, default=Path("tests/scenario/conversations"))
    parser.add_argument("--llm-delay-ms", type=float, default=200.0, help="LLM time to first byte")
    parser.add_argument("--limit", type=int, default=0, help="only the first N conversations")
    args = parser.parse_args()
    conversations = load_conversations(args.conversations)
    if args.limit:
        conversations = conversations[: args.limit]
    log(f"{len(conversations)} conversations from {args.conversations}")
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        base = load_settings(kb_store=Path(tmp) / "kb")
        tenants = {c.tenant for c in conversations}
        steps = build_steps(base, None, tenants)
        run_conversation(steps, conversations[0])  # warm-up: models, knowledge base
        log("no LLM (extractive answers)")
        started = time.perf_counter()
        no_llm = play(steps, conversations, None)
        log(f"  done in {time.perf_counter() - started:.1f}s: {no_llm['turns']}")
        behaviour = Behaviour(text=grounded_reply, delay_s=args.llm_delay_ms / 1000.0)
        with FakeOpenAIServer(default=behaviour) as server:
            settings = load_settings(
                kb_store=Path(tmp) / "kb", llm_base_url=server.base_url, llm_model="bench-llm"
            )
            config = llm_settings(settings, "llm")
            assert config is not None
            llm = TimedLLM(OpenAICompatibleLLM(config))
            steps = build_steps(settings, llm, tenants)
            run_conversation(steps, conversations[0])
            log(f"LLM at {server.base_url}, {args.llm_delay_ms:.0f} ms before the first byte")
            started = time.perf_counter()
            with_llm = play(steps, conversations, llm)
            log(f"  done in {time.perf_counter() - started:.1f}s: {with_llm['turns']}")
    print(
        json.dumps(
            {
                "conversations": len(conversations),
                "llm_delay_ms": args.llm_delay_ms,
                "no_llm_p50_ms": no_llm["turns"].get("p50_ms"),
                "no_llm_p99_ms": no_llm["turns"].get("p99_ms"),
                "llm_call_p50_ms": with_llm["llm_calls"].get("p50_ms"),
                "llm_rest_p50_ms": with_llm["turns"].get("p50_ms"),
                "llm_rest_p99_ms": with_llm["turns"].get("p99_ms"),
                "llm_rest_answer_turns_p99_ms": with_llm["answer_turns"].get("p99_ms"),
                "no_llm": no_llm,
                "llm": with_llm,
            }
        )
    )


if __name__ == "__main__":
    main()
