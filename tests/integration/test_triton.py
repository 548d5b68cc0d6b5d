"""The real tritonserver (nvidia-pytriton's, python backend) over a generated repository.

Served: ``minilm`` and ``casestream_enrich`` with the committed production configs of
``model_repo/``, staged into a temporary repository. The ONNX files are the built ones
(fp32) when ``make models`` (and the heads' build) made them, else small generated models
with the same inputs and outputs. Outputs through gRPC and HTTP must equal in-process
onnxruntime on the same file within 1e-5.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from models import paths
from models.adapters.triton import SyncTritonEnrichClient, TritonEnrichClient, TritonError
from models.triton_backend.batching import run_joined
from models.triton_backend.manifest import read_manifest, sha256_file
from models.triton_backend.repo import check_cpu_alternatives, stage_model
from streams.services import triton as svc
from streams.services.process import alive, find_processes

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
#: ``CASESTREAM_TEST_TRITON_PORT_BASE`` moves them, so two checkouts can test at once. Keep
#: it below the ephemeral range (32768+ here): a client socket that happens to hold the
#: metrics port makes tritonserver exit after it reported ready (seen with 38100).
_BASE = int(os.environ.get("CASESTREAM_TEST_TRITON_PORT_BASE", "28100"))
PORTS = {"http_port": _BASE, "grpc_port": _BASE + 1, "metrics_port": _BASE + 2}
TOL = 1e-5
SENTENCES = [
    "I can't log in since this morning, the password reset email never arrives",
    "Why was I charged twice for the March invoice?",
    "hi",
    "Please export all our contacts to CSV, the export button does nothing",
    "I want to talk to a real person right now!!!",
    "How do I add a custom field to the deal pipeline view in the mobile app?",
    "thanks, that fixed it",
    "Your API returns 500 on every call to /v2/contacts since the last release; we are "
    "losing leads and my manager is furious, this is the third time this month",
]


def _tiny_model(path: Path, *, enrich: bool, intents: int = 26) -> Path:
    """Masked mean pooling over a hashed embedding table, plus softmax/sigmoid heads."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    dim, vocab = 384, 1000
    inits = [
        numpy_helper.from_array(rng.normal(size=(vocab, dim)).astype(np.float32), "table"),
        numpy_helper.from_array(np.array(vocab, dtype=np.int64), "vocab"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Mod", ["input_ids", "vocab"], ["ids"]),
        helper.make_node("Gather", ["table", "ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "two"], ["m3"]),
        helper.make_node("Mul", ["tok", "m3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["m3", "axis1"], ["count"], keepdims=0),
        helper.make_node("Max", ["count", "eps"], ["count1"]),
        helper.make_node("Div", ["summed", "count1"], ["mean"]),
        helper.make_node("ReduceL2", ["mean"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["norm1"]),
        helper.make_node("Div", ["mean", "norm1"], ["sentence_embedding"]),
    ]
    inits.append(numpy_helper.from_array(np.array([2], dtype=np.int64), "two"))
    outputs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["B", dim])]
    if enrich:
        for name, width, act in (
            ("intent_probs", intents, "Softmax"),
            ("sentiment_probs", 3, "Softmax"),
            ("frustration", 1, "Sigmoid"),
        ):
            weights = rng.normal(scale=3.0, size=(dim, width)).astype(np.float32)
            inits.append(numpy_helper.from_array(weights, f"w_{name}"))
            nodes.append(
                helper.make_node("MatMul", ["sentence_embedding", f"w_{name}"], [f"z_{name}"])
            )
            extra = {"axis": -1} if act == "Softmax" else {}
            nodes.append(helper.make_node(act, [f"z_{name}"], [name], **extra))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", width]))
    graph = helper.make_graph(
        nodes,
        "tiny_enrich" if enrich else "tiny_minilm",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "S"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["B", "S"]),
        ],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _tokenize(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids padded to the longest text: the real tokenizer when built, else fake ids."""
    tokenizer_path = paths.minilm_dir() / "tokenizer.json"
    if tokenizer_path.is_file():
        from models.embedder import load_tokenizer

        encodings = load_tokenizer(tokenizer_path).encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        return ids, np.array([e.attention_mask for e in encodings], dtype=np.int64)
    lengths = [len(t.split()) + 2 for t in texts]
    ids = np.zeros((len(texts), max(lengths)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, n in enumerate(lengths):
        ids[i, :n] = [101, *(hash(w) % 30000 + 1000 for w in texts[i].split()), 102]
        mask[i, :n] = 1
    return ids, mask


@dataclass
class Served:
    address: svc.TritonAddress
    data_dir: Path
    repo: Path
    sessions: dict[str, ort.InferenceSession]
    real: dict[str, bool]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not (REPO_ROOT / svc.TRITON_VENV / "bin" / "python").exists():
        pytest.skip(
            ".venv-triton is missing: run `make triton-env` (a prerequisite of `make test`)"
        )
    base = tmp_path_factory.mktemp("triton")
    repo = base / "model_repo"
    enrich = paths.models_dir() / "enrich"
    built = {
        "minilm": paths.minilm_dir() / "fp32" / "model.onnx",
        "casestream_enrich": next(
            (
                p
                for p in (enrich / "fp32" / "model.onnx", enrich / "int8" / "model.onnx")
                if p.is_file()
            ),
            enrich / "fp32" / "model.onnx",
        ),
    }
    sessions, real = {}, {}
    for name, source in built.items():
        (repo / name).mkdir(parents=True)
        shutil.copy(REPO_ROOT / "model_repo" / name / "config.pbtxt", repo / name)
        real[name] = source.is_file()
        if not real[name]:
            source = _tiny_model(base / "built" / name / "model.onnx", enrich=name != "minilm")
        manifest = stage_model(name, source, repo=repo)
        sessions[name] = ort.InferenceSession(
            str(repo / name / manifest.file), providers=["CPUExecutionProvider"]
        )
    data_dir = base / "data"
    grpc = svc.triton_up(REPO_ROOT, data_dir=data_dir, model_repo=repo, timeout=90, **PORTS)
    address = svc.triton_ports(PORTS["http_port"], PORTS["grpc_port"], PORTS["metrics_port"])
    assert grpc == address.grpc
    assert svc.triton_running_address(REPO_ROOT, data_dir) == address
    yield Served(address, data_dir, repo, sessions, real)
    svc.triton_down(REPO_ROOT, data_dir=data_dir)


def _reference(
    served: Served, model: str, ids: np.ndarray, mask: np.ndarray
) -> dict[str, np.ndarray]:
    session = served.sessions[model]
    names = [o.name for o in session.get_outputs()]
    return dict(
        zip(names, session.run(names, {"input_ids": ids, "attention_mask": mask}), strict=True)
    )


def _assert_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=TOL, err_msg=name)


def test_committed_configs_agree_with_cpu_alternatives() -> None:
    assert check_cpu_alternatives(REPO_ROOT / "model_repo") == []


def test_staging_checks_the_file_against_the_config(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "casestream_enrich").mkdir(parents=True)
    shutil.copy(
        REPO_ROOT / "model_repo" / "casestream_enrich" / "config.pbtxt", repo / "casestream_enrich"
    )
    embedder_only = _tiny_model(tmp_path / "minilm.onnx", enrich=False)
    with pytest.raises(ValueError, match="intent_probs: not in"):
        stage_model("casestream_enrich", embedder_only, repo=repo)
    wrong_k = _tiny_model(tmp_path / "enrich7.onnx", enrich=True, intents=7)
    with pytest.raises(ValueError, match=r"intent_probs: file shape \[7\], config dims \[26\]"):
        stage_model("casestream_enrich", wrong_k, repo=repo)
    enrich = _tiny_model(tmp_path / "enrich.onnx", enrich=True, intents=26)
    manifest = stage_model("casestream_enrich", enrich, repo=repo)
    assert read_manifest(repo / "casestream_enrich", verify=True) == manifest
    assert manifest.sha256 == sha256_file(enrich)


@pytest.mark.parametrize("model", ["minilm", "casestream_enrich"])
def test_grpc_matches_onnxruntime(served: Served, model: str) -> None:
    ids, mask = _tokenize(SENTENCES)

    async def call() -> dict[str, np.ndarray]:
        client = TritonEnrichClient(served.address.grpc, model, client_timeout=10.0)
        try:
            assert await client.ready()
            return await client.infer(ids, mask)
        finally:
            await client.close()

    _assert_close(asyncio.run(call()), _reference(served, model, ids, mask))


@pytest.mark.parametrize("model", ["minilm", "casestream_enrich"])
def test_http_matches_onnxruntime(served: Served, model: str) -> None:
    import tritonclient.http as httpclient

    ids, mask = _tokenize(SENTENCES)
    want = _reference(served, model, ids, mask)
    client = httpclient.InferenceServerClient(served.address.http)
    try:
        inputs = []
        for name, array in (("input_ids", ids), ("attention_mask", mask)):
            tensor = httpclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        result = client.infer(model, inputs)
        _assert_close({name: result.as_numpy(name) for name in want}, want)
    finally:
        client.close()


def test_sync_client_identity_and_readiness(served: Served) -> None:
    manifest = read_manifest(served.repo / "casestream_enrich", verify=True)
    with SyncTritonEnrichClient(served.address.grpc, "casestream_enrich") as client:
        assert client.ready()
        info = client.model_info()
        assert (info.name, info.version) == ("casestream_enrich", "1")
        assert (
            info.sha256
            == manifest.sha256
            == sha256_file(served.repo / "casestream_enrich" / manifest.file)
        )
        ids, mask = _tokenize(SENTENCES[:3])
        out = client.infer(ids, mask)
        assert out["intent_probs"].shape[0] == 3
        np.testing.assert_allclose(out["intent_probs"].sum(axis=1), 1.0, atol=1e-5)
    with SyncTritonEnrichClient(served.address.grpc, "no_such_model") as missing:
        assert not missing.ready()
    with SyncTritonEnrichClient("127.0.0.1:1", client_timeout=0.5) as nowhere:
        assert not nowhere.ready()
        with pytest.raises(TritonError):
            nowhere.infer(*_tokenize(SENTENCES[:1]))


def test_deadline_raises_timeout(served: Served) -> None:
    """(On the enrich model: the server may still run the abandoned request, and the
    batching test counts minilm's executions.)"""
    ids, mask = _tokenize(SENTENCES * 8)
    with (
        SyncTritonEnrichClient(
            served.address.grpc, "casestream_enrich", client_timeout=1e-4
        ) as client,
        pytest.raises(TritonError) as caught,
    ):
        client.infer(ids, mask)
    assert caught.value.timeout


def _stats(served: Served, model: str) -> tuple[int, int]:
    """(inferences, executions) so far, once the server has settled: a request whose client
    gave up (the deadline test) may still be running."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(served.address.grpc)
    try:
        last, deadline = (-1, -1), time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = client.get_inference_statistics(model).model_stats[0]
            now = (int(stats.inference_count), int(stats.execution_count))
            if now == last:
                return now
            last = now
            time.sleep(0.3)
        return last
    finally:
        client.close()


def test_dynamic_batching_joins_requests_of_different_lengths(served: Served) -> None:
    texts = [SENTENCES[i % len(SENTENCES)] + " " + "word " * (i % 5) for i in range(32)]
    encoded = [_tokenize([t]) for t in texts]
    assert len({ids.shape[1] for ids, _ in encoded}) > 5
    before = _stats(served, "minilm")

    async def burst() -> list[dict[str, np.ndarray]]:
        client = TritonEnrichClient(served.address.grpc, "minilm", client_timeout=30.0)
        try:
            return list(await asyncio.gather(*(client.infer(i, m) for i, m in encoded)))
        finally:
            await client.close()

    results = asyncio.run(burst())
    inferences, executions = (a - b for a, b in zip(_stats(served, "minilm"), before, strict=True))
    assert inferences == len(texts)
    print(f"\n{inferences} requests ran as {executions} executions")
    assert executions < len(texts) / 2, f"{executions} executions for {inferences} requests"
    for (ids, mask), got in zip(encoded, results, strict=True):
        _assert_close(got, _reference(served, "minilm", ids, mask))


def test_join_modes_agree() -> None:
    """``pad``, ``group`` and ``request`` give one result per request, in order."""
    session = _tiny_session()
    encoded = [_tokenize([s]) for s in SENTENCES] + [_tokenize(SENTENCES[:3])]
    requests = [{"input_ids": i, "attention_mask": m} for i, m in encoded]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"sentence_embedding": session.run(None, dict(inputs))[0]}

    want = run_joined(run, requests, "request")
    for mode in ("pad", "group"):
        got = run_joined(run, requests, mode)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g["sentence_embedding"], w["sentence_embedding"], atol=1e-6)


def _tiny_session() -> ort.InferenceSession:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"casestream-tiny-{os.getpid()}.onnx"
    _tiny_model(path, enrich=False)
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    finally:
        path.unlink()


def test_throughput_report(served: Served, record_property: pytest.RecordProperty) -> None:
    """req/s and sentences/s through Triton (gRPC), batch 1 and 32, one client, ~2 s each,
    beside in-process onnxruntime on the same batches."""
    figures = {}
    for batch in (1, 32):
        texts = [SENTENCES[i % len(SENTENCES)] for i in range(batch)]
        ids, mask = _tokenize(texts)

        async def loop(ids: np.ndarray = ids, mask: np.ndarray = mask) -> tuple[int, float]:
            client = TritonEnrichClient(served.address.grpc, "minilm", client_timeout=30.0)
            try:
                await client.infer(ids, mask)  # warm-up
                count, start = 0, time.perf_counter()
                while time.perf_counter() - start < 2.0:
                    await client.infer(ids, mask)
                    count += 1
                return count, time.perf_counter() - start
            finally:
                await client.close()

        count, elapsed = asyncio.run(loop())
        figures[f"batch{batch}_req_s"] = round(count / elapsed, 1)
        figures[f"batch{batch}_sentences_s"] = round(count * batch / elapsed, 1)
        session, feed = served.sessions["minilm"], {"input_ids": ids, "attention_mask": mask}
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 2.0:  # the same batch in-process, for comparison
            session.run(None, feed)
            count += 1
        figures[f"batch{batch}_inprocess_sentences_s"] = round(
            count * batch / (time.perf_counter() - start), 1
        )
    figures["real_minilm"] = served.real["minilm"]
    print(f"\ntriton minilm throughput: {figures}")
    for key, value in figures.items():
        record_property(key, value)
    assert figures["batch1_req_s"] > 0 and figures["batch32_sentences_s"] > 0


def _our_shm(pid: int) -> set[Path]:
    """The python-backend shm files our server maps."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if svc.SHM_PREFIX in line:
            found.add(Path(line.split()[-1]))
    return found


def test_killed_server_leaves_nothing_after_down(tmp_path: Path, served: Served) -> None:
    data_dir = tmp_path / "data"
    ports = {"http_port": _BASE + 10, "grpc_port": _BASE + 11, "metrics_port": _BASE + 12}
    svc.triton_up(REPO_ROOT, data_dir=data_dir, model_repo=served.repo, timeout=90, **ports)
    pid = int((data_dir / "tritonserver.pid").read_text())
    shm = _our_shm(pid)
    assert shm
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    svc.triton_down(REPO_ROOT, data_dir=data_dir)
    assert not any(p.exists() for p in shm)
    assert not find_processes("triton_python_backend_stub", str(data_dir))


def test_stop_leaves_no_shm(served: Served) -> None:
    """Last: stops the module's server (the fixture's own stop is then a no-op)."""
    pid = int((served.data_dir / "tritonserver.pid").read_text())
    shm = _our_shm(pid)
    assert shm
    assert svc.triton_down(REPO_ROOT, data_dir=served.data_dir)
    assert not any(p.exists() for p in shm)
    assert not svc.ready(served.address)
