"""``casestream eval conversations DIR``: scripted conversations through the log driver.

Each conversation of ``DIR/*.yaml`` (format: ``tests/scenario/conversations/README.md``)
is played turn by turn through the same :class:`~streams.steps.Steps` the live worker
runs (enrich with the configured model, then decide), in-process and without a broker,
via :class:`~replay.driver.LogDriver`. The observed outcome is derived from the output
events only, by the rules below, and compared with the conversation's ``expect`` block.

Observation rules (from the output events of the whole conversation):

* **escalated**: some ``CaseEscalated`` was emitted. The escalation reason is that
  event's ``reason`` (the first case's), mapped to the README's vocabulary by
  :data:`REASON_ALIASES` (e.g. the decider's ``explicit_human_request`` is
  ``human_request``); a reason without an alias is compared verbatim.
* **clarified**: not escalated, and the conversation's last ``DecisionMade`` has action
  ``clarify`` (the agent's last word is a question: ``ClarificationRequested``).
* **resolved**: not escalated, and the last ``DecisionMade`` is ``reply`` or ``act``.
* **unresolved**: anything else (no decision at all); never matches an expectation.

* **topics**: the ``intent`` of every ``DecisionMade`` the agent acted on (action
  ``reply`` or ``act``, or ``escalate`` when the intent is the top intent the model gave
  for that very message), in order, consecutive repeats collapsed. The expected
  ``topics`` must be a subsequence of them.
* **actions**: every value of a known action (:data:`ACTIONS`) found in a string field
  ``action``, ``result``, ``outcome``, ``kind`` or ``reason`` of any output event other
  than the customer's own (``MessageReceived``/``MessageEnriched``). Today no event
  records a workflow result, so every expected action is missing: that is the baseline.
* **flags**: the union of the ``flags`` of every output event (the model's flags on
  ``MessageEnriched``, which include the connector's ``truncated``) and of
  ``DecisionMade`` reasons that name a known flag (:data:`FLAGS`). Expected flags must
  all be present; unlisted ones are allowed, except that a conversation tagged
  ``benign-sql-words`` must not be flagged ``sql_injection``.
* a dead letter (``EventRejected``) in any turn fails the conversation.

Latency of a turn: wall time from handing its ``MessageReceived`` record to the driver
to the last output event of that turn (enrich + decide + encoding), p50/p99 in ms over
all turns. The model is loaded and warmed up once before the clock starts.

Every message passes the web-chat connector's edge cleaning first (truncation to
``settings.max_message_chars``, flag ``truncated``), as it would live. With
``--include-generated`` (default) two built-in conversations exercise the
100,000-character input the README asks the runner to generate.
"""

from __future__ import annotations

import json
import math
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from events.base import Event, derive_event_id, origin_envelope
from events.codec import AvroCodec
from events.conversation import MessageReceived
from events.decisions import CaseEscalated, DecisionMade
from events.delivery import EventRejected
from events.enrichment import MessageEnriched
from events.registry import InProcessRegistry
from processors.taxonomy import CATEGORIES, OUT_OF_SCOPE
from replay.driver import LogDriver
from streams.steps import Record, Steps
from streams.topics import Topics

OUTCOMES = ("resolved", "escalated", "clarified")
TOPICS = frozenset(
    [f"{cat}/{sub}" for cat, subs in CATEGORIES.items() for sub in subs] + [OUT_OF_SCOPE]
)
ACTIONS = frozenset(
    {
        "password_reset_sent",
        "token_expiry_identified",
        "rate_limit_explained",
        "malformed_field_identified",
        "invoice_sent",
        "refund_issued",
    }
)
FLAGS = frozenset(
    {"prompt_injection", "sql_injection", "loop_detected", "conflict", "context_switch"}
)
#: Flags the built-in generated conversations may expect besides :data:`FLAGS`.
GENERATED_FLAGS = frozenset({"truncated"})
REASONS = frozenset(
    {
        "human_request",
        "frustration",
        "negative_trend",
        "loop",
        "refund_over_limit",
        "identity_not_verified",
        "out_of_scope",
        "low_confidence",
    }
)
#: The decider's escalation reasons -> the README's vocabulary.
REASON_ALIASES: dict[str, str] = {
    "explicit_human_request": "human_request",
    "customer_frustrated": "frustration",
    "frustration_trend": "negative_trend",
    "negative_trajectory": "negative_trend",
    "loop_detected": "loop",
    "identity_unverified": "identity_not_verified",
}
#: Event fields whose string values may name an action result.
ACTION_FIELDS = ("action", "result", "outcome", "kind", "reason")
ACTING = ("reply", "act")
BENIGN_SQL_TAG = "benign-sql-words"
START = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)
TURN_GAP = timedelta(seconds=30)
PRODUCER = "eval.conversations"
PRODUCER_VERSION = "0.1.0"
GENERATED_SOURCE = "<generated>"
LONG_INPUT = 100_000


class ConversationFileError(ValueError):
    """A conversation file that cannot be used; the message names the file and the id."""


@dataclass(frozen=True, slots=True)
class Expectation:
    outcome: str
    topics: tuple[str, ...]
    actions: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    escalation_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    tenant: str
    tags: tuple[str, ...]
    turns: tuple[str, ...]
    expect: Expectation
    source: str


@dataclass(frozen=True, slots=True)
class Observed:
    outcome: str
    escalation_reason: str | None
    topics: tuple[str, ...]
    actions: tuple[str, ...]
    flags: tuple[str, ...]
    rejected: tuple[str, ...]
    trail: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    conversation: Conversation
    observed: Observed
    failures: tuple[str, ...]
    latencies_ms: tuple[float, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


# --- loading -------------------------------------------------------------------------


def _strings(value: Any, what: str, *, non_empty_items: bool = False) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings, got {value!r}")
    if non_empty_items and not all(v.strip() for v in value):
        raise ValueError(f"{what} must not contain empty strings")
    return tuple(value)


def _check_vocabulary(values: Iterable[str], allowed: Iterable[str], what: str) -> None:
    allowed_set = set(allowed)
    unknown = sorted({v for v in values if v not in allowed_set})
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; allowed: {sorted(allowed_set)}")


def parse_conversation(
    data: Any, source: str, *, flags_allowed: frozenset[str] = FLAGS, check_reason: bool = True
) -> Conversation:
    """One conversation mapping -> :class:`Conversation`; raises ``ValueError``."""
    if not isinstance(data, dict):
        raise ValueError(f"a conversation must be a mapping, got {type(data).__name__}")
    cid = data.get("id")
    if not isinstance(cid, str) or not cid.strip():
        raise ValueError("missing or empty 'id'")
    tenant = data.get("tenant")
    if not isinstance(tenant, str) or not tenant.strip() or "/" in tenant:
        raise ValueError("'tenant' must be a non-empty string without '/'")
    tags = _strings(data.get("tags"), "'tags'", non_empty_items=True)
    if not tags:
        raise ValueError("'tags' must be a non-empty list of strings")
    turns = _strings(data.get("turns"), "'turns'", non_empty_items=True)
    if not turns:
        raise ValueError("'turns' must be a non-empty list of non-empty strings")
    expect = data.get("expect")
    if not isinstance(expect, dict):
        raise ValueError("missing 'expect' mapping")
    outcome = expect.get("outcome")
    if outcome not in OUTCOMES:
        raise ValueError(f"expect.outcome must be one of {list(OUTCOMES)}, got {outcome!r}")
    if "topics" not in expect:
        raise ValueError("missing expect.topics (write [] for none)")
    topics = _strings(expect.get("topics"), "expect.topics")
    _check_vocabulary(topics, TOPICS, "expect.topics")
    actions = _strings(expect.get("actions"), "expect.actions")
    _check_vocabulary(actions, ACTIONS, "expect.actions")
    flags = _strings(expect.get("flags"), "expect.flags")
    _check_vocabulary(flags, flags_allowed, "expect.flags")
    reason = expect.get("escalation_reason")
    if reason is not None and reason not in REASONS:
        raise ValueError(f"expect.escalation_reason {reason!r} not in {sorted(REASONS)}")
    if check_reason and (outcome == "escalated") != (reason is not None):
        raise ValueError("expect.escalation_reason is set if and only if outcome is escalated")
    return Conversation(
        id=cid,
        tenant=tenant,
        tags=tags,
        turns=turns,
        expect=Expectation(outcome, topics, actions, flags, reason),
        source=source,
    )


def load_file(path: Path) -> list[Conversation]:
    """The conversations of one YAML file; :class:`ConversationFileError` names the culprit."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConversationFileError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, list):
        raise ConversationFileError(f"{path}: must hold a list of conversations")
    out: list[Conversation] = []
    for n, item in enumerate(data, 1):
        name = item.get("id") if isinstance(item, dict) else None
        where = f"{path}: conversation #{n}" + (f" (id {name!r})" if name else "")
        try:
            out.append(parse_conversation(item, path.name))
        except ValueError as exc:
            raise ConversationFileError(f"{where}: {exc}") from exc
    return out


#: The issue's JSON Lines outcomes -> the README's.
JSONL_OUTCOMES = {
    "resolved_answer": "resolved",
    "resolved_workflow": "resolved",
    "out_of_scope": "resolved",
    "clarified": "clarified",
    "escalated": "escalated",
}


def load_jsonl(path: Path) -> list[Conversation]:
    """The issue's interchange format: one ``{"id", "turns", "expected", "fixtures"}`` per
    line. Only the outcome is checked (no topics, actions or reason are given); the tenant
    is ``tenant`` when present, else ``default``; ``fixtures`` are not used yet."""
    out: list[Conversation] = []
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversationFileError(f"{path}: cannot read: {exc}") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        item: Any = None
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("a line must be a JSON object")
            expected = item.get("expected")
            if expected not in JSONL_OUTCOMES:
                raise ValueError(f"'expected' must be one of {sorted(JSONL_OUTCOMES)}")
            outcome = JSONL_OUTCOMES[expected]
            data = {
                "id": item.get("id"),
                "tenant": item.get("tenant", "default"),
                "tags": [str(expected)],
                "turns": item.get("turns"),
                "expect": {"outcome": outcome, "topics": []},
            }
            conv = parse_conversation(data, path.name, check_reason=False)
        except ValueError as exc:
            name = item.get("id") if isinstance(item, dict) else None
            where = f"{path}: line {n}" + (f" (id {name!r})" if name else "")
            raise ConversationFileError(f"{where}: {exc}") from exc
        out.append(conv)
    return out


def load_conversations(path: Path) -> list[Conversation]:
    """Every conversation of ``path`` (a ``.yaml``/``.jsonl`` file, or a folder of them),
    ids unique across files."""
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.jsonl")])
        if not files:
            raise ConversationFileError(f"{path}: no *.yaml or *.jsonl files")
    elif path.is_file():
        files = [path]
    else:
        raise ConversationFileError(f"{path}: no such file or directory")
    seen: dict[str, str] = {}
    out: list[Conversation] = []
    for file in files:
        for conv in load_jsonl(file) if file.suffix == ".jsonl" else load_file(file):
            if conv.id in seen:
                raise ConversationFileError(
                    f"{file}: conversation id {conv.id!r} already used in {seen[conv.id]}"
                )
            seen[conv.id] = file.name
            out.append(conv)
    return out


def generated_conversations() -> list[Conversation]:
    """The 100,000-character edge case (README: generated by the runner, not stored)."""
    tags = ("edge-case", "long-input", "generated")
    return [
        Conversation(
            id="gen-long-input-a",
            tenant="acme",
            tags=tags,
            turns=("A" * LONG_INPUT,),
            # Contentless: truncated, processed without error, and the agent asks.
            expect=Expectation("clarified", (), (), ("truncated",), None),
            source=GENERATED_SOURCE,
        ),
        Conversation(
            id="gen-long-input-question",
            tenant="acme",
            tags=tags,
            turns=("How do I export my contacts to a CSV file? " + "A" * LONG_INPUT,),
            expect=Expectation("resolved", ("DATA/Export",), (), ("truncated",), None),
            source=GENERATED_SOURCE,
        ),
    ]


# --- running -------------------------------------------------------------------------


def _clean(text: str, limit: int) -> tuple[str, int, bool, tuple[str, ...]]:
    """The web-chat connector's edge cleaning (truncation, control characters)."""
    from connectors.webchat_input import clean_text

    cleaned = clean_text(text, limit)
    return cleaned.text, cleaned.original_length, cleaned.truncated, cleaned.flags


def message_event(conv: Conversation, index: int, max_chars: int) -> MessageReceived:
    """The ``index``-th customer message of ``conv``, with a deterministic id and time."""
    text, original_length, truncated, flags = _clean(conv.turns[index], max_chars)
    return MessageReceived(
        envelope=origin_envelope(
            MessageReceived,
            tenant_id=conv.tenant,
            conversation_id=conv.id,
            producer=PRODUCER,
            producer_version=PRODUCER_VERSION,
            event_id=derive_event_id(f"{conv.tenant}/{conv.id}", "MessageReceived", index),
            occurred_at=START + TURN_GAP * index,
        ),
        message_id=f"{conv.id}-m{index}",
        channel="web_chat",
        text=text,
        original_length=original_length,
        truncated=truncated,
        flags=flags,
    )


def run_conversation(
    steps: Steps,
    conv: Conversation,
    *,
    max_chars: int = 10_000,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[list[Event]], list[float]]:
    """Output events per turn and each turn's latency in ms, through a fresh log driver."""
    driver = LogDriver(steps)
    per_turn: list[list[Event]] = []
    latencies: list[float] = []
    for index in range(len(conv.turns)):
        event = message_event(conv, index, max_chars)
        out = steps.output(event)
        when = int(event.envelope.occurred_at.timestamp() * 1000)
        record = Record(out.topic, 0, index, out.key, out.value, when)
        started = last = clock()
        events: list[Event] = []
        for output in driver.run([record]):
            events.append(output.event)
            last = clock()
        per_turn.append(events)
        latencies.append((last - started) * 1000.0)
    return per_turn, latencies


# --- observing and judging -----------------------------------------------------------


def _collapse(items: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return tuple(out)


def _trail_line(turn: int, events: Sequence[Event]) -> str:
    parts: list[str] = []
    for e in events:
        if isinstance(e, MessageEnriched):
            top = f"{e.intents[0].label} {e.intents[0].score:.2f}" if e.intents else "no intent"
            second = (
                f", {e.intents[1].label} {e.intents[1].score:.2f}" if len(e.intents) > 1 else ""
            )
            flags = f" flags={','.join(e.flags)}" if e.flags else ""
            parts.append(
                f"[{top}{second}; {e.sentiment.label} fr={e.sentiment.frustration:.2f}{flags}]"
            )
        elif isinstance(e, DecisionMade):
            parts.append(f"{e.action}:{e.reason}({e.intent or '-'})")
        elif isinstance(e, CaseEscalated):
            parts.append(f"CaseEscalated:{e.reason}")
        elif isinstance(e, EventRejected):
            parts.append(f"REJECTED:{e.stage}:{e.reason[:80]}")
    return f"t{turn}: " + " ".join(parts)


def observe(per_turn: Sequence[Sequence[Event]]) -> Observed:
    """The observed outcome of a conversation from its output events (rules: module doc)."""
    escalation: CaseEscalated | None = None
    last_decision: DecisionMade | None = None
    topics: list[str] = []
    actions: list[str] = []
    flags: set[str] = set()
    rejected: list[str] = []
    trail: list[str] = []
    for turn, events in enumerate(per_turn, 1):
        trail.append(_trail_line(turn, events))
        top: str | None = None
        for e in events:
            if isinstance(e, MessageEnriched):
                top = e.intents[0].label if e.intents else None
            if isinstance(e, EventRejected):
                rejected.append(f"turn {turn} {e.stage}: {e.reason[:200]}")
            if isinstance(e, CaseEscalated) and escalation is None:
                escalation = e
            if isinstance(e, DecisionMade):
                last_decision = e
                acted = e.action in ACTING or (e.action == "escalate" and e.intent == top)
                if acted and e.intent:
                    topics.append(e.intent)
                if e.reason in FLAGS:
                    flags.add(e.reason)
            event_flags = getattr(e, "flags", None)
            if isinstance(event_flags, tuple):
                flags.update(f for f in event_flags if isinstance(f, str))
            if not isinstance(e, MessageReceived | MessageEnriched):
                for name in ACTION_FIELDS:
                    value = getattr(e, name, None)
                    if isinstance(value, str) and value in ACTIONS:
                        actions.append(value)
    if escalation is not None:
        outcome = "escalated"
        reason: str | None = REASON_ALIASES.get(escalation.reason, escalation.reason)
    else:
        reason = None
        if last_decision is None:
            outcome = "unresolved"
        elif last_decision.action == "clarify":
            outcome = "clarified"
        elif last_decision.action in ACTING:
            outcome = "resolved"
        else:
            outcome = "unresolved"
    return Observed(
        outcome=outcome,
        escalation_reason=reason,
        topics=_collapse(topics),
        actions=tuple(dict.fromkeys(actions)),
        flags=tuple(sorted(flags)),
        rejected=tuple(rejected),
        trail=tuple(trail),
    )


def first_unmatched(needle: Sequence[str], haystack: Sequence[str]) -> str | None:
    """The first item of ``needle`` that a greedy subsequence match cannot place, if any."""
    it = iter(haystack)
    for item in needle:
        if not any(item == h for h in it):
            return item
    return None


def is_subsequence(needle: Sequence[str], haystack: Sequence[str]) -> bool:
    return first_unmatched(needle, haystack) is None


def judge(conv: Conversation, seen: Observed) -> tuple[str, ...]:
    """Why ``seen`` does not meet ``conv.expect`` (empty: passed)."""
    exp = conv.expect
    why: list[str] = []
    if seen.rejected:
        why.append(f"dead letter: {seen.rejected[0]}")
    if seen.outcome != exp.outcome:
        why.append(f"outcome: expected {exp.outcome}, got {seen.outcome}")
    elif exp.escalation_reason is not None and seen.escalation_reason != exp.escalation_reason:
        why.append(
            f"escalation_reason: expected {exp.escalation_reason}, got {seen.escalation_reason}"
        )
    missing = first_unmatched(exp.topics, seen.topics)
    if missing is not None:
        why.append(
            f"topics: {missing} not handled (expected {list(exp.topics)} in order,"
            f" got {list(seen.topics)})"
        )
    for action in exp.actions:
        if action not in seen.actions:
            why.append(f"action missing: {action}")
    for flag in exp.flags:
        if flag not in seen.flags:
            why.append(f"flag missing: {flag}")
    if BENIGN_SQL_TAG in conv.tags and "sql_injection" in seen.flags:
        why.append("flag unexpected: sql_injection")
    return tuple(why)


def category(reason: str) -> str:
    """A failure reason without its conversation-specific detail (for counting)."""
    if reason.startswith("topics:"):
        return reason.split(" (", 1)[0]
    if reason.startswith("dead letter:"):
        return "dead letter"
    return reason


def evaluate(
    steps: Steps,
    conversations: Sequence[Conversation],
    *,
    max_chars: int = 10_000,
    progress: Callable[[str], None] | None = None,
) -> list[Result]:
    """Run and judge every conversation, in order."""
    results: list[Result] = []
    by_source: Counter[str] = Counter(c.source for c in conversations)
    done: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for conv in conversations:
        per_turn, latencies = run_conversation(steps, conv, max_chars=max_chars)
        seen = observe(per_turn)
        result = Result(conv, seen, judge(conv, seen), tuple(latencies))
        results.append(result)
        done[conv.source] += 1
        passed[conv.source] += result.passed
        if progress is not None and done[conv.source] == by_source[conv.source]:
            progress(f"{conv.source}: {passed[conv.source]}/{done[conv.source]} passed")
    return results


# --- reporting -----------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def metrics(results: Sequence[Result]) -> dict[str, Any]:
    """The summary line's numbers.

    ``resolution_rate``: of the conversations that should be resolved automatically
    (expected ``resolved``), the share the agent resolved (observed ``resolved``: never
    escalated, last decision an answer or action); this is the issue's target ("of the
    conversations that should be resolved automatically, >= 0.90 are"). 1.0 when none
    should be. Escalation
    precision/recall compare the agent's escalate-or-not with the expected outcome; a
    precision with nothing escalated is 1.0 when nothing should have been (else 0.0), a
    recall with nothing to escalate is 1.0.
    """
    n = len(results)
    tp = sum(
        r.observed.outcome == "escalated" and r.conversation.expect.outcome == "escalated"
        for r in results
    )
    predicted = sum(r.observed.outcome == "escalated" for r in results)
    actual = sum(r.conversation.expect.outcome == "escalated" for r in results)
    precision = tp / predicted if predicted else (1.0 if actual == 0 else 0.0)
    recall = tp / actual if actual else 1.0
    latencies = [ms for r in results for ms in r.latencies_ms]
    should = [r for r in results if r.conversation.expect.outcome == "resolved"]
    resolved = sum(r.observed.outcome == "resolved" for r in should)
    return {
        "conversations": n,
        "passed": sum(r.passed for r in results),
        "resolution_rate": round(resolved / len(should), 4) if should else 1.0,
        "escalation_precision": round(precision, 4),
        "escalation_recall": round(recall, 4),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }


def _group_table(title: str, groups: Mapping[str, list[Result]]) -> list[str]:
    width = max([len(title), *(len(k) for k in groups)])
    lines = [f"{title:<{width}}  {'passed':>6}  {'total':>5}  {'rate':>5}"]
    for key in sorted(groups):
        rs = groups[key]
        ok = sum(r.passed for r in rs)
        lines.append(f"{key:<{width}}  {ok:>6}  {len(rs):>5}  {ok / len(rs):>5.2f}")
    return lines


def report_lines(results: Sequence[Result], *, show_failures: bool) -> list[str]:
    """Human-readable report: failures (optional), per file, per tag, failure categories."""
    lines: list[str] = []
    failures = [r for r in results if not r.passed]
    if show_failures and failures:
        lines.append(f"FAILURES ({len(failures)})")
        for r in failures:
            e, o = r.conversation.expect, r.observed
            exp = e.outcome + (f"/{e.escalation_reason}" if e.escalation_reason else "")
            got = o.outcome + (f"/{o.escalation_reason}" if o.escalation_reason else "")
            lines.append(
                f"- {r.conversation.id} [{r.conversation.source}] expected {exp}, got {got}"
            )
            for why in r.failures:
                lines.append(f"    why: {why}")
            lines.append(
                f"    expected topics={list(e.topics)} actions={list(e.actions)}"
                f" flags={list(e.flags)}"
            )
            lines.append(
                f"    observed topics={list(o.topics)} actions={list(o.actions)}"
                f" flags={list(o.flags)}"
            )
            lines.extend(f"    {step[:160]}" for step in o.trail)
        lines.append("")
    by_file: dict[str, list[Result]] = {}
    by_tag: dict[str, list[Result]] = {}
    for r in results:
        by_file.setdefault(r.conversation.source, []).append(r)
        for tag in r.conversation.tags:
            by_tag.setdefault(tag, []).append(r)
    lines.extend(_group_table("file", by_file))
    lines.append("")
    lines.extend(_group_table("tag", by_tag))
    cats = Counter(category(w) for r in failures for w in r.failures)
    if cats:
        lines.append("")
        lines.append("failure reasons (a conversation may have several)")
        lines.extend(f"{count:>5}  {cat}" for cat, count in cats.most_common())
    return lines


def write_junit(path: Path, results: Sequence[Result]) -> None:
    """One ``testcase`` per conversation (classname = file), failures with the trail."""
    suite = ET.Element(
        "testsuite",
        name="eval-conversations",
        tests=str(len(results)),
        failures=str(sum(not r.passed for r in results)),
        time=f"{sum(sum(r.latencies_ms) for r in results) / 1000:.3f}",
    )
    for r in results:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=r.conversation.source.removesuffix(".yaml"),
            name=r.conversation.id,
            time=f"{sum(r.latencies_ms) / 1000:.6f}",
        )
        if not r.passed:
            failure = ET.SubElement(case, "failure", message="; ".join(r.failures))
            failure.text = "\n".join(r.observed.trail)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


# --- wiring --------------------------------------------------------------------------


def build_eval_steps(model: str | None = None) -> tuple[Steps, int]:
    """Steps with the configured model (``model`` overrides ``settings.model``) and an
    in-process schema registry (never a network registry), plus the truncation limit."""
    from streams.bootstrap import build_model
    from streams.settings import load_settings

    settings = load_settings(**({"model": model} if model else {}))
    steps = Steps(
        AvroCodec(InProcessRegistry()), Topics(settings.topic_prefix), build_model(settings)
    )
    return steps, settings.max_message_chars


def select(
    conversations: Sequence[Conversation], only: Sequence[str], tags: Sequence[str]
) -> list[Conversation]:
    """Conversations whose id is in ``only`` (if given) and that carry one of ``tags``."""
    out = [c for c in conversations if not only or c.id in only]
    return [c for c in out if not tags or set(tags) & set(c.tags)]


def eval_conversations_command(
    directory: Annotated[
        Path,
        typer.Argument(help="A folder of conversation *.yaml (or *.jsonl) files, or one file."),
    ],
    model: Annotated[
        str | None,
        typer.Option(help="Model adapters, e.g. local,baseline (default: settings.model)."),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Run only this conversation id (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="Run only conversations with this tag (repeatable).")
    ] = None,
    show_failures: Annotated[
        bool, typer.Option(help="Print each failure: expected vs observed, why, the trail.")
    ] = True,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    include_generated: Annotated[
        bool, typer.Option(help="Add the generated 100,000-character conversations.")
    ] = True,
) -> None:
    """Run scripted conversations through the log driver; end with one JSON summary line."""
    try:
        conversations = load_conversations(directory)
    except ConversationFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if include_generated:
        conversations += generated_conversations()
    chosen = select(conversations, only or [], tag or [])
    if not chosen:
        typer.echo("error: no conversation matches --only/--tag", err=True)
        raise typer.Exit(2)
    try:
        steps, max_chars = build_eval_steps(model)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        steps.model.predict(["warm-up"])  # load lazily initialised sessions off the clock
        steps.actor.warm(sorted({c.tenant for c in chosen}))  # workflows, responder, indexes
        typer.echo(
            f"{len(chosen)} conversations, model {steps.model.info.name}"
            f" {steps.model.info.version}",
            err=True,
        )
        results = evaluate(
            steps, chosen, max_chars=max_chars, progress=lambda s: typer.echo(s, err=True)
        )
    finally:
        close = getattr(steps.model, "close", None)
        if callable(close):
            close()
    if junit is not None:
        write_junit(junit, results)
    for line in report_lines(results, show_failures=show_failures):
        typer.echo(line)
    typer.echo(json.dumps(metrics(results), separators=(",", ":")))


def main(argv: Sequence[str] | None = None) -> None:
    app = typer.Typer(add_completion=False)
    app.command()(eval_conversations_command)
    app(args=list(argv) if argv is not None else sys.argv[1:], prog_name="eval-conversations")


__all__ = [
    "Conversation",
    "ConversationFileError",
    "Expectation",
    "Observed",
    "Result",
    "eval_conversations_command",
    "evaluate",
    "load_conversations",
    "metrics",
    "observe",
]

if __name__ == "__main__":
    main()
