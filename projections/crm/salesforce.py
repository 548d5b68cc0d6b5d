"""Salesforce adapter of the CRM port, on ``simple-salesforce``.

One Case per conversation, upserted by the external-id field :data:`EXTERNAL_ID_FIELD`
(``tenant:conversation``); standard fields Subject, Description, Priority, Origin, Status;
custom fields (``CaseStream_*__c``, see :data:`FIELDS`) for the AI confidence, intent,
sentiment trajectory, escalation/close reason and casestream's case id. Comments are
``CaseComment`` records (not deduplicated: Salesforce has no idempotency key for them).

Login is the SOAP username/password flow against ``crm_url`` (``https://login.salesforce.com``,
``https://test.salesforce.com`` or a My Domain URL); the REST calls go to the instance the
login returns. Errors:

* ``REQUEST_LIMIT_EXCEEDED`` (403), any 5xx and connection errors: retried with
  exponential backoff (``base_delay * 2**n``, capped), then :class:`CrmUnavailable`;
* ``INVALID_SESSION_ID`` (401): log in again and repeat the call (once per call);
* any other 4xx (bad field, missing record, refused): :class:`PermanentCrmError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import quote

import requests
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)
from simple_salesforce.format import format_soql
from simple_salesforce.login import SalesforceLogin

from projections.crm.port import CaseFields, CrmCase, PermanentCrmError

log = logging.getLogger("casestream.projections.crm")
T = TypeVar("T")

API_VERSION = "59.0"
EXTERNAL_ID_FIELD = "CaseStream_Conversation_Id__c"
#: CaseFields key -> Salesforce Case field.
FIELDS: dict[str, str] = {
    "subject": "Subject",
    "description": "Description",
    "priority": "Priority",
    "origin": "Origin",
    "status": "Status",
    "ai_confidence": "CaseStream_AI_Confidence__c",
    "intent": "CaseStream_Intent__c",
    "sentiment_trajectory": "CaseStream_Sentiment_Trajectory__c",
    "escalation_reason": "CaseStream_Escalation_Reason__c",
    "close_reason": "CaseStream_Close_Reason__c",
    "case_ref": "CaseStream_Case_Ref__c",
}
_BACK = {v: k for k, v in FIELDS.items()}


class CrmUnavailable(RuntimeError):
    """Salesforce kept failing transiently (limits, 5xx, network) after every retry."""


def to_salesforce(fields: CaseFields) -> dict[str, Any]:
    return {FIELDS[k]: v for k, v in fields.items()}


def _sobject(sf: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(sf, name))


def _error_codes(exc: SalesforceError) -> set[str]:
    content = exc.content
    if isinstance(content, list):
        return {str(e.get("errorCode")) for e in content if isinstance(e, dict)}
    return set()


class SalesforceCaseStore:
    """:class:`~projections.crm.port.CaseStore` on a Salesforce org (see module docstring).

    ``connect`` logs in and returns a client; it is called lazily and again after an
    ``INVALID_SESSION_ID``.
    """

    def __init__(
        self,
        connect: Callable[[], Salesforce],
        *,
        max_attempts: int = 6,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connect = connect
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.retries = 0
        self.logins = 0
        self._sf: Salesforce | None = None

    @classmethod
    def login(
        cls,
        url: str,
        *,
        username: str,
        password: str,
        token: str,
        session: requests.Session | None = None,
        version: str = API_VERSION,
        **options: Any,
    ) -> SalesforceCaseStore:
        """A store that logs in (SOAP) at ``url`` with a password and security token."""
        http = session or requests.Session()

        def connect() -> Salesforce:
            session_id, instance = SalesforceLogin(
                username=username,
                password=password,
                security_token=token,
                session=http,
                sf_version=version,
                scratch_url=url.rstrip("/"),
            )
            return Salesforce(
                session_id=session_id, instance=instance, session=http, version=version
            )

        return cls(connect, **options)

    # --- the port ------------------------------------------------------------------

    def upsert_case(self, external_id: str, fields: CaseFields) -> str:
        path = f"{EXTERNAL_ID_FIELD}/{quote(external_id, safe='')}"
        data = to_salesforce(fields)
        response = self._call(lambda sf: _sobject(sf, "Case").upsert(path, data, raw_response=True))
        if response.status_code in (200, 201) and response.content:
            return str(response.json()["id"])
        case = self.get_case(external_id, comments=False)  # 204: updated, no body
        if case is None:
            raise PermanentCrmError(f"upsert of {external_id} succeeded but no case is found")
        return case.case_id

    def update_case(self, case_id: str, fields: CaseFields) -> None:
        data = to_salesforce(fields)
        self._call(lambda sf: _sobject(sf, "Case").update(case_id, data))

    def add_comment(self, case_id: str, text: str, *, key: str | None = None) -> None:
        """Create a CaseComment; ``key`` is not used (see the module docstring)."""
        body = {"ParentId": case_id, "CommentBody": text[:4000], "IsPublished": False}
        self._call(lambda sf: _sobject(sf, "CaseComment").create(body))

    def get_case(self, external_id: str, *, comments: bool = True) -> CrmCase | None:
        names = ", ".join(["Id", *FIELDS.values()])
        soql = format_soql(
            f"SELECT {names} FROM Case WHERE {EXTERNAL_ID_FIELD} = {{}}", external_id
        )
        rows = self._call(lambda sf: sf.query(soql))["records"]
        if not rows:
            return None
        row = rows[0]
        fields = {_BACK[k]: v for k, v in row.items() if k in _BACK and v is not None}
        texts: tuple[str, ...] = ()
        if comments:
            q = format_soql(
                "SELECT CommentBody FROM CaseComment WHERE ParentId = {} ORDER BY CreatedDate",
                row["Id"],
            )
            texts = tuple(
                str(c["CommentBody"]) for c in self._call(lambda sf: sf.query(q))["records"]
            )
        return CrmCase(str(row["Id"]), external_id, cast(CaseFields, fields), texts)

    # --- calls ---------------------------------------------------------------------

    def _client(self) -> Salesforce:
        if self._sf is None:
            self._sf = self.connect()
            self.logins += 1
        return self._sf

    def _call(self, fn: Callable[[Salesforce], T]) -> T:
        reauthed = False
        last: Exception | None = None
        for attempt in range(self.max_attempts):
            try:
                return fn(self._client())
            except SalesforceExpiredSession as exc:
                if reauthed or "INVALID_SESSION_ID" not in _error_codes(exc):
                    raise PermanentCrmError(f"Salesforce refused the session: {exc}") from exc
                reauthed, self._sf = True, None  # log in again, repeat at once
                continue
            except SalesforceRefusedRequest as exc:
                if "REQUEST_LIMIT_EXCEEDED" not in _error_codes(exc):
                    raise PermanentCrmError(str(exc)) from exc
                last = exc
            except SalesforceGeneralError as exc:
                if exc.status < 500:
                    raise PermanentCrmError(str(exc)) from exc
                last = exc
            except SalesforceError as exc:  # 300, 400, 404
                raise PermanentCrmError(str(exc)) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._sf = None
                last = exc
            self.retries += 1
            delay = min(self.max_delay, self.base_delay * 2**attempt)
            log.warning("salesforce: %s; retry %d in %.2fs", last, attempt + 1, delay)
            self.sleep(delay)
        raise CrmUnavailable(f"Salesforce failed {self.max_attempts} times: {last!r}")

    def shutdown(self) -> None:
        if self._sf is not None:
            self._sf.session.close()
