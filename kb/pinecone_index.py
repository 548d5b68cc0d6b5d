"""The vector-index port on Pinecone's data plane (the ``pinecone`` package's ``Index``).

The client talks to one index host (``https://<index>-<project>.svc.<region>.pinecone.io``,
or a local server in tests); the index must be a dense index with the ``cosine`` metric
and the embedder's dimension (384). Namespaces are tenants, as in the port.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kb.index import FloatArray, Match, Metadata, VectorRecord

UPSERT_BATCH = 100  # Pinecone's recommended vectors per upsert request
DELETE_BATCH = 1000  # Pinecone's limit of ids per delete request


def _values(values: Sequence[float] | FloatArray) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float32).tolist()]


class PineconeIndex:
    """:class:`kb.index.VectorIndex` over ``pinecone.Index(host=..., api_key=...)``."""

    def __init__(self, host: str, api_key: str, *, timeout: float = 10.0) -> None:
        from pinecone import Index

        self.host = host
        self._index: Any = Index(host=host, api_key=api_key, timeout=timeout)

    def upsert(self, namespace: str, records: Sequence[VectorRecord]) -> int:
        written = 0
        for start in range(0, len(records), UPSERT_BATCH):
            chunk = records[start : start + UPSERT_BATCH]
            vectors = [
                {"id": r.id, "values": _values(r.values), "metadata": dict(r.metadata)}
                for r in chunk
            ]
            response = self._index.upsert(vectors=vectors, namespace=namespace)
            written += int(response.upserted_count)
        return written

    def query(
        self,
        namespace: str,
        vector: Sequence[float] | FloatArray,
        top_k: int,
        filter: Metadata | None = None,
    ) -> list[Match]:
        response = self._index.query(
            vector=_values(vector),
            top_k=top_k,
            namespace=namespace,
            filter=dict(filter) if filter else None,
            include_metadata=True,
        )
        return [Match(m.id, float(m.score), dict(m.metadata or {})) for m in response.matches]

    def delete(self, namespace: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH):
            self._index.delete(ids=list(ids[start : start + DELETE_BATCH]), namespace=namespace)

    def namespaces(self) -> dict[str, int]:
        stats = self._index.describe_index_stats()
        counts = {name: int(s.vector_count) for name, s in stats.namespaces.items()}
        return {name: n for name, n in sorted(counts.items()) if n and name != "__default__"}

    def close(self) -> None:
        self._index.close()
