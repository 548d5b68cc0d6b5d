"""A local server speaking the ClickHouse HTTP interface (the calls clickhouse-connect makes),
running the SQL on chdb.

One chdb session, owned by the server, on the data path it is given (a process serves one
chdb path at a time: share the path with any other chdb store the test process holds).
What it serves, as a ClickHouse server would:

* ``GET /ping``; ``GET`` or ``POST /`` with the query in the URL parameter ``query``
  and/or the body (both: URL text, a newline, then the body); Basic auth accepted;
* ``query_id``, ``session_id`` and the client's transport parameters (``wait_end_of_query``,
  ``client_protocol_version``, ``session_timeout`` ...) are dropped: chdb rejects them;
  ``param_NAME`` are query parameters; any other parameter is a setting, applied with
  ``SET`` for that one statement (then reset), and dropped if chdb refuses it;
* the output format is the query's trailing ``FORMAT X``, else ``default_format``, else
  TSV (so ``SELECT version(), timezone()`` is answered as TSV, ``query()`` in Native);
* ``INSERT ... FORMAT X`` with the data in the body, chunked and/or compressed (lz4: the
  client sends several concatenated frames, all are decompressed; zstd, gzip, deflate);
* headers ``X-ClickHouse-Query-Id``, ``-Summary`` (JSON, ``written_rows`` ...), ``-Format``
  (only with a body: an empty one must come without it), ``-Timezone``, and on errors
  ``X-ClickHouse-Exception-Code`` with the engine's message as the body.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
import zlib
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import lz4.frame

#: URL parameters that are the HTTP interface's or the client's, never engine settings.
# fmt: off
TRANSPORT = frozenset((
    "query", "query_id", "session_id", "session_timeout", "session_check", "database",
    "default_format", "user", "password", "quota_key", "role", "compress", "decompress",
    "buffer_size", "wait_end_of_query", "client_protocol_version", "enable_http_compression",
    "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
))
# fmt: on
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT\s", re.IGNORECASE)
_INSERT_DATA = re.compile(rb"\s*INSERT\s[^\n]*?\sFORMAT\s+\w+[ \t]*(?:\r?\n|$)", re.IGNORECASE)
_CODE = re.compile(r"Code:\s*(\d+)")
_SETTING_NAME = re.compile(r"^\w+$")


class QueryFailed(Exception):
    """chdb refused the statement; ``code`` is ClickHouse's error code."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        found = _CODE.search(message)
        self.code = found.group(1) if found else "1002"
        self.status = status


def decompress(body: bytes, encoding: str) -> bytes:
    """The request body without its Content-Encoding (every concatenated frame)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "lz4":
        out, rest = [], body
        while rest:  # one frame per block: stopping after the first loses rows silently
            decompressor = lz4.frame.LZ4FrameDecompressor()
            out.append(decompressor.decompress(rest))
            rest = decompressor.unused_data
        return b"".join(out)
    if encoding in ("gzip", "deflate"):
        out, rest = [], body
        while rest:
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
            out.append(inflater.decompress(rest))
            rest = inflater.unused_data
        return b"".join(out)
    if encoding == "zstd":
        from backports import zstd  # clickhouse-connect's own dependency

        return bytes(zstd.decompress(body))  # reads every frame
    raise QueryFailed(f"Code: 1002. unsupported Content-Encoding {encoding!r}", 400)


def split_statement(url_query: str, body: bytes) -> tuple[str, bytes | None]:
    """(SQL, INSERT data or None). The SQL is the URL's ``query`` then the body, unless it
    is an ``INSERT ... FORMAT X``: then the data is what follows the statement (the client
    puts ``INSERT ... FORMAT Native\\n`` in front of the first compressed block)."""
    if url_query and _INSERT.match(url_query):
        if _TRAILING_FORMAT.search(url_query):
            return url_query, body
        return url_query + "\n" + body.decode("utf-8"), None
    if not url_query:
        head = _INSERT_DATA.match(body)
        if head:
            return body[: head.end()].decode("utf-8").rstrip(), body[head.end() :]
        return body.decode("utf-8"), None
    return (url_query + "\n" + body.decode("utf-8") if body else url_query), None


def form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a ``multipart/form-data`` body (the client sends ``query`` and
    ``param_*`` this way when the parameters are too long for the URL)."""
    message = BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields = {}
    for part in message.get_payload():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8")
    return fields


class ChdbEngine:
    """The one chdb session behind the server; statements run one at a time."""

    def __init__(self, path: Path) -> None:
        from chdb import session as chdb_session

        self.lock = threading.Lock()
        self.closed = False
        session: Any = chdb_session.Session(str(path))  # type: ignore[no-untyped-call]
        self.session = session
        self.timezone = str(session.query("SELECT timezone()", "TSV")).strip()

    def run(
        self,
        sql: str,
        data: bytes | None,
        params: dict[str, str],
        settings: dict[str, str],
        default_format: str = "TabSeparated",
    ) -> tuple[bytes, str, dict[str, str]]:
        """(body, format, summary) of one statement."""
        match = _TRAILING_FORMAT.search(sql)
        fmt = match.group(1) if match else default_format
        statement = sql[: match.start()] if match else sql
        with self.lock:
            applied = [name for name, value in settings.items() if self._set(name, value)]
            try:
                if data is not None and _INSERT.match(statement):
                    return b"", fmt, self._insert(statement, fmt, data)
                result = self.session.query(statement, fmt, params=params or None)
                body = result.bytes() or b""
                summary = {
                    "read_rows": str(result.rows_read()),
                    "read_bytes": str(result.bytes_read()),
                    "written_rows": "0",
                    "written_bytes": "0",
                    "elapsed_ns": str(int(result.elapsed() * 1e9)),
                }
                return body, fmt, summary
            except QueryFailed:
                raise
            except Exception as exc:
                raise QueryFailed(str(exc).strip()) from exc
            finally:
                for name in applied:
                    self.session.query(f"SET {name} = DEFAULT", "TSV")

    def _set(self, name: str, value: str) -> bool:
        if not _SETTING_NAME.match(name):
            return False
        literal = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        try:
            self.session.query(f"SET {name} = {literal}", "TSV")
        except Exception:
            return False  # a setting chdb rejects is dropped, as the brief of this fake says
        return True

    def _insert(self, statement: str, fmt: str, data: bytes) -> dict[str, str]:
        inserter = self.session.send_insert(statement, fmt)
        try:
            inserter.append(data)
            done = inserter.finish()
        except Exception:
            inserter.cancel()
            raise
        return {
            "read_rows": "0",
            "read_bytes": "0",
            "written_rows": str(done.rows_written),
            "written_bytes": str(done.bytes_written),
            "elapsed_ns": str(int(done.elapsed * 1e9)),
        }

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.session.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/ping":
            self._reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        else:
            self._handle(b"")

    def do_POST(self) -> None:
        body = self._body()
        if self.server.engine.closed:  # the server was stopped: drop the connection
            self.close_connection = True
            return
        self._handle(body)

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []  # http.server leaves chunked bodies to us
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self, raw: bytes) -> None:
        url = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        query_id = url.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self._tz()}
        try:
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            encoding = self.headers.get("Content-Encoding", "")
            self.server.requests.append((self._user(), encoding, chunked))
            body = decompress(raw, encoding)
            fields = dict(url)
            if self.headers.get_content_type() == "multipart/form-data":
                fields.update(form_fields(self.headers.get("Content-Type", ""), body))
                body = b""
            sql, data = split_statement(fields.get("query", ""), body)
            params = {k[6:]: v for k, v in fields.items() if k.startswith("param_")}
            settings = {
                k: v for k, v in url.items() if k not in TRANSPORT and not k.startswith("param_")
            }
            out, fmt, summary = self.server.engine.run(
                sql, data, params, settings, url.get("default_format") or "TabSeparated"
            )
        except QueryFailed as exc:
            headers["X-ClickHouse-Exception-Code"] = exc.code
            headers["Content-Type"] = "text/plain; charset=UTF-8"
            self._reply(exc.status, (str(exc) + "\n").encode(), headers)
            return
        except Exception as exc:  # a request this fake cannot read: say so, as a server would
            headers["X-ClickHouse-Exception-Code"] = "1002"
            message = f"Code: 1002. DB::Exception: {type(exc).__name__}: {exc}\n"
            self._reply(400, message.encode(), headers)
            return
        headers["X-ClickHouse-Summary"] = json.dumps(summary)
        if out:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = "application/octet-stream"
        self._reply(200, out, headers)

    def _tz(self) -> str:
        return self.server.engine.timezone

    def _user(self) -> str:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
        return self.headers.get("X-ClickHouse-User", "default")

    def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: ChdbEngine
    requests: list[tuple[str, str, bool]]


class ClickHouseHttpFake:
    """The server on 127.0.0.1 (a free port), serving chdb at ``path`` until closed.

    :meth:`stop` takes the server down as a crashed ClickHouse would be (the port refuses
    connections, the chdb session is closed, the data stays on disk); :meth:`start`
    brings it back on the same port and path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._port = 0
        self._server: _Server | None = None
        self.engine: ChdbEngine | None = None
        self._requests: list[tuple[str, str, bool]] = []
        self.start()

    def start(self) -> None:
        """Serve (again), on the port of the first start."""
        if self._server is not None:
            return
        self.engine = ChdbEngine(self.path)
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.engine = self.engine
        server.requests = self._requests
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take the server down: connections are refused until :meth:`start`."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._thread.join()
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://default:secret@127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[tuple[str, str, bool]]:
        """(user from Basic auth, Content-Encoding, chunked?) of every query request."""
        return list(self._requests)

    def close(self) -> None:
        self.stop()

    def __enter__(self) -> ClickHouseHttpFake:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
