"""A local HTTPS server speaking the Salesforce protocol for the calls the CRM adapter makes.

* ``POST /services/Soap/u/<v>``: SOAP username/password login (sessionId, serverUrl);
* ``PATCH /services/data/v<v>/sobjects/Case/<ExtIdField>/<value>``: upsert (201 + id on
  create, 204 on update); ``PATCH .../sobjects/Case/<id>``: update (204, 404 if missing);
* ``POST .../sobjects/CaseComment/``: create (201; 400 if the parent does not exist);
* ``GET .../query/?q=SELECT a, b FROM Obj WHERE Field = 'v' [ORDER BY ..]``: the subset of
  SOQL the adapter sends.

Unknown fields get 400 ``INVALID_FIELD`` as the real API does. Switches: :meth:`fail_next`
queues faults for the next data calls (``"limit"`` = 403 REQUEST_LIMIT_EXCEEDED, ``500``,
``"bad_field"`` = 400 INVALID_FIELD), :meth:`expire_session` makes the current session
answer 401 INVALID_SESSION_ID. The certificate is self-signed for IP 127.0.0.1, made at
start with ``cryptography``; drive it with a ``requests.Session`` whose ``verify`` is
:attr:`FakeSalesforce.cert_path` and ``trust_env`` is False.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from projections.crm.salesforce import EXTERNAL_ID_FIELD, FIELDS

CASE_FIELDS = {"Id", EXTERNAL_ID_FIELD, *FIELDS.values()}
COMMENT_FIELDS = {"Id", "ParentId", "CommentBody", "IsPublished", "CreatedDate"}
_SOQL = re.compile(
    r"SELECT (?P<cols>.+?) FROM (?P<obj>\w+) WHERE (?P<field>\w+) = '(?P<value>(?:[^'\\]|\\.)*)'"
)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for IP 127.0.0.1: (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-sf.pem", directory / "fake-sf.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class OrgState:
    """The org's records and the switches, shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cases: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self.sessions: set[str] = set()
        self.logins = 0
        self.faults: list[int | str] = []
        self.calls: list[tuple[str, str, int]] = []

    def case_by_external(self, value: str) -> dict[str, Any] | None:
        return next((c for c in self.cases.values() if c.get(EXTERNAL_ID_FIELD) == value), None)


def _sf_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:15].upper()


class Handler(BaseHTTPRequestHandler):
    state: OrgState
    base_url: str

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        data = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        self.send_response(status)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.state.calls.append((self.command, urlsplit(self.path).path, status))

    def _errors(self, status: int, code: str, message: str) -> None:
        self._send(status, [{"errorCode": code, "message": message, "fields": []}])

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return raw

    # --- login -----------------------------------------------------------------------

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path.startswith("/services/Soap/u/"):
            self._login(body)
        elif self._guard():
            self._create(path, json.loads(body or b"{}"))

    def _login(self, body: bytes) -> None:
        if b"<n1:username>" not in body or b"<n1:password>" not in body:
            fault = b"<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
            self._send(500, b"<soapenv:Envelope>" + fault + b"</soapenv:Envelope>", "text/xml")
            return
        session = "00D" + uuid.uuid4().hex
        with self.state.lock:
            self.state.sessions.add(session)
            self.state.logins += 1
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
            f"<serverUrl>{self.base_url}/services/Soap/u/59.0/00DFAKE</serverUrl>"
            f"<sessionId>{session}</sessionId></result></loginResponse></soapenv:Body>"
            "</soapenv:Envelope>"
        )
        self._send(200, xml.encode(), "text/xml")

    # --- data ------------------------------------------------------------------------

    def _guard(self) -> bool:
        """Auth and queued faults; True if the call may proceed."""
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.state.lock:
            valid = token in self.state.sessions
            fault = self.state.faults.pop(0) if valid and self.state.faults else None
        if not valid:
            self._errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        elif fault == "limit":
            self._errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        elif fault == "bad_field":
            self._errors(400, "INVALID_FIELD", "No such column 'Bogus__c' on sobject Case")
        elif isinstance(fault, int):
            self._errors(fault, "UNKNOWN_EXCEPTION", "An unexpected error occurred.")
        return valid and fault is None

    def _unknown(self, data: dict[str, Any], allowed: set[str]) -> bool:
        bad = sorted(set(data) - allowed)
        if bad:
            self._errors(400, "INVALID_FIELD", f"No such column '{bad[0]}'")
        return bool(bad)

    def do_PATCH(self) -> None:
        parts = urlsplit(self.path).path.split("/")
        data = json.loads(self._body() or b"{}")
        if not self._guard():
            return
        # /services/data/vXX/sobjects/Case/<id> or .../Case/<Field>/<value>
        if parts[5] != "Case":
            self._errors(404, "NOT_FOUND", "The requested resource does not exist")
            return
        if self._unknown(data, CASE_FIELDS - {"Id"}):
            return
        with self.state.lock:
            if len(parts) == 8 and parts[6] == EXTERNAL_ID_FIELD:
                value = unquote(parts[7])
                case = self.state.case_by_external(value)
                if case is None:
                    case_id = _sf_id("500")
                    self.state.cases[case_id] = {"Id": case_id, EXTERNAL_ID_FIELD: value, **data}
                    created = {"id": case_id, "success": True, "errors": [], "created": True}
                    reply: tuple[int, Any] = (201, created)
                else:
                    case.update(data)
                    reply = (204, None)
            elif len(parts) == 7 and parts[6] in self.state.cases:
                self.state.cases[parts[6]].update(data)
                reply = (204, None)
            else:
                reply = (404, [{"errorCode": "NOT_FOUND", "message": "not found"}])
        self._send(*reply)

    def _create(self, path: str, data: dict[str, Any]) -> None:
        if not path.rstrip("/").endswith("/sobjects/CaseComment"):
            self._errors(404, "NOT_FOUND", "The requested resource does not exist")
            return
        if self._unknown(data, COMMENT_FIELDS - {"Id", "CreatedDate"}):
            return
        with self.state.lock:
            if data.get("ParentId") not in self.state.cases:
                reply: tuple[int, Any] = (
                    400,
                    [{"errorCode": "FIELD_INTEGRITY_EXCEPTION", "message": "ParentId"}],
                )
            else:
                comment_id = _sf_id("00a")
                created = dt.datetime.now(dt.UTC).isoformat()
                self.state.comments.append({"Id": comment_id, "CreatedDate": created, **data})
                reply = (201, {"id": comment_id, "success": True, "errors": []})
        self._send(*reply)

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        if not self._guard():
            return
        if not split.path.rstrip("/").endswith("/query"):
            self._errors(404, "NOT_FOUND", "The requested resource does not exist")
            return
        soql = parse_qs(split.query)["q"][0]
        match = _SOQL.match(soql)
        if match is None:
            self._errors(400, "MALFORMED_QUERY", soql)
            return
        cols = [c.strip() for c in match["cols"].split(",")]
        value = re.sub(r"\\(.)", r"\1", match["value"])
        table = {"Case": list(self.state.cases.values()), "CaseComment": self.state.comments}
        rows = table.get(match["obj"])
        if rows is None or not set(cols) <= (CASE_FIELDS | COMMENT_FIELDS):
            self._errors(400, "INVALID_FIELD", soql)
            return
        with self.state.lock:
            hits = [r for r in rows if r.get(match["field"]) == value]
            records = [
                {"attributes": {"type": match["obj"]}, **{c: r.get(c) for c in cols}} for r in hits
            ]
        self._send(200, {"totalSize": len(records), "done": True, "records": records})


class FakeSalesforce:
    """The server on 127.0.0.1 (a free port), in a thread; :attr:`url` is its base URL."""

    def __init__(self, directory: Path) -> None:
        self.state = OrgState()
        self.cert_path, key_path = make_certificate(directory)
        state = self.state
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.server.RequestHandlerClass = type(
            "BoundHandler", (Handler,), {"state": state, "base_url": self.url}
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeSalesforce:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def fail_next(self, *faults: int | str) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def expire_session(self) -> None:
        with self.state.lock:
            self.state.sessions.clear()

    def comments_of(self, case_id: str) -> list[str]:
        with self.state.lock:
            return [c["CommentBody"] for c in self.state.comments if c["ParentId"] == case_id]
