"""``python -m streams`` is the ``casestream`` command."""

from streams.cli import app

app()
