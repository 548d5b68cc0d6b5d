"""A local server speaking the Confluent Schema Registry REST protocol (the calls we use).

Subjects, versions and global ids as the real registry keeps them; identical schemas
get the same id; the compatibility endpoint applies BACKWARD compatibility with
``events.compat``. Driven in tests by confluent-kafka's real ``SchemaRegistryClient``.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from events.compat import incompatibilities

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[str] = []

    def register(self, subject: str, schema: str) -> int:
        canonical = json.dumps(json.loads(schema), sort_keys=True)
        with self.lock:
            schema_id = self.ids.get(canonical)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.ids[canonical] = schema_id
                self.schemas[schema_id] = schema
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id


class Handler(BaseHTTPRequestHandler):
    state: RegistryState

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: int, message: str) -> None:
        self._send(status, {"error_code": code, "message": message})

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        data: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
        return data

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        self.state.requests.append(f"POST {path}")
        if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            body = self._body()
            if body.get("schemaType", "AVRO") != "AVRO":
                return self._error(422, 42201, "only AVRO here")
            try:
                json.loads(body["schema"])
            except (KeyError, ValueError):
                return self._error(422, 42201, "Invalid schema")
            return self._send(200, {"id": self.state.register(m.group(1), body["schema"])})
        if m := re.fullmatch(r"/compatibility/subjects/([^/]+)/versions/([^/]+)", path):
            versions = self.state.subjects.get(m.group(1))
            if not versions:
                return self._error(404, 40401, "Subject not found")
            latest = json.loads(self.state.schemas[versions[-1]])
            candidate = json.loads(self._body()["schema"])
            problems = incompatibilities(candidate, latest)
            return self._send(200, {"is_compatible": not problems, "messages": problems})
        return self._error(404, 404, f"no route {path}")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.state.requests.append(f"GET {path}")
        if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
            schema = self.state.schemas.get(int(m.group(1)))
            if schema is None:
                return self._error(404, 40403, "Schema not found")
            return self._send(200, {"schema": schema})
        if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            versions = self.state.subjects.get(m.group(1))
            if versions is None:
                return self._error(404, 40401, "Subject not found")
            return self._send(200, list(range(1, len(versions) + 1)))
        if path == "/subjects":
            return self._send(200, sorted(self.state.subjects))
        return self._error(404, 404, f"no route {path}")


class FakeSchemaRegistry:
    """Context manager: a registry on 127.0.0.1 at ``url``."""

    def __init__(self) -> None:
        self.state = RegistryState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSchemaRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
