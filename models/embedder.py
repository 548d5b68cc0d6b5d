"""The runtime sentence embedder: all-MiniLM-L6-v2 on onnxruntime, no torch.

>>> embedder = Embedder.load("int8")          # after `make models`
>>> embedder.encode(["reset my password"]).shape
(1, 384)

Embeddings are L2-normalised float32, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from models import paths

NAME = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_SEQ_LENGTH = 256  # sentence_bert_config.json
VARIANTS = ("fp32", "int8")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_tokenizer(path: Path) -> Tokenizer:
    """The model's tokenizer, padded to the longest text and truncated at 256 tokens.

    ``tokenizer.json`` itself pads and truncates at 128; sentence-transformers does neither.
    """
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.enable_truncation(max_length=MAX_SEQ_LENGTH)
    return tokenizer


@dataclass(frozen=True, slots=True)
class Embedder:
    """One loaded variant of the embedder: an onnxruntime session and its tokenizer."""

    name: str
    variant: str
    path: Path
    sha256: str
    tokenizer: Tokenizer = field(repr=False)
    session: Any = field(repr=False)  # onnxruntime.InferenceSession (untyped)

    @classmethod
    def load(
        cls, variant: str = "int8", root: Path | None = None, intra_op_num_threads: int = 0
    ) -> Embedder:
        """Load ``<root>/minilm/<variant>/model.onnx`` (root: ``paths.models_dir()``).

        ``intra_op_num_threads=0`` lets onnxruntime choose. Raises FileNotFoundError when
        the model has not been built (``make models``).
        """
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
        base = paths.minilm_dir(root)
        model_path, tokenizer_path = base / variant / "model.onnx", base / "tokenizer.json"
        for p in (model_path, tokenizer_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} is missing: run `make models`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_num_threads
        session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(
            name=NAME,
            variant=variant,
            path=model_path,
            sha256=sha256_of(model_path),
            tokenizer=load_tokenizer(tokenizer_path),
            session=session,
        )

    def tokenize(self, texts: Sequence[str]) -> tuple[IntArray, IntArray]:
        """``(input_ids, attention_mask)``, int64 ``[len(texts), longest (<= 256)]``."""
        encodings = self.tokenizer.encode_batch(list(texts))
        input_ids = np.array([e.ids for e in encodings], dtype=np.int64)
        attention_mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return input_ids, attention_mask

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> FloatArray:
        """L2-normalised embeddings, float32 ``(len(texts), 384)``, in input order.

        Texts are run ``batch_size`` at a time, longest first (as sentence-transformers
        does), so each batch pads to similar lengths.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, attention_mask = self.tokenize([texts[i] for i in rows])
            (embeddings,) = self.session.run(
                None, {"input_ids": input_ids, "attention_mask": attention_mask}
            )
            out[rows] = embeddings
        return out
