"""Help articles: Markdown files with YAML front matter, parsed and validated.

A file is one article *version*. Required front matter: ``id`` (str), ``title`` (str),
``product_area`` (a taxonomy label), ``version`` (int >= 1), ``updated`` (ISO date),
``tags`` (list of str). Invalid files are reported with a reason, never raised.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import frontmatter
import yaml

from processors.taxonomy import CATEGORIES

#: The taxonomy labels an article's ``product_area`` may take.
PRODUCT_AREAS: frozenset[str] = frozenset(
    f"{cat}/{sub}" for cat, subs in CATEGORIES.items() for sub in subs
)
REQUIRED = ("id", "title", "product_area", "version", "updated", "tags")


@dataclass(frozen=True, slots=True)
class Article:
    """One valid article version."""

    article_id: str
    version: int
    title: str
    product_area: str
    updated: date
    tags: tuple[str, ...]
    body: str
    path: Path
    sha256: str

    @property
    def key(self) -> str:
        return f"{self.article_id}@v{self.version}"


@dataclass(frozen=True, slots=True)
class InvalidFile:
    """A file ingest skipped, and why."""

    path: Path
    reason: str


def _check(meta: dict[str, Any]) -> str | None:
    missing = [f for f in REQUIRED if f not in meta or meta[f] in (None, "")]
    if missing:
        return f"missing required field{'s' if len(missing) > 1 else ''} " + ", ".join(
            f"`{m}`" for m in missing
        )
    if not isinstance(meta["id"], str) or not meta["id"].strip():
        return "`id` must be a non-empty string"
    if not isinstance(meta["title"], str) or not meta["title"].strip():
        return "`title` must be a non-empty string"
    if meta["product_area"] not in PRODUCT_AREAS:
        return f"unknown product_area {meta['product_area']!r}"
    version = meta["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return f"`version` must be an integer >= 1, got {version!r}"
    updated = meta["updated"]
    if isinstance(updated, str):
        try:
            date.fromisoformat(updated)
        except ValueError:
            return f"`updated` is not an ISO date: {updated!r}"
    elif not isinstance(updated, date):
        return f"`updated` is not an ISO date: {updated!r}"
    tags = meta["tags"]
    if not isinstance(tags, list) or not all(
        isinstance(t, str | int) and not isinstance(t, bool) for t in tags
    ):
        return "`tags` must be a list of strings"  # YAML reads a tag like 429 as an int
    return None


def parse_article(path: Path) -> Article | InvalidFile:
    """Parse and validate one file."""
    raw = path.read_bytes()
    try:
        post = frontmatter.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        return InvalidFile(path, f"unreadable front matter: {exc}".splitlines()[0])
    meta: dict[str, Any] = dict(post.metadata)
    if not meta:
        return InvalidFile(path, "no YAML front matter")
    problem = _check(meta)
    if problem is not None:
        return InvalidFile(path, problem)
    body = post.content.strip()
    if not body:
        return InvalidFile(path, "empty body")
    updated = meta["updated"]
    return Article(
        article_id=meta["id"].strip(),
        version=int(meta["version"]),
        title=meta["title"].strip(),
        product_area=meta["product_area"],
        updated=date.fromisoformat(updated) if isinstance(updated, str) else updated,
        tags=tuple(str(t) for t in meta["tags"]),
        body=body,
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
    )


def load_directory(directory: Path) -> tuple[list[Article], list[InvalidFile]]:
    """Every ``*.md`` file under ``directory`` (sorted), split into valid and invalid.

    A second file with an ``(id, version)`` already seen is invalid: versions must be
    unique per id.
    """
    return split_valid(parse_article(p) for p in sorted(directory.rglob("*.md")))


def split_valid(
    parsed: Iterable[Article | InvalidFile],
) -> tuple[list[Article], list[InvalidFile]]:
    articles: list[Article] = []
    invalid: list[InvalidFile] = []
    seen: dict[tuple[str, int], Path] = {}
    for item in parsed:
        if isinstance(item, InvalidFile):
            invalid.append(item)
            continue
        key = (item.article_id, item.version)
        if key in seen:
            invalid.append(
                InvalidFile(item.path, f"duplicate {item.key}: already in {seen[key].name}")
            )
            continue
        seen[key] = item.path
        articles.append(item)
    return articles, invalid
