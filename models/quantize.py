"""The int8 variant: dynamic quantization of the fp32 graph's weight MatMuls.

``quantize_dynamic`` with MatMul only and per-channel int8 weights. Activation scales
are per tensor over the whole batch (padding included), which costs accuracy in mixed
padded batches; leaving the six FFN-output MatMuls (``layer{i}.ffn_out``) in fp32 keeps
cosine to fp32 >= 0.98 everywhere (FIELD-NOTES: min 0.990).
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from models.embedder_graph import FFN_OUT_SUFFIX


def ffn_out_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the FFN-output MatMuls, the ones kept in fp32."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and node.name.endswith(FFN_OUT_SUFFIX)
    ]


def quantize_int8(fp32_path: Path, out_path: Path, keep_ffn_out_fp32: bool = True) -> None:
    """Write the int8 model for ``fp32_path`` to ``out_path`` (one self-contained file)."""
    exclude = ffn_out_nodes(onnx.load(str(fp32_path))) if keep_ffn_out_fp32 else []
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        fp32_path,
        out_path,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        use_external_data_format=False,
    )
