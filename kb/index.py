"""The vector-index port and its in-process adapter (numpy, persisted to disk).

Namespaces are tenants: every call names one, and nothing crosses namespaces. Scores
are cosine similarities (higher is closer). Filters use the subset of Pinecone's
metadata filter language that the knowledge base needs: ``{"field": value}``,
``{"field": {"$eq" | "$ne" | "$in" | "$nin" | "$gt" | "$gte" | "$lt" | "$lte": ...}}``,
``{"$and": [...]}`` and ``{"$or": [...]}``. Metadata values are strings, numbers,
booleans or lists of strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Metadata = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """A vector to store: its id, values and metadata."""

    id: str
    values: Sequence[float] | FloatArray
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match:
    """One query result: the stored id, its cosine score and its metadata."""

    id: str
    score: float
    metadata: Metadata


class VectorIndex(Protocol):
    """A vector store partitioned into namespaces (one per tenant)."""

    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> int:
        """Insert or overwrite ``records`` by id; returns how many were written."""
        ...

    def query(
        self,
        namespace: str,
        vector: Sequence[float] | FloatArray,
        top_k: int,
        filter: Metadata | None = None,
    ) -> list[Match]:
        """The ``top_k`` records closest to ``vector`` that pass ``filter``, best first."""
        ...

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        """Remove ``ids`` (unknown ids are ignored)."""
        ...

    def namespaces(self) -> dict[str, int]:
        """Record count of every non-empty namespace."""
        ...


def _op(op: str, value: Any, arg: Any) -> bool:
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if op == "$in":
        return value in arg
    if op == "$nin":
        return value not in arg
    if value is None:
        return False
    if op == "$gt":
        return bool(value > arg)
    if op == "$gte":
        return bool(value >= arg)
    if op == "$lt":
        return bool(value < arg)
    if op == "$lte":
        return bool(value <= arg)
    raise ValueError(f"unsupported filter operator {op!r}")


def matches_filter(metadata: Metadata, flt: Metadata | None) -> bool:
    """Whether ``metadata`` passes ``flt`` (None or {} pass everything)."""
    if not flt:
        return True
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches_filter(metadata, c) for c in cond):
                return False
        elif key == "$or":
            if not any(matches_filter(metadata, c) for c in cond):
                return False
        else:
            value = metadata.get(key)
            conds = cond if isinstance(cond, Mapping) else {"$eq": cond}
            for op, arg in conds.items():
                if isinstance(value, list) and op in ("$eq", "$in"):
                    hit = any(_op(op, v, arg) for v in value)
                elif isinstance(value, list) and op in ("$ne", "$nin"):
                    hit = all(_op(op, v, arg) for v in value)
                else:
                    hit = _op(op, value, arg)
                if not hit:
                    return False
    return True


class _Namespace:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.vectors: FloatArray = np.zeros((0, 0), dtype=np.float32)
        self.position: dict[str, int] = {}


class LocalVectorIndex:
    """Exact cosine search in numpy; each namespace saved under ``root`` when given.

    Files per namespace: ``<root>/<quoted namespace>/vectors.npy`` (float32, unit rows)
    and ``records.json`` (ids and metadata, same order), replaced atomically on writes.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._spaces: dict[str, _Namespace] = {}

    def _dir(self, namespace: str) -> Path:
        assert self.root is not None
        return self.root / quote(namespace, safe="")

    def _space(self, namespace: str) -> _Namespace:
        if not namespace:
            raise ValueError("namespace must be a non-empty tenant id")
        space = self._spaces.get(namespace)
        if space is None:
            space = _Namespace()
            if self.root is not None and (self._dir(namespace) / "records.json").is_file():
                folder = self._dir(namespace)
                records = json.loads((folder / "records.json").read_text("utf-8"))
                space.ids = [r["id"] for r in records]
                space.metadata = [r["metadata"] for r in records]
                space.vectors = np.load(folder / "vectors.npy").astype(np.float32)
                space.position = {i: n for n, i in enumerate(space.ids)}
            self._spaces[namespace] = space
        return space

    def _save(self, namespace: str, space: _Namespace) -> None:
        if self.root is None:
            return
        folder = self._dir(namespace)
        folder.mkdir(parents=True, exist_ok=True)
        records = [{"id": i, "metadata": m} for i, m in zip(space.ids, space.metadata, strict=True)]
        tmp_json, tmp_npy = folder / "records.json.tmp", folder / "vectors.tmp.npy"
        tmp_json.write_text(json.dumps(records, ensure_ascii=False), "utf-8")
        np.save(tmp_npy, space.vectors)
        os.replace(tmp_npy, folder / "vectors.npy")
        os.replace(tmp_json, folder / "records.json")

    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> int:
        if not records:
            return 0
        space = self._space(namespace)
        rows = np.asarray([r.values for r in records], dtype=np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows = (rows / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        if space.vectors.size == 0:
            space.vectors = np.zeros((0, rows.shape[1]), dtype=np.float32)
        if rows.shape[1] != space.vectors.shape[1]:
            raise ValueError(f"dimension {rows.shape[1]} != index's {space.vectors.shape[1]}")
        new_rows: list[FloatArray] = []
        for record, row in zip(records, rows, strict=True):
            at = space.position.get(record.id)
            if at is None:
                space.position[record.id] = len(space.ids)
                space.ids.append(record.id)
                space.metadata.append(dict(record.metadata))
                new_rows.append(row)
            else:
                space.metadata[at] = dict(record.metadata)
                space.vectors[at] = row
        if new_rows:
            space.vectors = np.vstack([space.vectors, np.stack(new_rows)])
        self._save(namespace, space)
        return len(records)

    def query(
        self,
        namespace: str,
        vector: Sequence[float] | FloatArray,
        top_k: int,
        filter: Metadata | None = None,
    ) -> list[Match]:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        space = self._space(namespace)
        if not space.ids:
            return []
        q = np.asarray(vector, dtype=np.float32)
        q = q / (float(np.linalg.norm(q)) or 1.0)
        scores = space.vectors @ q
        allowed = [n for n, m in enumerate(space.metadata) if matches_filter(m, filter)]
        if not allowed:
            return []
        picked = np.asarray(allowed)
        order = picked[np.argsort(-scores[picked], kind="stable")[:top_k]]
        return [Match(space.ids[n], float(scores[n]), dict(space.metadata[n])) for n in order]

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        space = self._space(namespace)
        gone = {space.position[i] for i in ids if i in space.position}
        if not gone:
            return
        keep = [n for n in range(len(space.ids)) if n not in gone]
        space.ids = [space.ids[n] for n in keep]
        space.metadata = [space.metadata[n] for n in keep]
        space.vectors = space.vectors[keep]
        space.position = {i: n for n, i in enumerate(space.ids)}
        self._save(namespace, space)

    def namespaces(self) -> dict[str, int]:
        names = set(self._spaces)
        if self.root is not None and self.root.is_dir():
            from urllib.parse import unquote

            names |= {unquote(p.name) for p in self.root.iterdir() if p.is_dir()}
        counts = {n: len(self._space(n).ids) for n in sorted(names)}
        return {n: c for n, c in counts.items() if c}
