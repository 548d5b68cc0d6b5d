"""Build all-MiniLM-L6-v2 as an ONNX graph (opset 17) straight from its safetensors.

The graph is the BERT encoder, attention-masked mean pooling and L2 normalisation, the
same computation as sentence-transformers, written with the ``onnx`` helper API so no
torch is needed. Inputs ``input_ids`` and ``attention_mask`` are INT64 ``[batch, seq]``;
the output ``sentence_embedding`` is FP32 ``[batch, 384]``.

Linear layers become ``MatMul`` with a constant (transposed) weight followed by ``Add``,
the shape ``quantize_dynamic`` recognises. Each layer's FFN-output MatMul is named
``layer{i}.ffn_out`` so the int8 build can leave it in fp32.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
OUTPUT = "sentence_embedding"
FFN_OUT_SUFFIX = ".ffn_out"


class _Graph:
    """Accumulates nodes and initializers; every helper returns its output's name."""

    def __init__(self, weights: dict[str, npt.NDArray[Any]], eps: float) -> None:
        self.w, self.eps = weights, eps
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: npt.ArrayLike, dtype: type = np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x: str, key: str, name: str) -> str:
        """``x @ W.T + b``: torch Linear weights are stored ``[out, in]``."""
        weight = self.const(f"{name}.weight", np.ascontiguousarray(self.w[f"{key}.weight"].T))
        return self.op("Add", [self.op("MatMul", [x, weight], name), f"{key}.bias"], f"{name}.add")

    def add_layer_norm(self, x: str, residual: str, key: str, name: str) -> str:
        """``LayerNorm(x + residual)`` with the checkpoint's ``key.weight`` and ``key.bias``."""
        total = self.op("Add", [x, residual], f"{name}.residual")
        params = [total, f"{key}.weight", f"{key}.bias"]
        return self.op("LayerNormalization", params, name, axis=-1, epsilon=self.eps)


def _encoder_layer(g: _Graph, h: str, i: int, bias: str, heads: int, hidden: int) -> str:
    """One BERT layer: self-attention, then the erf-GELU feed-forward block."""
    p, n = f"encoder.layer.{i}", f"layer{i}"
    split = g.const(f"{n}.shape.heads", [0, 0, heads, hidden // heads], np.int64)

    def project(kind: str, perm: list[int]) -> str:
        x = g.linear(h, f"{p}.attention.self.{kind}", f"{n}.{kind}")
        x = g.op("Reshape", [x, split], f"{n}.{kind}.split")
        return g.op("Transpose", [x], f"{n}.{kind}.heads", perm=perm)

    q = project("query", [0, 2, 1, 3])  # [B, H, S, D]
    k = project("key", [0, 2, 3, 1])  # [B, H, D, S]
    v = project("value", [0, 2, 1, 3])  # [B, H, S, D]
    scale = g.const(f"{n}.scale", 1.0 / math.sqrt(hidden // heads))
    scores = g.op("Mul", [g.op("MatMul", [q, k], f"{n}.qk"), scale], f"{n}.scores")
    scores = g.op("Add", [scores, bias], f"{n}.masked")
    probs = g.op("Softmax", [scores], f"{n}.probs", axis=-1)
    ctx = g.op("MatMul", [probs, v], f"{n}.ctx")
    ctx = g.op("Transpose", [ctx], f"{n}.ctx.t", perm=[0, 2, 1, 3])
    merge = g.const(f"{n}.shape.hidden", [0, 0, hidden], np.int64)
    ctx = g.op("Reshape", [ctx, merge], f"{n}.ctx.merged")
    attn = g.linear(ctx, f"{p}.attention.output.dense", f"{n}.attn_out")
    h = g.add_layer_norm(attn, h, f"{p}.attention.output.LayerNorm", f"{n}.attn.ln")

    x = g.linear(h, f"{p}.intermediate.dense", f"{n}.ffn_in")
    # exact (erf) GELU in the pattern onnxruntime fuses: (x * (1 + erf(x / sqrt2))) * 0.5
    scaled = g.op("Div", [x, g.const(f"{n}.sqrt2", math.sqrt(2.0))], f"{n}.div")
    erf1 = g.op("Add", [g.op("Erf", [scaled], f"{n}.erf"), g.const(f"{n}.one", 1.0)], f"{n}.erf1")
    x = g.op("Mul", [x, erf1], f"{n}.xerf1")
    x = g.op("Mul", [x, g.const(f"{n}.half", 0.5)], f"{n}.gelu")
    x = g.linear(x, f"{p}.output.dense", f"{n}{FFN_OUT_SUFFIX}")
    return g.add_layer_norm(x, h, f"{p}.output.LayerNorm", f"{n}.ffn.ln")


def build_graph(model_dir: Path) -> onnx.ModelProto:
    """The encoder + pooling + normalisation model for the checkpoint in ``model_dir``."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden: int = config["hidden_size"]
    if config["hidden_act"] != "gelu" or config["position_embedding_type"] != "absolute":
        raise ValueError(f"unsupported BERT config: {config}")
    w = load_file(str(model_dir / "model.safetensors"))
    g = _Graph(w, eps=config["layer_norm_eps"])
    for key, value in w.items():  # biases and LayerNorm parameters are used as they are
        if not key.startswith("pooler.") and (key.endswith(".bias") or "LayerNorm" in key):
            g.const(key, value)

    # Embeddings: token type ids are always 0, so fold that row into the position table.
    words = g.const("embeddings.word", w["embeddings.word_embeddings.weight"])
    type0 = w["embeddings.token_type_embeddings.weight"][0]
    table = g.const("embeddings.position0", w["embeddings.position_embeddings.weight"] + type0)
    zero, one = g.const("i64.0", [0], np.int64), g.const("i64.1", [1], np.int64)
    shape = g.op("Shape", [INPUT_IDS], "ids.shape")
    seq_len = g.op("Slice", [shape, one, g.const("i64.2", [2], np.int64)], "seq_len")
    positions = g.op("Slice", [table, zero, seq_len, zero], "positions")
    words_out = g.op("Gather", [words, INPUT_IDS], "words")
    h = g.add_layer_norm(words_out, positions, "embeddings.LayerNorm", "embeddings.ln")

    # Additive attention bias (1 - mask) * float32.min, shaped [B, 1, 1, S].
    mask = g.op("Cast", [ATTENTION_MASK], "mask.f32", to=TensorProto.FLOAT)
    bias = g.op("Sub", [g.const("f32.1", 1.0), mask], "mask.inverted")
    bias = g.op("Mul", [bias, g.const("f32.min", np.finfo(np.float32).min)], "mask.bias2d")
    bias = g.op("Unsqueeze", [bias, g.const("axes.1_2", [1, 2], np.int64)], "mask.bias")
    for i in range(config["num_hidden_layers"]):
        h = _encoder_layer(g, h, i, bias, config["num_attention_heads"], hidden)

    # Masked mean pooling, then L2 normalisation (sentence-transformers' clamps).
    mask3 = g.op("Unsqueeze", [mask, g.const("axes.2", [2], np.int64)], "mask.3d")
    summed = g.op("Mul", [h, mask3], "pool.masked")
    summed = g.op("ReduceSum", [summed, one], "pool.sum", keepdims=0)
    count = g.op("ReduceSum", [mask3, one], "pool.count", keepdims=0)
    count = g.op("Max", [count, g.const("f32.1e-9", 1e-9)], "pool.count.clamped")
    mean = g.op("Div", [summed, count], "pool.mean")
    norm = g.op("ReduceL2", [mean], "norm", axes=[1], keepdims=1)
    norm = g.op("Max", [norm, g.const("f32.1e-12", 1e-12)], "norm.clamped")
    g.nodes.append(helper.make_node("Div", [mean, norm], [OUTPUT], name="normalize"))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(ATTENTION_MASK, TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", hidden])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="casestream.models"
    )
    model.ir_version = 8  # opset 17 needs IR >= 8; keeps older runtimes able to load it
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: Path) -> None:
    """Write one self-contained ``.onnx`` file (no external ``.onnx.data``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=False)
