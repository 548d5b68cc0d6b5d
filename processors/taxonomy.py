"""The blueprint's ticket taxonomy and per-category auto-resolve thresholds."""

from __future__ import annotations

CATEGORIES: dict[str, tuple[str, ...]] = {
    "TECHNICAL": ("API", "Integration", "Performance", "Bug", "Configuration"),
    "ACCOUNT": ("Access", "Password", "Permissions", "MFA", "Profile"),
    "BILLING": ("Invoice", "Payment", "Subscription", "Renewal", "Refund"),
    "PRODUCT": ("Features", "Training", "Documentation", "Best Practices"),
    "DATA": ("Import", "Export", "Reports", "Analytics", "Quality"),
}

#: Minimum top-intent score to answer without a human (blueprint v1, section 2).
AUTO_RESOLVE_THRESHOLDS: dict[str, float] = {
    "TECHNICAL": 0.70,
    "ACCOUNT": 0.90,
    "BILLING": 0.60,
    "PRODUCT": 0.85,
    "DATA": 0.75,
}

HUMAN_REQUEST = "human_request"
OUT_OF_SCOPE = "out_of_scope"
SPECIAL_LABELS = (HUMAN_REQUEST, OUT_OF_SCOPE)

#: Top-two intents closer than this are ambiguous: ask a clarifying question.
AMBIGUITY_MARGIN = 0.15


def category_of(label: str) -> str:
    """``ACCOUNT/Password`` -> ``ACCOUNT``; special labels map to themselves."""
    return label.split("/", 1)[0]


def threshold_for(label: str) -> float:
    """Auto-resolve threshold of the label's category (1.0 for special labels)."""
    return AUTO_RESOLVE_THRESHOLDS.get(category_of(label), 1.0)


def all_intent_labels() -> list[str]:
    labels = [f"{cat}/{sub}" for cat, subs in CATEGORIES.items() for sub in subs]
    return [*labels, *SPECIAL_LABELS]
