"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.smtp_inbox import Inbox, serving_inbox


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A local SMTP server: its inbox and port."""
    with serving_inbox() as served:
        yield served
