"""A local server speaking Pinecone's data-plane REST protocol (the calls ``pinecone.Index`` makes).

One dense index (cosine, fixed dimension) held in memory, served over HTTP on 127.0.0.1
by ``http.server`` in a thread. What it serves, as an index host does (API version
``2026-07``, JSON bodies, camelCase fields):

* ``POST /vectors/upsert`` ``{"vectors": [{"id", "values", "metadata"?}], "namespace"?}``
  -> ``{"upsertedCount": n}``; a wrong dimension -> 400;
* ``POST /query`` ``{"topK", "vector" | "id", "namespace"?, "filter"?, "includeValues",
  "includeMetadata"}`` -> ``{"matches": [{"id", "score", "values", "metadata"?}],
  "namespace", "usage": {"readUnits"}}`` (cosine scores, best first);
* ``POST /vectors/delete`` ``{"namespace", "ids" | "deleteAll" | "filter"}`` -> ``{}``;
* ``POST /describe_index_stats`` -> ``{"namespaces": {ns: {"vectorCount"}}, "dimension",
  "indexFullness", "totalVectorCount", "metric", "vectorType"}``;
* ``GET /namespaces`` and ``DELETE /namespaces/{ns}``.

The namespace omitted or ``""`` is ``__default__``. Every request needs the ``Api-Key``
header to equal the server's key (else 401 with Pinecone's error body); the
``X-Pinecone-Api-Version`` header of each request is recorded in ``api_versions``.
Filters: implicit equality, ``$eq $ne $in $nin $gt $gte $lt $lte $and $or``; a list
metadata value matches ``$eq``/``$in`` when any element does.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_NAMESPACE = "__default__"


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, code: int = 3) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _cond(value: Any, op: str, arg: Any) -> bool:
    if isinstance(value, list) and op in ("$eq", "$in"):
        return any(_cond(v, op, arg) for v in value)
    if isinstance(value, list) and op in ("$ne", "$nin"):
        return all(_cond(v, op, arg) for v in value)
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if op == "$in":
        return value in arg
    if op == "$nin":
        return value not in arg
    if value is None or isinstance(value, str) != isinstance(arg, str):
        return False
    comparisons = {
        "$gt": value > arg,
        "$gte": value >= arg,
        "$lt": value < arg,
        "$lte": value <= arg,
    }
    if op not in comparisons:
        raise BadRequest(f"unsupported filter operator {op}")
    return bool(comparisons[op])


def passes(metadata: dict[str, Any], flt: dict[str, Any] | None) -> bool:
    for key, cond in (flt or {}).items():
        if key == "$and":
            ok = all(passes(metadata, c) for c in cond)
        elif key == "$or":
            ok = any(passes(metadata, c) for c in cond)
        elif isinstance(cond, dict):
            ok = all(_cond(metadata.get(key), op, arg) for op, arg in cond.items())
        else:
            ok = _cond(metadata.get(key), "$eq", cond)
        if not ok:
            return False
    return True


def _cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if not na or not nb:
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


class FakePineconeIndex:
    """The index's state and the logic of each call (no HTTP here)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.spaces: dict[str, dict[str, dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def _ns(self, body: dict[str, Any]) -> str:
        return str(body.get("namespace") or DEFAULT_NAMESPACE)

    def upsert(self, body: dict[str, Any]) -> dict[str, Any]:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            raise BadRequest("vectors must be a non-empty list")
        for v in vectors:
            if len(v.get("values") or []) != self.dimension:
                raise BadRequest(
                    f"Vector dimension {len(v.get('values') or [])} does not match the "
                    f"dimension of the index {self.dimension}"
                )
        with self.lock:
            space = self.spaces.setdefault(self._ns(body), {})
            for v in vectors:
                space[v["id"]] = {"values": list(v["values"]), "metadata": v.get("metadata")}
        return {"upsertedCount": len(vectors)}

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or top_k < 1:
            raise BadRequest("topK must be a positive integer")
        with self.lock:
            space = dict(self.spaces.get(self._ns(body), {}))
        vector = body.get("vector")
        if vector is None and "id" in body:
            vector = space.get(body["id"], {}).get("values")
            if vector is None:
                return {"matches": [], "namespace": body.get("namespace", "")}
        if not isinstance(vector, list) or len(vector) != self.dimension:
            raise BadRequest(f"Query vector dimension must be {self.dimension}")
        scored = [
            (_cosine(vector, rec["values"]), vid, rec)
            for vid, rec in space.items()
            if passes(rec["metadata"] or {}, body.get("filter"))
        ]
        scored.sort(key=lambda t: (-t[0], t[1]))
        matches = []
        for score, vid, rec in scored[:top_k]:
            match: dict[str, Any] = {
                "id": vid,
                "score": score,
                "values": rec["values"] if body.get("includeValues") else [],
            }
            if body.get("includeMetadata") and rec["metadata"] is not None:
                match["metadata"] = rec["metadata"]
            matches.append(match)
        return {
            "matches": matches,
            "namespace": body.get("namespace", ""),
            "usage": {"readUnits": 1 + len(space) // 1000},
        }

    def delete(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            space = self.spaces.setdefault(self._ns(body), {})
            if body.get("deleteAll"):
                space.clear()
            elif "ids" in body:
                for vid in body["ids"]:
                    space.pop(vid, None)
            elif body.get("filter"):
                for vid in [
                    k for k, r in space.items() if passes(r["metadata"] or {}, body["filter"])
                ]:
                    del space[vid]
            else:
                raise BadRequest("one of ids, deleteAll or filter is required")
        return {}

    def stats(self, _body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            counts = {ns: len(s) for ns, s in self.spaces.items() if s}
        return {
            "namespaces": {ns: {"vectorCount": n} for ns, n in counts.items()},
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": "cosine",
            "vectorType": "dense",
        }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-pinecone-request-id", "fake")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            raise BadRequest(f"invalid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    def _handle(self, method: str) -> None:
        fake = self.server.fake
        path = urlsplit(self.path).path
        try:
            body = self._body() if method == "POST" else {}
            self.server.api_versions.append(self.headers.get("X-Pinecone-Api-Version", ""))
            self.server.requests.append((method, path, body))
            if self.headers.get("Api-Key") != self.server.api_key:
                self._reply(
                    401,
                    {
                        "error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"},
                        "status": 401,
                    },
                )
                return
            routes = {
                ("POST", "/vectors/upsert"): fake.upsert,
                ("POST", "/query"): fake.query,
                ("POST", "/vectors/delete"): fake.delete,
                ("POST", "/describe_index_stats"): fake.stats,
            }
            handler = routes.get((method, path))
            if handler is not None:
                self._reply(200, handler(body))
            elif method == "GET" and path == "/namespaces":
                stats = fake.stats({})["namespaces"]
                names = [
                    {"name": n, "recordCount": str(s["vectorCount"])} for n, s in stats.items()
                ]
                self._reply(200, {"namespaces": names, "totalCount": len(names)})
            elif method == "DELETE" and path.startswith("/namespaces/"):
                with fake.lock:
                    fake.spaces.pop(unquote(path[len("/namespaces/") :]), None)
                self._reply(202, {})
            else:
                self._reply(404, {"code": 5, "message": f"no route {method} {path}", "details": []})
        except BadRequest as exc:
            self._reply(exc.status, {"code": exc.code, "message": str(exc), "details": []})

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakePineconeIndex, api_key: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.api_key = api_key
        self.api_versions: list[str] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []


class PineconeDataPlaneServer:
    """``with PineconeDataPlaneServer(dimension=384) as srv: Index(host=srv.host, ...)``."""

    def __init__(self, dimension: int, api_key: str = "test-key") -> None:
        self.fake = FakePineconeIndex(dimension)
        self.api_key = api_key
        self._server = _Server(self.fake, api_key)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://localhost:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[tuple[str, str, dict[str, Any]]]:
        return self._server.requests

    @property
    def api_versions(self) -> list[str]:
        return self._server.api_versions

    def start(self) -> PineconeDataPlaneServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> PineconeDataPlaneServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
