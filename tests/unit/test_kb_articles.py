"""Article parsing/validation, chunking and near-duplicate scoring (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kb.articles import Article, InvalidFile, load_directory, parse_article
from kb.chunking import MAX_WORDS, chunk_article, sections
from kb.dedup import jaccard, shingles, similar_pairs

ARTICLES = Path(__file__).resolve().parents[2] / "kb" / "articles"


def write(path: Path, front: str, body: str = "# T\n\nSome text here.") -> Path:
    path.write_text(f"---\n{front}\n---\n\n{body}\n", "utf-8")
    return path


FRONT = (
    "id: kb-x\ntitle: X\nproduct_area: ACCOUNT/MFA\nversion: 1\nupdated: 2026-01-02\ntags: [a, 429]"
)


def test_valid_file_parses_with_numeric_tags_as_strings(tmp_path: Path) -> None:
    article = parse_article(write(tmp_path / "x.md", FRONT))
    assert isinstance(article, Article)
    assert article.key == "kb-x@v1"
    assert article.tags == ("a", "429")
    assert len(article.sha256) == 64


def test_invalid_files_are_reported_with_a_reason(tmp_path: Path) -> None:
    cases = {
        "no-id.md": (FRONT.replace("id: kb-x\n", ""), "missing required field `id`"),
        "area.md": (FRONT.replace("ACCOUNT/MFA", "ACCOUNT/Nope"), "unknown product_area"),
        "version.md": (FRONT.replace("version: 1", "version: zero"), "`version`"),
        "date.md": (FRONT.replace("2026-01-02", "yesterday"), "ISO date"),
    }
    for name, (front, _) in cases.items():
        write(tmp_path / name, front)
    (tmp_path / "plain.md").write_text("no front matter at all", "utf-8")
    write(tmp_path / "z-dup.md", FRONT)
    write(tmp_path / "y-ok.md", FRONT)
    articles, invalid = load_directory(tmp_path)
    assert [a.path.name for a in articles] == ["y-ok.md"]
    reasons = {bad.path.name: bad.reason for bad in invalid}
    for name, (_, why) in cases.items():
        assert why in reasons[name], reasons
    assert reasons["plain.md"] == "no YAML front matter"
    assert reasons["z-dup.md"] == "duplicate kb-x@v1: already in y-ok.md"


def test_the_shipped_invalid_file() -> None:
    articles, invalid = load_directory(ARTICLES)
    assert invalid == [
        InvalidFile(ARTICLES / "broken-missing-id.md", "missing required field `id`")
    ]
    assert len(articles) == 55


def test_headings_inside_code_blocks_are_not_sections() -> None:
    body = "# Title\n\nIntro.\n\n## A\n\n```python\n# not a heading\nx = 1\n```\n\n## B\n\nText."
    assert [h for h, _ in sections(body)] == ["Title", "A", "B"]


def test_passages_are_bounded_and_ids_stable() -> None:
    articles, _ = load_directory(ARTICLES)
    for article in articles:
        passages = chunk_article(article)
        assert [p.passage_id for p in passages] == [
            f"{article.article_id}@v{article.version}#{n}" for n in range(len(passages))
        ]
        assert all(p.words <= MAX_WORDS for p in passages)
        assert passages == chunk_article(article)
    total = sum(len(chunk_article(a)) for a in articles)
    assert 120 <= total <= 200


def test_shingle_jaccard_and_pairing() -> None:
    a = "the reset link is valid for thirty minutes and single use"
    b = "the reset link is valid for thirty minutes and can be used once"
    assert jaccard(shingles(a), shingles(a)) == 1.0
    assert 0.3 < jaccard(shingles(a), shingles(b)) < 0.7
    vectors = np.eye(3, dtype=np.float32)
    assert similar_pairs(["x", "y", "z"], [a, a, b], vectors) == [(0, 1, 1.0, 0.0)]
    assert similar_pairs(["x", "x", "z"], [a, a, b], vectors) == []  # same id: versions
