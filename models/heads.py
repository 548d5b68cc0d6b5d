"""Classifier heads on frozen sentence embeddings, their calibration and their ONNX graphs.

A :class:`SoftmaxHead` is a multinomial logistic regression with a temperature:
``probs = softmax((x @ weight + bias) / temperature)``; a :class:`RegressionHead` is a
linear score clipped to ``[low, high]`` (the frustration score). Both become plain ONNX
nodes (MatMul, Add, Div, Softmax / Clip) reading ``sentence_embedding``, so a head can be
saved on its own or appended to the embedder's graph (:mod:`models.compose`) by the same
code, and numpy (:meth:`predict_proba`) and onnxruntime compute the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

EMBEDDING = "sentence_embedding"
DIMENSION = 384
OPSET = 17
IR_VERSION = 8  # what the embedder graph uses; onnxruntime and Triton 2.5x both read it
ECE_BINS = 15


@dataclass(frozen=True, slots=True)
class SoftmaxHead:
    """``softmax((x @ weight + bias) / temperature)`` over ``labels`` (in that order)."""

    labels: tuple[str, ...]
    weight: F32  # (D, K)
    bias: F32  # (K,)
    temperature: float = 1.0

    def logits(self, x: npt.ArrayLike) -> F64:
        """Uncalibrated logits, float64 ``(N, K)``, from the float32 parameters."""
        x64 = np.asarray(x, dtype=np.float64)
        return x64 @ self.weight.astype(np.float64) + self.bias.astype(np.float64)

    def predict_proba(self, x: npt.ArrayLike) -> F64:
        return softmax(self.logits(x) / self.temperature)


@dataclass(frozen=True, slots=True)
class RegressionHead:
    """``clip(x @ weight + bias, low, high)``, shape ``(N, 1)``."""

    weight: F32  # (D, 1)
    bias: F32  # (1,)
    low: float = 0.0
    high: float = 1.0

    def predict(self, x: npt.ArrayLike) -> F64:
        x64 = np.asarray(x, dtype=np.float64)
        raw = x64 @ self.weight.astype(np.float64) + self.bias.astype(np.float64)
        return np.clip(raw, self.low, self.high)


# --- calibration ---------------------------------------------------------------------


def softmax(z: npt.ArrayLike) -> F64:
    z64 = np.asarray(z, dtype=np.float64)
    e = np.exp(z64 - z64.max(axis=1, keepdims=True))
    out: F64 = e / e.sum(axis=1, keepdims=True)
    return out


def nll(probs: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Mean negative log-likelihood of the true classes ``y`` (class indices)."""
    p = np.asarray(probs, dtype=np.float64)
    idx = np.asarray(y, dtype=np.int64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(idx)), idx], 1e-300, None))))


def expected_calibration_error(
    probs: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """Top-label ECE: the bins ``(i/n, (i+1)/n]`` of the top probability, each
    ``|accuracy - mean confidence|`` weighted by its share of rows (Guo et al., 2017)."""
    p = np.asarray(probs, dtype=np.float64)
    idx = np.asarray(y, dtype=np.int64)
    if len(idx) == 0:
        return 0.0
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == idx).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
            total += gap * in_bin.sum() / len(idx)
    return float(total)


def fit_temperature(logits: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` (T in [0.02, 50]).

    A golden-section search on ``log T`` (the NLL is convex in ``1/T``), so the result
    is deterministic and needs no optimiser state.
    """
    z = np.asarray(logits, dtype=np.float64)
    idx = np.asarray(y, dtype=np.int64)

    def loss(log_t: float) -> float:
        return nll(softmax(z / math.exp(log_t)), idx)

    lo, hi = math.log(0.02), math.log(50.0)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > 1e-6:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = loss(b)
    return float(round(math.exp((lo + hi) / 2.0), 6))


# --- ONNX ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphPart:
    """Nodes and initializers computing one output from ``sentence_embedding``."""

    nodes: tuple[onnx.NodeProto, ...]
    initializers: tuple[onnx.TensorProto, ...]
    output: onnx.ValueInfoProto


def softmax_part(head: SoftmaxHead, output: str, prefix: str) -> GraphPart:
    """MatMul + Add + Div(temperature) + Softmax -> ``output`` FP32 ``[batch, K]``."""
    p = f"{prefix}/"
    inits = (
        numpy_helper.from_array(np.ascontiguousarray(head.weight, np.float32), p + "weight"),
        numpy_helper.from_array(np.ascontiguousarray(head.bias, np.float32), p + "bias"),
        numpy_helper.from_array(np.array(head.temperature, np.float32), p + "temperature"),
    )
    nodes = (
        helper.make_node("MatMul", [EMBEDDING, p + "weight"], [p + "xw"], name=p + "matmul"),
        helper.make_node("Add", [p + "xw", p + "bias"], [p + "logits"], name=p + "add"),
        helper.make_node("Div", [p + "logits", p + "temperature"], [p + "scaled"], name=p + "div"),
        helper.make_node("Softmax", [p + "scaled"], [output], name=p + "softmax", axis=-1),
    )
    info = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", len(head.labels)])
    return GraphPart(nodes, inits, info)


def regression_part(head: RegressionHead, output: str, prefix: str) -> GraphPart:
    """MatMul + Add + Clip(low, high) -> ``output`` FP32 ``[batch, 1]``."""
    p = f"{prefix}/"
    inits = (
        numpy_helper.from_array(np.ascontiguousarray(head.weight, np.float32), p + "weight"),
        numpy_helper.from_array(np.ascontiguousarray(head.bias, np.float32), p + "bias"),
        numpy_helper.from_array(np.array(head.low, np.float32), p + "low"),
        numpy_helper.from_array(np.array(head.high, np.float32), p + "high"),
    )
    nodes = (
        helper.make_node("MatMul", [EMBEDDING, p + "weight"], [p + "xw"], name=p + "matmul"),
        helper.make_node("Add", [p + "xw", p + "bias"], [p + "raw"], name=p + "add"),
        helper.make_node("Clip", [p + "raw", p + "low", p + "high"], [output], name=p + "clip"),
    )
    info = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 1])
    return GraphPart(nodes, inits, info)


def head_model(parts: Sequence[GraphPart], name: str, doc: str = "") -> onnx.ModelProto:
    """A standalone model: ``sentence_embedding`` FP32 ``[batch, 384]`` -> the parts' outputs."""
    graph = helper.make_graph(
        nodes=[n for part in parts for n in part.nodes],
        name=name,
        inputs=[helper.make_tensor_value_info(EMBEDDING, TensorProto.FLOAT, ["batch", DIMENSION])],
        outputs=[part.output for part in parts],
        initializer=[t for part in parts for t in part.initializers],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="casestream",
        ir_version=IR_VERSION,
        doc_string=doc,
    )
    onnx.checker.check_model(model)
    return model


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return path


# --- weights on disk (exact, for reloading and determinism checks) --------------------


def save_weights(path: Path, heads: dict[str, SoftmaxHead | RegressionHead]) -> Path:
    arrays: dict[str, Any] = {}
    for key, head in heads.items():
        arrays[f"{key}.weight"] = head.weight
        arrays[f"{key}.bias"] = head.bias
        if isinstance(head, SoftmaxHead):
            arrays[f"{key}.temperature"] = np.array(head.temperature)
            arrays[f"{key}.labels"] = np.array(head.labels)
        else:
            arrays[f"{key}.range"] = np.array([head.low, head.high])
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, **arrays)
    return path


def load_weights(path: Path) -> dict[str, SoftmaxHead | RegressionHead]:
    heads: dict[str, SoftmaxHead | RegressionHead] = {}
    with np.load(path) as data:
        for key in sorted({k.rsplit(".", 1)[0] for k in data.files}):
            weight, bias = data[f"{key}.weight"], data[f"{key}.bias"]
            if f"{key}.labels" in data.files:
                labels = tuple(str(s) for s in data[f"{key}.labels"])
                heads[key] = SoftmaxHead(labels, weight, bias, float(data[f"{key}.temperature"]))
            else:
                low, high = (float(v) for v in data[f"{key}.range"])
                heads[key] = RegressionHead(weight, bias, low, high)
    return heads
