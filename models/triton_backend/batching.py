"""Join the requests of one python-backend ``execute()`` call into model runs, and split back.

Triton's dynamic batcher hands the python model a list of requests; each carries its own
``input_ids``/``attention_mask`` of shape ``[b_i, S_i]`` (``allow_ragged_batch`` lets requests
of different lengths share one execution). How they are run is the ``join`` mode:

* ``pad``: one run over all rows, right-padded to the longest ``S`` with id 0 / mask 0.
  Masked mean pooling ignores the padding, so fp32 results move by ~1e-6 at most.
* ``group``: one run per distinct ``S`` (no padding at all).
* ``request``: one run per request: a request's result never depends on what it was batched
  with. Needed for bit-stable dynamically quantised (int8) models, whose activation scales
  are computed over the whole run, padding and neighbours included.

Pure numpy, no Triton import: the stub imports it beside ``model.py``, tests import it here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

JOIN_MODES = ("pad", "group", "request")
PAD_VALUES = {"input_ids": 0, "attention_mask": 0}

Arrays = dict[str, npt.NDArray[np.generic]]
RunFn = Callable[[Mapping[str, npt.NDArray[np.generic]]], Arrays]


def check_request(inputs: Mapping[str, npt.NDArray[np.generic]]) -> str | None:
    """Why one request's inputs cannot be run, or None: every input 2-D and of one shape."""
    shapes = {name: a.shape for name, a in inputs.items()}
    if any(len(s) != 2 for s in shapes.values()):
        return f"inputs must be [batch, sequence]: got {shapes}"
    if len(set(shapes.values())) != 1:
        return f"inputs must share one shape: got {shapes}"
    return None


def pad_join(requests: Sequence[Mapping[str, npt.NDArray[np.generic]]]) -> Arrays:
    """Stack ``[b_i, S_i]`` inputs into ``[sum b_i, max S_i]``, padding on the right."""
    width = max(next(iter(r.values())).shape[1] for r in requests)
    rows = sum(next(iter(r.values())).shape[0] for r in requests)
    joined: Arrays = {}
    for name in requests[0]:
        first = requests[0][name]
        out = np.full((rows, width), PAD_VALUES.get(name, 0), dtype=first.dtype)
        at = 0
        for r in requests:
            a = r[name]
            out[at : at + a.shape[0], : a.shape[1]] = a
            at += a.shape[0]
        joined[name] = out
    return joined


def _split_rows(outputs: Arrays, sizes: Sequence[int]) -> list[Arrays]:
    bounds = np.cumsum([0, *sizes])
    return [
        {name: v[bounds[i] : bounds[i + 1]] for name, v in outputs.items()}
        for i in range(len(sizes))
    ]


def run_joined(
    run: RunFn, requests: Sequence[Mapping[str, npt.NDArray[np.generic]]], mode: str = "pad"
) -> list[Arrays]:
    """Run ``requests`` with ``run`` (inputs -> outputs, batch-major); one result per request.

    Rows of each result are the request's rows in order. ``mode`` is one of ``JOIN_MODES``.
    """
    if mode not in JOIN_MODES:
        raise ValueError(f"unknown join mode {mode!r}; expected one of {JOIN_MODES}")
    if not requests:
        return []
    if mode == "request" or len(requests) == 1:
        return [run(r) for r in requests]
    sizes = [next(iter(r.values())).shape[0] for r in requests]
    if mode == "pad":
        return _split_rows(run(pad_join(requests)), sizes)
    results: list[Arrays | None] = [None] * len(requests)
    by_width: dict[int, list[int]] = {}
    for i, r in enumerate(requests):
        by_width.setdefault(next(iter(r.values())).shape[1], []).append(i)
    for members in by_width.values():
        group = [requests[i] for i in members]
        joined = {name: np.concatenate([r[name] for r in group]) for name in group[0]}
        parts = _split_rows(run(joined), [sizes[i] for i in members])
        for i, part in zip(members, parts, strict=True):
            results[i] = part
    return [r for r in results if r is not None]
