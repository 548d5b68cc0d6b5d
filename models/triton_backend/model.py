"""Triton python-backend model: runs a model's ``model.onnx`` with onnxruntime on CPU.

Used only by the local tritonserver (from nvidia-pytriton, which has no onnxruntime
backend); production serves the same file with ``platform: "onnxruntime_onnx"``. This file
runs inside the stub, in ``.venv-triton`` (numpy < 2), and is copied with ``batching.py``
into each version folder of the generated repository (``models.triton_backend.repo``).

Inputs and outputs come from the model's config; its ``parameters`` say which file to load
(``onnx_file``), how to join a batch of requests (``join``, see ``batching``) and the
onnxruntime thread counts (``intra_op_thread_count``, ``inter_op_thread_count``, as the
onnxruntime backend names them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils  # provided by the stub
from batching import check_request, run_joined  # beside this file in the version folder


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = Path(args["model_repository"]) / args["model_version"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_thread_count", "0"))
        options.inter_op_num_threads = int(params.get("inter_op_thread_count", "0"))
        self.session = ort.InferenceSession(
            str(version_dir / params.get("onnx_file", "model.onnx")),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.join = params.get("join", "pad")
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [
            (o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]
        ]

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [name for name, _ in self.outputs]
        return dict(zip(names, self.session.run(names, inputs), strict=True))

    def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        runnable: list[int] = []
        batch: list[dict[str, np.ndarray]] = []
        for i, request in enumerate(requests):
            inputs = {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self.inputs
            }
            problem = check_request(inputs)
            if problem:
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(problem))
            else:
                runnable.append(i)
                batch.append(inputs)
        try:
            results = run_joined(self._run, batch, self.join)
        except Exception as exc:  # an onnxruntime failure fails this batch, not the server
            error = pb_utils.TritonError(f"onnxruntime: {exc}")
            for i in runnable:
                responses[i] = pb_utils.InferenceResponse(error=error)
            return responses
        for i, result in zip(runnable, results, strict=True):
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(result[name], dtype=dtype))
                for name, dtype in self.outputs
            ]
            responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def finalize(self) -> None:
        self.session = None
