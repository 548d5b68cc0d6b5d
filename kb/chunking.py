"""Split an article body into passages by heading, about 100-250 words each.

Sections are the ``#``/``##``/``###`` headings of the Markdown body (never a ``#`` inside
a fenced code block). A long section is split at paragraph boundaries (then at sentence
boundaries if one paragraph is itself too long); a short section is merged with the next
one of the same article while the result stays within the limit. Passage ids are
``<article id>@v<version>#<n>``, numbered from 0 in article order, so the same article
version always yields the same ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.articles import Article

MIN_WORDS = 100
MAX_WORDS = 250
_HEADING = re.compile(r"^(#{1,3})\s+(.*?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"(])")


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable piece of an article version."""

    passage_id: str
    article_id: str
    version: int
    n: int
    title: str
    heading: str
    text: str

    @property
    def words(self) -> int:
        return len(self.text.split())

    def embedding_text(self) -> str:
        """What is embedded: title and heading give the passage its context."""
        heading = f"{self.heading}\n" if self.heading and self.heading != self.title else ""
        return f"{self.title}\n{heading}{self.text}"


def passage_id(article_id: str, version: int, n: int) -> str:
    return f"{article_id}@v{version}#{n}"


def sections(body: str) -> list[tuple[str, str]]:
    """``(heading, text)`` per heading; text before the first heading has heading ''."""
    out: list[tuple[str, list[str]]] = [("", [])]
    fenced = False
    for line in body.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            out.append((match.group(2), []))
        else:
            out[-1][1].append(line)
    result = [(h, "\n".join(lines).strip()) for h, lines in out]
    return [(h, t) for h, t in result if t]


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks; a fenced code block stays in one piece."""
    blocks: list[str] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                blocks.append("\n".join(current))
                current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _split_long(block: str, limit: int) -> list[str]:
    if len(block.split()) <= limit:
        return [block]
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in _SENTENCE.split(block):
        n = len(sentence.split())
        if current and count + n > limit:
            pieces.append(" ".join(current))
            current, count = [], 0
        if n > limit:  # one enormous "sentence" (a table, a code block): cut by words
            words = sentence.split()
            pieces.extend(" ".join(words[i : i + limit]) for i in range(0, len(words), limit))
            continue
        current.append(sentence)
        count += n
    if current:
        pieces.append(" ".join(current))
    return pieces


def _pack(blocks: list[str], limit: int) -> list[str]:
    """Greedily join consecutive blocks into pieces of at most ``limit`` words."""
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for block in blocks:
        for part in _split_long(block, limit):
            n = len(part.split())
            if current and count + n > limit:
                pieces.append("\n\n".join(current))
                current, count = [], 0
            current.append(part)
            count += n
    if current:
        pieces.append("\n\n".join(current))
    return pieces


def chunk_article(
    article: Article, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[Passage]:
    """The passages of one article version, in order."""
    units: list[tuple[str, str]] = []  # (heading, text) each <= max_words
    for heading, text in sections(article.body):
        units.extend((heading, piece) for piece in _pack(_paragraphs(text), max_words))
    merged: list[tuple[str, str]] = []
    for heading, text in units:
        if merged:
            prev_heading, prev_text = merged[-1]
            prev_n, n = len(prev_text.split()), len(f"{heading} {text}".split())
            if (prev_n < min_words or n < min_words) and prev_n + n <= max_words:
                label = prev_heading or heading
                if heading and prev_heading and heading != prev_heading:
                    label = f"{prev_heading}; {heading}"
                    text = f"{heading}\n{text}"
                merged[-1] = (label, f"{prev_text}\n\n{text}")
                continue
        merged.append((heading, text))
    return [
        Passage(
            passage_id=passage_id(article.article_id, article.version, n),
            article_id=article.article_id,
            version=article.version,
            n=n,
            title=article.title,
            heading=heading or article.title,
            text=text,
        )
        for n, (heading, text) in enumerate(merged)
    ]
