"""The ``triton`` adapter's transport: a thin typed client of a Triton model over async gRPC.

A client-side batch (``input_ids``/``attention_mask``, int64 ``[B, S]``, padded to its
longest text) goes to the server as one request (split into ``max_batch_size`` chunks sent
concurrently if larger); the server's dynamic batcher joins it with other clients' requests.
Every failure, a deadline included, is raised as :class:`TritonError`, so that the fallback
chain (``models/chain.py``) has one exception to catch.

>>> client = TritonEnrichClient("127.0.0.1:18001", client_timeout=1.0)
>>> outputs = await client.infer(input_ids, attention_mask)     # {"intent_probs": ..., ...}

:class:`SyncTritonEnrichClient` runs the same client on its own event-loop thread, for
callers in plain threads. Nothing is connected at construction: the gRPC channel is opened
on first use, inside the loop that uses it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from events.enrichment import ModelInfo

DEFAULT_URL = "127.0.0.1:18001"
ENRICH_MODEL = "casestream_enrich"
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
T = TypeVar("T")


class TritonError(RuntimeError):
    """A Triton call failed: unreachable, not ready, rejected, or past its deadline."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


def _as_error(exc: Exception, what: str) -> TritonError:
    text = str(exc)
    timeout = isinstance(exc, asyncio.TimeoutError) or "deadline" in text.lower()
    return TritonError(f"{what}: {text or type(exc).__name__}", timeout=timeout)


class TritonEnrichClient:
    """Async gRPC client of one Triton model with ``input_ids``/``attention_mask`` inputs.

    ``client_timeout`` (seconds) bounds every call; ``outputs`` restricts what the server
    returns (default: every output of the model).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        model_name: str = ENRICH_MODEL,
        *,
        model_version: str = "",
        outputs: Sequence[str] | None = None,
        client_timeout: float = 2.0,
        max_batch_size: int = 64,
    ) -> None:
        self.url = url
        self.model_name = model_name
        self.model_version = model_version
        self.outputs = tuple(outputs) if outputs is not None else None
        self.client_timeout = client_timeout
        self.max_batch_size = max_batch_size
        self._client: Any = None

    def _grpc(self) -> Any:
        if self._client is None:
            import tritonclient.grpc.aio as grpcclient

            self._client = grpcclient.InferenceServerClient(self.url)
        return self._client

    async def infer(self, input_ids: IntArray, attention_mask: IntArray) -> dict[str, FloatArray]:
        """Outputs by name, ``[B, ...]`` rows in input order, for one client-side batch."""
        input_ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        attention_mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
        if input_ids.ndim != 2 or input_ids.shape != attention_mask.shape:
            raise ValueError(
                f"input_ids {input_ids.shape} and attention_mask {attention_mask.shape} "
                "must be one [batch, sequence] shape"
            )
        if len(input_ids) == 0:
            raise ValueError("empty batch")
        step = self.max_batch_size
        parts = await asyncio.gather(
            *(
                self._infer_one(input_ids[i : i + step], attention_mask[i : i + step])
                for i in range(0, len(input_ids), step)
            )
        )
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    async def _infer_one(self, input_ids: IntArray, attention_mask: IntArray) -> dict[str, Any]:
        import tritonclient.grpc.aio as grpcclient

        inputs = []
        for name, array in (("input_ids", input_ids), ("attention_mask", attention_mask)):
            tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        requested = (
            [grpcclient.InferRequestedOutput(n) for n in self.outputs] if self.outputs else None
        )
        try:
            result = await self._grpc().infer(
                self.model_name,
                inputs,
                model_version=self.model_version,
                outputs=requested,
                client_timeout=self.client_timeout,
            )
        except Exception as exc:  # InferenceServerException, grpc errors, cancelled channels
            raise _as_error(exc, f"infer {self.model_name} at {self.url}") from exc
        names = self.outputs or tuple(o.name for o in result.get_response().outputs)
        out = {name: result.as_numpy(name) for name in names}
        for name, value in out.items():
            if value is None or len(value) != len(input_ids):
                raise TritonError(f"{self.model_name}: output {name} has no row per input")
        return out

    async def ready(self) -> bool:
        """True when the server is live and ready and the model is ready; never raises."""
        client = self._grpc()
        try:
            return bool(
                await client.is_server_live(client_timeout=self.client_timeout)
                and await client.is_server_ready(client_timeout=self.client_timeout)
                and await client.is_model_ready(
                    self.model_name, self.model_version, client_timeout=self.client_timeout
                )
            )
        except Exception:  # an unreachable server is simply not ready
            return False

    async def model_info(self) -> ModelInfo:
        """The served model's identity, from the manifest parameters of its config."""
        try:
            response = await self._grpc().get_model_config(
                self.model_name, self.model_version, client_timeout=self.client_timeout
            )
        except Exception as exc:
            raise _as_error(exc, f"model config of {self.model_name}") from exc
        params = response.config.parameters
        value = {k: params[k].string_value for k in params}
        return ModelInfo(
            name=value.get("manifest_name", self.model_name),
            version=value.get("manifest_version", self.model_version or "?"),
            sha256=value.get("sha256", ""),
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


class SyncTritonEnrichClient:
    """:class:`TritonEnrichClient` for threads: its own event loop on a daemon thread.

    Thread-safe: calls from several threads run concurrently on that loop. ``close()``
    (or leaving a ``with`` block) closes the channel and stops the thread.
    """

    def __init__(self, url: str = DEFAULT_URL, model_name: str = ENRICH_MODEL, **kw: Any) -> None:
        self.client = TritonEnrichClient(url, model_name, **kw)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"triton-{model_name}", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:  # the gRPC deadline fires first; this is a backstop
            return future.result(self.client.client_timeout * 2 + 5.0)
        except FutureTimeout as exc:
            future.cancel()
            raise TritonError(f"{self.client.model_name}: no answer", timeout=True) from exc

    def infer(self, input_ids: IntArray, attention_mask: IntArray) -> dict[str, FloatArray]:
        return self._call(self.client.infer(input_ids, attention_mask))

    def ready(self) -> bool:
        return self._call(self.client.ready())

    def model_info(self) -> ModelInfo:
        return self._call(self.client.model_info())

    def close(self) -> None:
        if self._thread.is_alive():
            self._call(self.client.close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()

    def __enter__(self) -> SyncTritonEnrichClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def triton_ready(
    url: str = DEFAULT_URL, model_name: str = ENRICH_MODEL, timeout: float = 1.0
) -> bool:
    """Blocking readiness check of server and model (for start-up and health probes)."""

    async def probe() -> bool:
        client = TritonEnrichClient(url, model_name, client_timeout=timeout)
        try:
            return await client.ready()
        finally:
            await client.close()

    return asyncio.run(probe())
