"""Check the conversation files in this directory.

Run: /work/main/.venv/bin/python tests/scenario/conversations/validate.py [DIR]

Checks: every *.yaml parses to a list of conversations; ids are unique across files; required
keys are present; outcome / topics / actions / flags / escalation_reason take values from the
allowed lists; escalated <=> escalation_reason is set; tenants and identity data are consistent
with the test directory; blueprint.yaml starts with the four blueprint scenarios. Prints the
counts per file, per outcome and per tag. Exits 1 on any problem.
"""

from __future__ import annotations

import collections
import itertools
import pathlib
import re
import sys

import yaml

OUTCOMES = {"resolved", "escalated", "clarified"}
TOPICS = {
    "TECHNICAL/API",
    "TECHNICAL/Integration",
    "TECHNICAL/Performance",
    "TECHNICAL/Bug",
    "TECHNICAL/Configuration",
    "ACCOUNT/Access",
    "ACCOUNT/Password",
    "ACCOUNT/Permissions",
    "ACCOUNT/MFA",
    "ACCOUNT/Profile",
    "BILLING/Invoice",
    "BILLING/Payment",
    "BILLING/Subscription",
    "BILLING/Renewal",
    "BILLING/Refund",
    "PRODUCT/Features",
    "PRODUCT/Training",
    "PRODUCT/Documentation",
    "PRODUCT/Best Practices",
    "DATA/Import",
    "DATA/Export",
    "DATA/Reports",
    "DATA/Analytics",
    "DATA/Quality",
    "out_of_scope",
}
ACTIONS = {
    "password_reset_sent",
    "token_expiry_identified",
    "rate_limit_explained",
    "malformed_field_identified",
    "invoice_sent",
    "refund_issued",
}
FLAGS = {"prompt_injection", "sql_injection", "loop_detected", "conflict", "context_switch"}
REASONS = {
    "human_request",
    "frustration",
    "negative_trend",
    "loop",
    "refund_over_limit",
    "identity_not_verified",
    "out_of_scope",
    "low_confidence",
}
DIRECTORY = {
    "acme": {
        "dana@acme.example",
        "li.wei@acme.example",
        "sam.ortiz@acme.example",
        "priya@acme.example",
    },
    "globex": {"hank@globex.example", "marge@globex.example"},
}
INVOICES = {
    "acme": {"INV-2026-0101": 49, "INV-2026-0102": 49, "INV-2026-0103": 490},
    "globex": {"INV-2026-0201": 99, "INV-2026-0202": 1200},
}
BLUEPRINT_IDS = ["bp-password-reset", "bp-api-401", "bp-angry", "bp-context-switch"]
TOP_KEYS = {"id", "tenant", "tags", "turns", "expect"}
EXPECT_KEYS = {"outcome", "topics", "actions", "flags", "escalation_reason"}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def check_conversation(c: dict, where: str, errors: list[str]) -> None:
    def err(msg: str) -> None:
        errors.append(f"{where} [{c.get('id', '?')}]: {msg}")

    missing = TOP_KEYS - c.keys()
    if missing:
        err(f"missing keys {sorted(missing)}")
        return
    if extra := c.keys() - TOP_KEYS:
        err(f"unknown keys {sorted(extra)}")
    if not isinstance(c["id"], str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", c["id"]):
        err("id must be a lower-case slug")
    if c["tenant"] not in DIRECTORY:
        err(f"unknown tenant {c['tenant']!r}")
    if (
        not isinstance(c["tags"], list)
        or not c["tags"]
        or not all(isinstance(t, str) for t in c["tags"])
    ):
        err("tags must be a non-empty list of strings")
    turns = c["turns"]
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t for t in turns):
        err("turns must be a non-empty list of non-empty strings")
        return
    e = c["expect"]
    if not isinstance(e, dict):
        err("expect must be a mapping")
        return
    if missing := {"outcome", "topics"} - e.keys():
        err(f"expect misses {sorted(missing)}")
        return
    if extra := e.keys() - EXPECT_KEYS:
        err(f"expect has unknown keys {sorted(extra)}")
    outcome, topics = e["outcome"], e["topics"]
    actions, flags, reason = (
        e.get("actions") or [],
        e.get("flags") or [],
        e.get("escalation_reason"),
    )
    if outcome not in OUTCOMES:
        err(f"bad outcome {outcome!r}")
    for name, values, allowed in (
        ("topics", topics, TOPICS),
        ("actions", actions, ACTIONS),
        ("flags", flags, FLAGS),
    ):
        if not isinstance(values, list):
            err(f"{name} must be a list")
            continue
        if bad := [v for v in values if v not in allowed]:
            err(f"bad {name} {bad}")
    if any(a == b for a, b in itertools.pairwise(topics)):
        err("topics repeats a topic consecutively (list segments, not turns)")
    if len(set(actions)) != len(actions) or len(set(flags)) != len(flags):
        err("duplicate action or flag")
    if (outcome == "escalated") != (reason is not None):
        err(f"escalated <=> escalation_reason (outcome={outcome}, reason={reason})")
    if reason is not None and reason not in REASONS:
        err(f"bad escalation_reason {reason!r}")

    # consistency of flags with outcome / reason
    if ("loop_detected" in flags) != (reason == "loop"):
        err("loop_detected <=> escalation_reason loop")
    if "conflict" in flags and outcome != "clarified":
        err("conflict should end clarified")
    if "context_switch" in flags and not (len(topics) >= 3 and topics[0] == topics[2] != topics[1]):
        err("context_switch expects topics A, B, A")

    # identity: a reset may only be expected when a directory address of the tenant is given
    text = "\n".join(turns)
    emails = {m.lower().rstrip(".") for m in EMAIL.findall(text)}
    known = emails & DIRECTORY.get(c["tenant"], set())
    if "password_reset_sent" in actions and not known:
        err("password_reset_sent without a directory address of the tenant in the turns")
    if reason == "identity_not_verified" and known:
        err("identity_not_verified although a directory address of the tenant is given")
    # invoices of the other tenant never lead to a send / refund on their own
    other = {t for t in INVOICES if t != c["tenant"]}
    for t in other:
        for inv in INVOICES[t]:
            if (
                inv in text
                and not any(i in text for i in INVOICES[c["tenant"]])
                and "invoice_sent" in actions
                and "last" not in text.lower()
                and "recent" not in text.lower()
                and "latest" not in text.lower()
            ):
                err(f"invoice_sent relies on {inv}, which belongs to {t}")
    if "refund_issued" in actions and reason == "refund_over_limit":
        err("refund_issued and refund_over_limit together")


def main(directory: pathlib.Path) -> int:
    errors: list[str] = []
    seen: dict[str, str] = {}
    per_file: dict[str, collections.Counter] = {}
    outcomes: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    actions: collections.Counter = collections.Counter()
    flags: collections.Counter = collections.Counter()
    files = sorted(directory.glob("*.yaml"))
    if not files:
        print(f"no *.yaml files in {directory}")
        return 1
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            errors.append(f"{path.name}: does not parse: {exc}")
            continue
        if not isinstance(data, list) or not data:
            errors.append(f"{path.name}: must be a non-empty list")
            continue
        counter = per_file.setdefault(path.name, collections.Counter())
        for c in data:
            if not isinstance(c, dict):
                errors.append(f"{path.name}: entry is not a mapping: {c!r:.60}")
                continue
            check_conversation(c, path.name, errors)
            cid = c.get("id")
            if cid in seen:
                errors.append(f"{path.name}: duplicate id {cid} (first in {seen[cid]})")
            seen[cid] = path.name
            e = c.get("expect") or {}
            counter[e.get("outcome")] += 1
            counter["total"] += 1
            outcomes[e.get("outcome")] += 1
            if e.get("escalation_reason"):
                reasons[e["escalation_reason"]] += 1
            actions.update(e.get("actions") or [])
            flags.update(e.get("flags") or [])
        if path.name == "blueprint.yaml":
            first = [c.get("id") for c in data[:4] if isinstance(c, dict)]
            if first != BLUEPRINT_IDS:
                errors.append(f"blueprint.yaml: first four ids are {first}, want {BLUEPRINT_IDS}")

    width = max(len(n) for n in per_file) if per_file else 10
    print(f"{'file':<{width}}  total resolved escalated clarified")
    for name, cnt in per_file.items():
        print(
            f"{name:<{width}}  {cnt['total']:5} {cnt['resolved']:8} {cnt['escalated']:9} {cnt['clarified']:9}"
        )
    print(
        f"{'ALL':<{width}}  {sum(outcomes.values()):5} {outcomes['resolved']:8} "
        f"{outcomes['escalated']:9} {outcomes['clarified']:9}"
    )
    print("escalation reasons:", dict(sorted(reasons.items())))
    print("actions:", dict(sorted(actions.items())))
    print("flags:", dict(sorted(flags.items())))
    if errors:
        print(f"\n{len(errors)} problem(s):")
        for line in errors:
            print("  " + line)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).parent
    sys.exit(main(root))
