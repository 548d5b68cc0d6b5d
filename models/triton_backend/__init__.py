"""Serving the ONNX models with Triton.

``repo`` stages built files into ``model_repo/`` and generates the local python-backend
repository; ``manifest`` is the per-model manifest format; ``server_env`` locates
``.venv-triton`` and lays out the backends directory that the bare server needs.
``model.py`` and ``batching.py`` run inside the tritonserver python stub (``.venv-triton``,
numpy < 2): ``model.py`` imports ``triton_python_backend_utils`` and is not importable here.
"""
