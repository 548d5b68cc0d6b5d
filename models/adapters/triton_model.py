"""The ``triton`` adapter: the enrich model served by Triton, as an IntentSentimentModel.

Texts are tokenised here and sent as length-sorted micro-batches over async gRPC
(:mod:`models.adapters.triton`); the outputs become predictions exactly as the local
adapter makes them. The model identity recorded in events is what the server says it
serves (name, version, sha256 from its config), and the label order comes from the local
build with that same sha256, so a server serving another build is refused at start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from events.enrichment import ModelInfo
from models import paths
from models.adapters.local import (
    EnrichArtefact,
    FloatArray,
    IntArray,
    micro_batched,
    to_predictions,
)
from models.adapters.triton import SyncTritonEnrichClient
from models.embedder import VARIANTS, load_tokenizer
from processors.baseline import BaselineLexicalModel
from processors.ports import Prediction


class TritonEnrichModel:
    """:class:`processors.ports.IntentSentimentModel` over a Triton server."""

    def __init__(
        self,
        url: str,
        model_name: str = "casestream_enrich",
        *,
        timeout_s: float = 2.0,
        max_batch: int = 32,
        root: Path | None = None,
    ) -> None:
        self.client = SyncTritonEnrichClient(url, model_name, client_timeout=timeout_s)
        try:
            served = self.client.model_info()
            self.artefact = _artefact_with(served.sha256, root)
        except Exception:
            self.client.close()
            raise
        self._info = served
        self.tokenizer = load_tokenizer(paths.minilm_dir(root) / "tokenizer.json")
        self.max_batch = max_batch
        self._rules = BaselineLexicalModel()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        def run(ids: IntArray, mask: IntArray) -> Mapping[str, FloatArray]:
            return self.client.infer(ids, mask)

        outputs = micro_batched(self.tokenizer, texts, self.max_batch, run)
        return to_predictions(texts, outputs, self.artefact, self._rules)

    def close(self) -> None:
        self.client.close()


def _artefact_with(sha256: str, root: Path | None) -> EnrichArtefact:
    builds = []
    for variant in VARIANTS:
        try:
            artefact = EnrichArtefact.load(variant, root)
        except FileNotFoundError:
            continue
        if artefact.info.sha256 == sha256:
            return artefact
        builds.append(f"{variant}={artefact.info.sha256[:12]}")
    raise RuntimeError(
        f"Triton serves enrich model sha256 {sha256[:12] or '?'}, which matches no local"
        f" build ({', '.join(builds) or 'none built'}): restage with `make triton`"
    )
