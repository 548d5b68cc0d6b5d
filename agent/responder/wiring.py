"""The one place a :class:`Responder` is built from settings.

Reads, from any settings object (``streams.settings.Settings``), the fields
``llm_base_url``, ``llm_model``, ``llm_api_key``, ``llm_timeout_s``,
``llm_budget_tokens_per_tenant_day`` and the same with ``llm2_`` for the second LLM, plus
``llm_breaker_failures``, ``llm_breaker_reset_s``, ``responder_min_support`` and
``responder_min_confidence``. A missing field takes its default; an LLM without a base
URL or model is not configured, so with none the chain starts at the extractive link.
"""

from __future__ import annotations

from typing import Any

from agent.responder.budget import TokenBudget
from agent.responder.chain import FallbackHook, LLMLink, Responder
from agent.responder.extractive import ExtractiveResponder
from agent.responder.grounding import GroundingPolicy
from agent.responder.openai_llm import LLMSettings, OpenAICompatibleLLM
from agent.responder.ports import LLM
from models.chain import CircuitBreaker

LINK_NAMES = {"llm": "llm:primary", "llm2": "llm:secondary"}


def llm_settings(settings: object, prefix: str) -> LLMSettings | None:
    """The ``prefix`` LLM's settings, None when it is not configured."""

    def get(name: str, default: Any) -> Any:
        value = getattr(settings, f"{prefix}_{name}", None)
        return default if value is None else value

    base_url, model = get("base_url", ""), get("model", "")
    if not base_url or not model:
        return None
    return LLMSettings(
        base_url=str(base_url),
        model=str(model),
        api_key=str(get("api_key", "unused")),
        timeout_s=float(get("timeout_s", 10.0)),
        budget_tokens_per_tenant_day=int(get("budget_tokens_per_tenant_day", 200_000)),
        cost_prompt_1k=float(get("cost_prompt_1k", 0.0)),
        cost_completion_1k=float(get("cost_completion_1k", 0.0)),
    )


def build_responder(
    settings: object,
    *,
    llms: dict[str, LLM] | None = None,
    on_fallback: FallbackHook | None = None,
) -> Responder:
    """Links for each configured LLM (``llms`` overrides adapters by prefix, for tests)."""
    failures = int(getattr(settings, "llm_breaker_failures", None) or 3)
    reset_s = float(getattr(settings, "llm_breaker_reset_s", None) or 30.0)
    links = []
    for prefix, name in LINK_NAMES.items():
        config = llm_settings(settings, prefix)
        if config is None:
            continue
        adapter = (llms or {}).get(prefix) or OpenAICompatibleLLM(config)
        links.append(
            LLMLink(
                name=name,
                llm=adapter,
                timeout_s=config.timeout_s,
                breaker=CircuitBreaker(failures, reset_s),
                budget=TokenBudget(config.budget_tokens_per_tenant_day),
                max_reply_tokens=config.max_tokens,
                cost_prompt_1k=config.cost_prompt_1k,
                cost_completion_1k=config.cost_completion_1k,
            )
        )
    policy = GroundingPolicy(min_support=float(getattr(settings, "responder_min_support", 0.55)))
    extractive = ExtractiveResponder(
        min_confidence=float(getattr(settings, "responder_min_confidence", 0.35))
    )
    return Responder(links, extractive=extractive, policy=policy, on_fallback=on_fallback)
