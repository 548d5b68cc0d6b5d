"""The passage catalogue: every passage of a tenant's knowledge base, as ingest left it.

Retrieval needs the passage texts (BM25, the answer) and which versions are served;
the vector index holds only vectors and small metadata. One JSON file per tenant,
``<root>/<quoted tenant>/passages.json``, replaced atomically by each ingest.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from events.knowledge import STATUS_CURRENT


@dataclass(frozen=True, slots=True)
class StoredPassage:
    """A passage with what retrieval needs to know about its article version."""

    passage_id: str
    article_id: str
    version: int
    n: int
    title: str
    heading: str
    text: str
    product_area: str
    updated: str
    status: str

    @property
    def served(self) -> bool:
        return self.status == STATUS_CURRENT


class PassageStore:
    """Reads and writes the per-tenant passage catalogue under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, tenant: str) -> Path:
        return self.root / quote(tenant, safe="") / "passages.json"

    def load(self, tenant: str) -> list[StoredPassage]:
        path = self.path(tenant)
        if not path.is_file():
            return []
        return [StoredPassage(**row) for row in json.loads(path.read_text("utf-8"))]

    def save(self, tenant: str, passages: list[StoredPassage]) -> None:
        path = self.path(tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps([asdict(p) for p in passages], ensure_ascii=False), "utf-8")
        os.replace(tmp, path)

    def stamp(self, tenant: str) -> float:
        """Changes whenever the tenant's catalogue is rewritten (cache key)."""
        path = self.path(tenant)
        return path.stat().st_mtime_ns if path.is_file() else 0.0
