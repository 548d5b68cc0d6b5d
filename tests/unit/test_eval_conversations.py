"""``casestream eval conversations``: loading, observation rules, the summary line, the CLI.

Runs the real log driver and decider with the lexical baseline model (fast, deterministic).
The conversations are chosen so that their outcome does not depend on fine details of the
policy: a confident export question is answered, "speak to a manager" escalates, a
contentless one-liner is clarified, and a calm export question is never escalated.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.evaluate import (
    ConversationFileError,
    Result,
    build_eval_steps,
    eval_conversations_command,
    evaluate,
    generated_conversations,
    is_subsequence,
    load_conversations,
    metrics,
    observe,
)
from events.base import Envelope, caused_envelope
from events.decisions import CaseEscalated, DecisionMade
from events.enrichment import ModelInfo
from streams.steps import Steps
from tests.factories import enriched

GOOD = """\
- id: t-resolved
  tenant: acme
  tags: [export, calm]
  turns:
    - "How do I export data?"
  expect:
    outcome: resolved
    topics: [DATA/Export]
    actions: []
    flags: []
    escalation_reason: null

- id: t-human
  tenant: acme
  tags: [angry, human-request]
  turns:
    - "I forgot my password"
    - "I want to speak to a manager NOW!"
  expect:
    outcome: escalated
    topics: []
    actions: []
    flags: []
    escalation_reason: human_request
"""

MORE = """\
- id: t-clarified
  tenant: globex
  tags: [vague]
  turns:
    - "can you help me with the thing"
  expect:
    outcome: clarified
    topics: []
    actions: []
    flags: []
    escalation_reason: null

- id: t-wrong
  tenant: globex
  tags: [export, calm]
  # Deliberately wrong expectation: a calm export question must not escalate.
  turns:
    - "How do I export data?"
  expect:
    outcome: escalated
    topics: []
    actions: []
    flags: []
    escalation_reason: human_request
"""


@pytest.fixture(scope="module")
def steps() -> Steps:
    built, _ = build_eval_steps("baseline")
    return built


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "a.yaml").write_text(GOOD, "utf-8")
    (tmp_path / "b.yaml").write_text(MORE, "utf-8")
    (tmp_path / "README.md").write_text("not a conversation file", "utf-8")
    return tmp_path


def run_cli(*args: str) -> tuple[int, str, str]:
    app = typer.Typer()
    app.command()(eval_conversations_command)
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_classification_and_summary(steps: Steps, suite: Path) -> None:
    conversations = load_conversations(suite)
    assert [c.id for c in conversations] == ["t-resolved", "t-human", "t-clarified", "t-wrong"]
    results = {r.conversation.id: r for r in evaluate(steps, conversations)}

    assert results["t-resolved"].passed
    assert results["t-resolved"].observed.topics == ("DATA/Export",)
    human = results["t-human"]
    assert human.passed, human.failures
    assert (human.observed.outcome, human.observed.escalation_reason) == (
        "escalated",
        "human_request",
    )
    assert results["t-clarified"].passed, results["t-clarified"].failures
    wrong = results["t-wrong"]
    assert not wrong.passed
    assert "outcome: expected escalated, got resolved" in wrong.failures
    assert len(human.latencies_ms) == 2 and all(ms >= 0 for ms in human.latencies_ms)

    summary = metrics(list(results.values()))
    assert summary["conversations"] == 4
    assert summary["passed"] == 3
    # of the conversations that should be resolved (t-resolved), all were
    assert summary["resolution_rate"] == 1.0
    assert summary["escalation_precision"] == 1.0  # the one escalation was expected
    assert summary["escalation_recall"] == 0.5  # t-wrong "should" have escalated
    assert list(summary) == [
        "conversations",
        "passed",
        "resolution_rate",
        "escalation_precision",
        "escalation_recall",
        "p50_ms",
        "p99_ms",
    ]


def test_cli_ends_with_one_json_line(suite: Path, tmp_path: Path) -> None:
    junit = tmp_path / "out" / "junit.xml"
    code, out, err = run_cli(
        str(suite), "--model", "baseline", "--show-failures", "--junit", str(junit)
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    last = json.loads(lines[-1])
    # 4 from the files + the generated 100,000-character conversations (default on).
    assert last["conversations"] == 4 + len(generated_conversations())
    assert lines[-1].startswith('{"conversations":')
    assert "t-wrong" in out and "outcome: expected escalated, got resolved" in out
    assert "a.yaml" in out and "b.yaml" in out  # per-file summary
    assert "a.yaml: 2/2 passed" in err  # progress goes to stderr
    root = ET.parse(junit).getroot()
    assert root.get("tests") == str(last["conversations"])
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert "t-wrong" in failed


def test_filters_and_generated(suite: Path) -> None:
    code, out, _ = run_cli(
        str(suite), "--model", "baseline", "--only", "t-resolved", "--no-include-generated"
    )
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1])["conversations"] == 1
    code, out, _ = run_cli(str(suite), "--model", "baseline", "--tag", "calm")
    assert json.loads(out.strip().splitlines()[-1])["conversations"] == 2


def test_generated_long_input_is_truncated_not_lost(steps: Steps) -> None:
    results = evaluate(steps, generated_conversations(), max_chars=10_000)
    for r in results:
        assert len(r.conversation.turns[0]) >= 100_000
        assert "truncated" in r.observed.flags
        assert not r.observed.rejected
        assert r.observed.outcome != "unresolved"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- id: x\n  tenant: acme\n  tags: [a]\n  turns: [hi]\n  expect: {topics: []}\n",
            "outcome",
        ),
        (
            "- id: x\n  tenant: acme\n  tags: [401]\n  turns: [hi]\n"
            "  expect: {outcome: resolved, topics: []}\n",
            "'tags' must be a list of strings",
        ),
        (
            "- id: x\n  tenant: acme\n  tags: [a]\n  turns: [hi]\n"
            "  expect: {outcome: escalated, topics: []}\n",
            "escalation_reason",
        ),
        (
            "- id: x\n  tenant: acme\n  tags: [a]\n  turns: [hi]\n"
            "  expect: {outcome: resolved, topics: [BILLING/Invoices]}\n",
            "unknown expect.topics",
        ),
        ("id: x\n", "must hold a list"),
        ("- id: x\n  tenant: [unclosed\n", "cannot read"),
    ],
)
def test_malformed_file_names_file_and_id(tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, "utf-8")
    with pytest.raises(ConversationFileError) as info:
        load_conversations(tmp_path)
    assert "bad.yaml" in str(info.value)
    assert message in str(info.value)
    if "list" not in message and "cannot read" not in message:
        assert "'x'" in str(info.value)


def test_malformed_file_cli_exit_code(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "- id: oops\n  tenant: acme\n  tags: [a]\n  turns: []\n"
        "  expect: {outcome: resolved, topics: []}\n",
        "utf-8",
    )
    code, out, err = run_cli(str(tmp_path), "--model", "baseline")
    assert code == 2
    assert "bad.yaml" in err and "'oops'" in err and "turns" in err
    assert out == ""


def test_duplicate_ids_rejected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, "utf-8")
    (tmp_path / "b.yaml").write_text(GOOD, "utf-8")
    with pytest.raises(ConversationFileError, match=r"'t-resolved' already used in a\.yaml"):
        load_conversations(tmp_path)


def _strip_timing(results: list[Result]) -> list[tuple[object, ...]]:
    return [(r.conversation.id, r.observed, r.failures) for r in results]


def test_deterministic(steps: Steps, suite: Path) -> None:
    conversations = [*load_conversations(suite), *generated_conversations()]
    first = evaluate(steps, conversations)
    fresh, _ = build_eval_steps("baseline")
    second = evaluate(fresh, conversations)
    assert _strip_timing(first) == _strip_timing(second)
    timing = ("p50_ms", "p99_ms")
    a = {k: v for k, v in metrics(first).items() if k not in timing}
    b = {k: v for k, v in metrics(second).items() if k not in timing}
    assert a == b


def _decision(msg_index: int, action: str, reason: str, intent: str | None) -> DecisionMade:
    msg = enriched("x", [("BILLING/Invoice", 0.9)], index=msg_index)
    return DecisionMade(
        envelope=caused_envelope(msg.envelope, DecisionMade, producer="t", producer_version="0"),
        message_id=msg.message_id,
        action=action,
        reason=reason,
        intent=intent,
        confidence=0.9,
        threshold=0.6,
        sentiment_label="neutral",
        frustration=0.0,
        turn=msg_index + 1,
        policy_version="t",
        model=ModelInfo(name="m", version="1", sha256="0" * 64),
    )


def test_observation_rules() -> None:
    invoice = enriched("send my last invoice", [("BILLING/Invoice", 0.9)], index=0)
    vague = enriched("the thing", [], flags=("prompt_injection",), index=1)
    case_env: Envelope = caused_envelope(
        vague.envelope, CaseEscalated, producer="t", producer_version="0"
    )
    case = CaseEscalated(
        envelope=case_env,
        case_id="case-1",
        message_id=vague.message_id,
        reason="explicit_human_request",
        priority="high",
        summary="s",
        confidence=0.0,
        sentiment_trajectory=(),
        transcript_ref="conversations/t1/c1",
    )
    # A workflow result recorded as an "act" decision whose reason names the action.
    acted = [invoice, _decision(0, "act", "invoice_sent", "BILLING/Invoice")]
    seen = observe([acted, [vague, _decision(1, "reply", "loop_detected", "BILLING/Invoice")]])
    assert seen.outcome == "resolved"
    assert seen.actions == ("invoice_sent",)
    assert seen.topics == ("BILLING/Invoice",)  # consecutive repeats collapsed
    assert seen.flags == ("loop_detected", "prompt_injection")

    escalated = observe(
        [acted, [vague, _decision(1, "escalate", "explicit_human_request", None), case]]
    )
    assert (escalated.outcome, escalated.escalation_reason) == ("escalated", "human_request")
    assert (
        observe(
            [[invoice, _decision(0, "clarify", "ambiguous_intents", "BILLING/Invoice")]]
        ).outcome
        == "clarified"
    )
    assert observe([[invoice]]).outcome == "unresolved"


def test_subsequence() -> None:
    assert is_subsequence(["A", "B", "A"], ["A", "C", "B", "A"])
    assert not is_subsequence(["A", "B", "A"], ["A", "B"])
    assert is_subsequence([], [])


def test_jsonl_interchange_format(steps: Steps, tmp_path: Path) -> None:
    lines = [
        {"id": "j1", "turns": ["How do I export data?"], "expected": "resolved_answer"},
        {"id": "j2", "turns": ["I want to speak to a manager NOW!"], "expected": "escalated"},
    ]
    (tmp_path / "set.jsonl").write_text("\n".join(json.dumps(x) for x in lines), "utf-8")
    results = evaluate(steps, load_conversations(tmp_path))
    assert [(r.conversation.id, r.passed) for r in results] == [("j1", True), ("j2", True)]
    (tmp_path / "set.jsonl").write_text('{"id": "j3", "turns": ["hi"], "expected": "maybe"}\n')
    with pytest.raises(ConversationFileError, match=r"set\.jsonl: line 1 \(id 'j3'\)"):
        load_conversations(tmp_path)
