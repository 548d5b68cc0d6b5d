"""Sentence embeddings this process has already computed, by embedder graph and text.

The enrich model is the MiniLM encoder with the heads on top, so when it runs a message
alone (a micro-batch of one: no padding, the same activation scales) its
``sentence_embedding`` is bit-for-bit what the knowledge base's query embedder computes
for the same text (the same sha256 of the same graph). A worker that enriches a message
and then answers it asks the knowledge base with that text, so the retriever takes the
vector from here instead of running the encoder a second time (about a third of an
answer turn's time). Rows of larger batches are never kept: under int8's dynamic
quantisation they depend on their neighbours. Bounded (least recently used out) and
thread-safe: enrichment runs on a worker thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]

#: Entries kept per process (384 float32 each: 1.5 KiB, so about 6 MiB in all).
MAX_ENTRIES = 4096


class EmbeddingMemo:
    """An LRU of ``(embedder sha256, text) -> embedding`` (read-only arrays)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], FloatArray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, embedder_sha256: str, text: str, vector: FloatArray) -> None:
        kept = np.array(vector, dtype=np.float32, copy=True)
        kept.flags.writeable = False
        with self._lock:
            self._entries[(embedder_sha256, text)] = kept
            self._entries.move_to_end((embedder_sha256, text))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def recall(self, embedder_sha256: str, text: str) -> FloatArray | None:
        with self._lock:
            found = self._entries.get((embedder_sha256, text))
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end((embedder_sha256, text))
            self.hits += 1
            return found

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


#: The process's memo, shared by the enrich adapter (writer) and the retriever (reader).
MEMO = EmbeddingMemo()
