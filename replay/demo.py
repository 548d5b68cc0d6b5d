"""The embedded demo: the blueprint's conversations through the log driver, no broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from events.actions import ActionCompleted, ActionRequested
from events.base import derive_event_id, origin_envelope
from events.conversation import MessageReceived
from events.decisions import CaseEscalated, ClarificationRequested, DecisionMade, ReplyRequested
from events.delivery import EventRejected
from replay.driver import LogDriver
from streams.steps import Record, Steps

SCENARIOS: dict[str, list[str]] = {
    "simple password reset": [
        "I forgot my password",
        "my email is user@example.com",
        "yes, send the reset link",
    ],
    "API troubleshooting": [
        "I'm getting a 401 error when calling the REST API",
        "I'm using OAuth 2.0",
        "The token was generated yesterday",
    ],
    "angry customer": [
        "This is completely unacceptable!",
        "I've been trying to fix this for hours!",
        "I want to speak to a manager NOW!",
    ],
    "context switch": [
        "How do I export data?",
        "Actually, first I need to reset my password",
        "Ok password is reset, now back to the export",
    ],
    "SQL injection as text": ["'; DROP TABLE users; --"],
}
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def scenario_records(steps: Steps, tenant: str = "demo") -> Iterator[Record]:
    """Inbound records for every scenario, with fixed ids and times (reproducible)."""
    offset = 0
    for n, (name, messages) in enumerate(SCENARIOS.items()):
        conversation = f"demo-{n}-{name.replace(' ', '-').lower()}"
        for i, text in enumerate(messages):
            when = START + timedelta(minutes=n, seconds=10 * i)
            event = MessageReceived(
                envelope=origin_envelope(
                    MessageReceived,
                    tenant_id=tenant,
                    conversation_id=conversation,
                    producer="connector.demo",
                    producer_version="0.1.0",
                    event_id=derive_event_id(conversation, "MessageReceived", i),
                    occurred_at=when,
                ),
                message_id=f"{conversation}-m{i}",
                channel="web_chat",
                text=text,
                original_length=len(text),
                truncated=False,
            )
            out = steps.output(event)
            yield Record(out.topic, 0, offset, out.key, out.value, int(when.timestamp() * 1000))
            offset += 1


def run_demo(steps: Steps, echo: Callable[[str], None] = print) -> dict[str, int]:
    """Print each conversation with the agent's decisions; return decision counts."""
    counts: dict[str, int] = {}
    driver = LogDriver(steps)
    current = b""
    for out in driver.run(scenario_records(steps)):
        event = out.event
        if out.key != current:
            current = out.key
            echo(f"\n=== {current.decode()} ===")
        if isinstance(event, MessageReceived | EventRejected):
            continue
        if isinstance(event, ActionRequested):
            echo(f"   action requested: {event.kind}")
        elif isinstance(event, ActionCompleted):
            extra = f" [{', '.join(event.citations)}]" if event.citations else ""
            echo(f"   action {event.kind}: {event.status} -> {event.outcome}{extra}")
        elif out.topic == steps.topics.enriched:
            text = getattr(event, "text", "")
            intents = getattr(event, "intents", ())
            top = f"{intents[0].label} {intents[0].score:.2f}" if intents else "no intent"
            sentiment = getattr(event, "sentiment", None)
            mood = f"{sentiment.label} frustration={sentiment.frustration:.2f}" if sentiment else ""
            flags = getattr(event, "flags", ())
            echo(f"customer> {text}")
            echo(f"   model: {top}; {mood}{'; flags=' + ','.join(flags) if flags else ''}")
        elif isinstance(event, DecisionMade):
            counts[event.action] = counts.get(event.action, 0) + 1
            echo(
                f"   decision: {event.action} ({event.reason}; confidence {event.confidence:.2f}"
                f" vs threshold {event.threshold:.2f})"
            )
        elif isinstance(event, ClarificationRequested):
            echo(f"   clarify options: {', '.join(event.options) or '-'}")
        elif isinstance(event, CaseEscalated):
            echo(f"   case {event.case_id} [{event.priority}]: {event.summary}")
        elif isinstance(event, ReplyRequested):
            echo(f"agent> {event.text}")
    return counts
