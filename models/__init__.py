"""Local models: the torch-free all-MiniLM-L6-v2 sentence embedder (ONNX, fp32 and int8)."""
