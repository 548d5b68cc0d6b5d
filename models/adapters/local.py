"""The ``local`` adapter: the merged enrich model on onnxruntime, in-process.

The enrich model is one ONNX graph (MiniLM encoder + intent and sentiment heads):
``input_ids``/``attention_mask`` in, ``intent_probs``, ``sentiment_probs`` and
``frustration`` out. A call with many texts is micro-batched: texts are sorted by
token length and run ``max_batch`` at a time, so a long text pads only its neighbours.
The Triton adapter turns the same outputs into predictions with :func:`to_predictions`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from events.enrichment import IntentScore, ModelInfo, Sentiment
from models import paths
from models.embedder import load_tokenizer, sha256_of
from models.memo import MEMO
from processors.baseline import BaselineLexicalModel, detect_language
from processors.ports import Prediction
from processors.taxonomy import HUMAN_REQUEST

TOP_INTENTS = 5
OUTPUTS = ("intent_probs", "sentiment_probs", "frustration")
EMBEDDING = "sentence_embedding"
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class EnrichArtefact:
    """A built enrich model: its file, label orders and identity."""

    path: Path
    intent_labels: tuple[str, ...]
    sentiment_labels: tuple[str, ...]
    info: ModelInfo
    #: sha256 of the MiniLM graph the model was composed from ("" when not recorded)
    embedder_sha256: str = ""

    @classmethod
    def load(cls, variant: str = "int8", root: Path | None = None) -> EnrichArtefact:
        base = (root if root is not None else paths.models_dir()) / "enrich" / variant
        model_path = base / "model.onnx"
        if not model_path.is_file():
            raise FileNotFoundError(f"{model_path} is missing: run `make models`")
        labels = json.loads((base / "labels.json").read_text())
        manifest_path = base / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        info = ModelInfo(
            name=str(manifest.get("name", f"casestream-enrich-{variant}")),
            version=str(manifest.get("version", "0")),
            sha256=sha256_of(model_path),
        )
        embedder = manifest.get("embedder")
        return cls(
            model_path,
            tuple(labels["intent"]),
            tuple(labels["sentiment"]),
            info,
            str(embedder.get("sha256", "")) if isinstance(embedder, dict) else "",
        )


def to_predictions(
    texts: Sequence[str],
    outputs: Mapping[str, npt.NDArray[np.float32]],
    artefact: EnrichArtefact,
    rules: BaselineLexicalModel,
) -> list[Prediction]:
    """Model outputs (rows in ``texts`` order) -> one :class:`Prediction` per text."""
    intent_probs, sentiment_probs = outputs["intent_probs"], outputs["sentiment_probs"]
    frustration = outputs["frustration"].reshape(len(texts), -1)[:, 0]
    pos = {label: i for i, label in enumerate(artefact.sentiment_labels)}
    predictions = []
    for i, text in enumerate(texts):
        order = np.argsort(-intent_probs[i], kind="stable")[:TOP_INTENTS]
        intents = tuple(
            IntentScore(label=artefact.intent_labels[j], score=round(float(intent_probs[i, j]), 6))
            for j in order
        )
        s = sentiment_probs[i]
        valence = float(s[pos["positive"]] - s[pos["negative"]])
        flags = rules.risk_flags(text)
        if intents and intents[0].label == HUMAN_REQUEST:
            flags = tuple(sorted({*flags, HUMAN_REQUEST}))
        predictions.append(
            Prediction(
                intents=intents,
                sentiment=Sentiment(
                    label=artefact.sentiment_labels[int(np.argmax(s))],
                    valence=round(valence, 6),
                    frustration=round(float(np.clip(frustration[i], 0.0, 1.0)), 6),
                ),
                language=detect_language(text),
                flags=flags,
            )
        )
    return predictions


class LocalEnrichModel:
    """:class:`processors.ports.IntentSentimentModel` on onnxruntime in this process."""

    def __init__(
        self,
        variant: str = "int8",
        root: Path | None = None,
        max_batch: int = 32,
        intra_op_num_threads: int = 0,
    ) -> None:
        self.artefact = EnrichArtefact.load(variant, root)
        self.tokenizer = load_tokenizer(paths.minilm_dir(root) / "tokenizer.json")
        self.max_batch = max_batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        self.session: Any = ort.InferenceSession(
            str(self.artefact.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rules = BaselineLexicalModel()
        #: the MiniLM graph inside this model (its manifest names it): the key under which
        #: its embeddings serve the knowledge base's queries; "" = not known, not shared
        self._memo_key = self.artefact.embedder_sha256

    @property
    def info(self) -> ModelInfo:
        return self.artefact.info

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return to_predictions(texts, self.infer(texts), self.artefact, self._rules)

    def infer(self, texts: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """Raw outputs for ``texts`` (rows in order), run in length-sorted micro-batches."""

        names = [*OUTPUTS, EMBEDDING] if self._memo_key and len(texts) == 1 else list(OUTPUTS)

        def run(ids: IntArray, mask: IntArray) -> Mapping[str, FloatArray]:
            values = self.session.run(names, {"input_ids": ids, "attention_mask": mask})
            return dict(zip(names, values, strict=True))

        outputs = micro_batched(self.tokenizer, texts, self.max_batch, run, [*names])
        if EMBEDDING in outputs:  # one text, run alone: exactly the query embedder's vector
            MEMO.remember(self._memo_key, texts[0], outputs.pop(EMBEDDING)[0])
        return outputs


def micro_batched(
    tokenizer: Tokenizer,
    texts: Sequence[str],
    max_batch: int,
    run: Callable[[IntArray, IntArray], Mapping[str, FloatArray]],
    outputs: Sequence[str] = OUTPUTS,
) -> dict[str, FloatArray]:
    """Tokenise, sort by length, ``run`` ``max_batch`` rows at a time, restore the order."""
    encodings = tokenizer.encode_batch(list(texts))
    lengths = np.array([sum(e.attention_mask) for e in encodings])
    order = np.argsort(lengths, kind="stable")
    results: dict[str, FloatArray] = {}
    for start in range(0, len(order), max_batch):
        rows = order[start : start + max_batch]
        width = int(lengths[rows].max())
        ids = np.array([encodings[r].ids[:width] for r in rows], dtype=np.int64)
        mask = np.array([encodings[r].attention_mask[:width] for r in rows], dtype=np.int64)
        for name, value in run(ids, mask).items():
            if name not in outputs:
                continue
            if name not in results:
                results[name] = np.empty((len(texts), *value.shape[1:]), dtype=np.float32)
            results[name][rows] = value
    return results
