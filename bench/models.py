"""Models benchmark: the enrich model bare, through the live driver, and through Triton.

Prints progress to stderr and ends with one JSON line on stdout. Figures (one run,
same texts, 2 cores shared by everything):
  bare_int8_b1 / bare_int8_b32 / bare_fp32_b1: sentences/s of the merged enrich model
      (MiniLM + heads) on onnxruntime in this process, tokenisation and post-processing
      included (LocalEnrichModel.predict), one call per batch;
  pipeline: sentences/s of enrichment through the live driver on the local broker: N
      MessageReceived events are published first, then an enrich-only worker (the model
      nodes' deployment) drains them; rate = MessageEnriched records / their time span;
  triton_b1 / triton_b32: sentences/s through the local tritonserver (gRPC), one client;
  ratio: pipeline / bare model at the pipeline's batch size: the worker hands the model
      up to batch_max (256) texts per call, which it runs length-sorted, model_max_batch
      (32) at a time; the bare figure bare_int8_b256 makes the same calls;
  int8_b32_over_fp32_b1: the quantisation + batching gain;
  worker_rss_mib: peak RSS of the worker with the model loaded.
Usage: python bench/models.py [--messages N] [--seconds S] [--no-triton]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backbone import publish, rss_peak_mib
from models.adapters.local import LocalEnrichModel
from streams import services
from streams.kafka import create_topics
from tests.factories import SAMPLE_TEXTS
from tests.support import TopicWatcher, WorkerProcess, unique_settings


def log(msg: str) -> None:
    print(f"[bench-models] {msg}", file=sys.stderr, flush=True)


def texts(n: int) -> list[str]:
    return [SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for i in range(n)]


def rate_of(predict: object, batch: int, seconds: float) -> float:
    """Sentences/s of ``predict(list_of_batch_texts)`` over about ``seconds``."""
    assert callable(predict)
    sample = texts(batch * 64)
    predict(sample[:batch])  # warm-up
    done, i, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = sample[i : i + batch] or sample[:batch]
        predict(chunk)
        done += len(chunk)
        i = (i + batch) % len(sample)
    return done / (time.perf_counter() - started)


def pipeline_phase(bootstrap: str, n: int, batch: int, call: int, tmp: Path) -> tuple[float, float]:
    settings = unique_settings(
        bootstrap, model="local", worker_agents="enrich", model_max_batch=batch, batch_max=call
    )
    create_topics(settings)
    log(f"pipeline: publishing {n} messages")
    publish(settings, n, max(1, n // 5))
    watcher = TopicWatcher(
        settings, f"{settings.topic_prefix}.conversations.enriched", decode=False
    )
    worker = WorkerProcess(settings, tmp / "worker-models.log").start()
    started, last = time.monotonic(), time.monotonic()
    try:
        while len(watcher.raw) < n:
            if time.monotonic() - last > 5:
                log(f"  {len(watcher.raw)}/{n} enriched")
                last = time.monotonic()
            if time.monotonic() - started > 1200 or not worker.alive():
                raise RuntimeError(f"worker stalled\n{worker.log_tail()}")
            time.sleep(0.2)
        assert worker.proc is not None
        rss = rss_peak_mib(worker.proc.pid)
        stamps = sorted(ts for _k, _v, ts in watcher.raw)
    finally:
        worker.stop()
        watcher.close()
    # the first second includes the worker's start-up (rebalance, first fetch)
    span = (stamps[-1] - stamps[0]) / 1000
    return len(stamps) / span, rss


def triton_phase(seconds: float) -> dict[str, float]:
    from models.adapters.triton_model import TritonEnrichModel

    was_running = services.triton_status().answering
    url = services.triton_up()
    model = TritonEnrichModel(url, "casestream_enrich")
    try:
        return {f"triton_b{b}": rate_of(model.predict, b, seconds) for b in (1, 32)}
    finally:
        model.close()
        if not was_running:
            services.triton_down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per bare-model figure")
    parser.add_argument("--batch", type=int, default=32, help="the pipeline's model_max_batch")
    parser.add_argument(
        "--call", type=int, default=256, help="texts per model call in the pipeline (batch_max)"
    )
    parser.add_argument("--no-triton", action="store_true")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    int8 = LocalEnrichModel("int8", max_batch=args.batch)
    for b in sorted({1, 32, args.batch, args.call}):
        figures[f"bare_int8_b{b}"] = rate_of(int8.predict, b, args.seconds)
        log(f"bare int8 batch {b}: {figures[f'bare_int8_b{b}']:.0f} sentences/s")
    fp32 = LocalEnrichModel("fp32")
    figures["bare_fp32_b1"] = rate_of(fp32.predict, 1, args.seconds)
    figures["bare_fp32_b32"] = rate_of(fp32.predict, 32, args.seconds)
    log(f"bare fp32 batch 1/32: {figures['bare_fp32_b1']:.0f}/{figures['bare_fp32_b32']:.0f}")
    del int8, fp32
    bootstrap = services.kafka_up()
    with tempfile.TemporaryDirectory() as tmpdir:
        rate, rss = pipeline_phase(bootstrap, args.messages, args.batch, args.call, Path(tmpdir))
    log(f"pipeline: {rate:.0f} sentences/s, worker peak RSS {rss:.0f} MiB")
    if not args.no_triton:
        figures.update(triton_phase(args.seconds))
        log(f"triton batch 1/32: {figures['triton_b1']:.0f}/{figures['triton_b32']:.0f}")
    print(
        json.dumps(
            {
                "messages": args.messages,
                **{k: round(v, 1) for k, v in figures.items()},
                "pipeline": round(rate, 1),
                "pipeline_batch": args.batch,
                "pipeline_call": args.call,
                "ratio": round(rate / figures[f"bare_int8_b{args.call}"], 3),
                "int8_b32_over_fp32_b1": round(
                    figures["bare_int8_b32"] / figures["bare_fp32_b1"], 2
                ),
                "worker_rss_mib": round(rss, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
