"""API troubleshooting: realistic pasted snippets -> diagnosis (pure, no I/O)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from agent.workflows.api_errors import diagnose
from agent.workflows.api_evidence import gather, jwt_claims, statuses

NOW = datetime(2026, 9, 12, 12, 0, tzinfo=UTC)
EXPIRED_BODY = '{"error":"invalid_token","error_description":"The access token expired"}'


def jwt(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
        return raw.rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


def ts(hour: int, minute: int = 0, day: int = 12) -> int:
    return int(datetime(2026, 9, day, hour, minute, tzinfo=UTC).timestamp())


CURL_401 = """\
$ curl -v https://api.casestream.io/v2/contacts -H "Authorization: Bearer eyJhbGciOi..."
*   Trying 104.18.22.7:443...
* Connected to api.casestream.io (104.18.22.7) port 443 (#0)
> GET /v2/contacts HTTP/2
> Host: api.casestream.io
> user-agent: curl/8.5.0
> accept: */*
>
< HTTP/2 401
< content-type: application/json
< www-authenticate: Bearer error="invalid_token", error_description="The access token expired"
< x-request-id: 7f3c2a1e-9b41-4d0e-a5c2-0c9d1e2f3a4b
<
{"error":"invalid_token","error_description":"The access token expired"}
"""

PY_401_NO_BODY = """\
Traceback (most recent call last):
  File "/opt/sync/sync_contacts.py", line 42, in <module>
    resp.raise_for_status()
  File "/usr/lib/python3/dist-packages/requests/models.py", line 1021, in raise_for_status
    raise HTTPError(http_error_msg, response=self)
requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://api.casestream.io/v2/contacts?limit=50
"""

CURL_429 = """\
< HTTP/1.1 429 Too Many Requests
< Content-Type: application/json
< Retry-After: 12
< X-RateLimit-Limit: 1000
< X-RateLimit-Remaining: 0
< X-RateLimit-Reset: 1789214412
<
{"error":"rate_limit_exceeded","message":"Rate limit of 1000 requests per minute exceeded"}
"""

PY_429_HEADERS = """\
>>> r = requests.post(url, json=batch, headers=auth)
>>> r
<Response [429]>
>>> r.headers
{'Date': 'Sat, 12 Sep 2026 11:58:01 GMT', 'Content-Type': 'application/json', 'Retry-After': '30', 'X-RateLimit-Limit': '100', 'X-RateLimit-Remaining': '0'}
"""

POSTMAN_400 = """\
POST https://api.casestream.io/v2/contacts
Status: 400 Bad Request  Time: 212 ms  Size: 341 B
Body:
{
    "error": "validation_failed",
    "field": "email",
    "message": "must be a valid email address"
}
"""

JS_FETCH_400 = """\
Uncaught (in promise) Error: API error 400
    at createContact (app.js:88:11)
console.log(await res.json()):
{ error: 'validation_failed', field: 'close_date', message: 'must be an ISO 8601 date (YYYY-MM-DD)' }
"""

AXIOS_401 = """\
AxiosError: Request failed with status code 401
    at settle (node_modules/axios/lib/core/settle.js:19:12)
  code: 'ERR_BAD_REQUEST',
  response: { status: 401, statusText: 'Unauthorized', data: { error: 'invalid_token', error_description: 'The access token is malformed' } }
"""


def test_curl_401_with_expired_description_identifies_token_expiry() -> None:
    d = diagnose([CURL_401], NOW)
    assert d.outcome == "token_expiry_identified"
    assert d.http_status == 401
    assert d.details["request_id"] == "7f3c2a1e-9b41-4d0e-a5c2-0c9d1e2f3a4b"
    assert "grant_type=refresh_token" in d.fix and "grant_type=client_credentials" in d.fix
    assert "3600" in d.fix


def test_bare_expired_body_is_enough() -> None:
    assert diagnose([EXPIRED_BODY], NOW).outcome == "token_expiry_identified"


@pytest.mark.parametrize(
    "statement",
    [
        "the token was generated yesterday",
        "I got the token 2 hours ago",
        "issued at 09:00",
        "We fetched the access token at 9:30am this morning",
        "the bearer token is about 3 hours old",
        "token created 2026-09-12T10:30:00Z",
        "I generated it yesterday at 17:00, so it should still be good?",
    ],
)
def test_401_with_a_token_older_than_an_hour_is_expiry(statement: str) -> None:
    d = diagnose([PY_401_NO_BODY, statement], NOW)
    assert d.outcome == "token_expiry_identified", d
    assert int(d.details["token_age_s"]) > 3600


def test_401_with_jwt_iat_two_hours_ago() -> None:
    token = jwt({"sub": "app_42", "iat": ts(10), "exp": ts(11)})
    text = f'curl -H "Authorization: Bearer {token}" https://api.casestream.io/v2/deals\n< HTTP/1.1 401 Unauthorized'
    d = diagnose([text], NOW)
    assert d.outcome == "token_expiry_identified"
    assert d.details["token_age_s"] == "7200"
    assert any("jwt" in note for note in d.evidence)


def test_jwt_exp_in_the_past_without_status() -> None:
    token = jwt({"sub": "app_42", "exp": ts(11, 30)})
    d = diagnose([f"my calls stopped working, here is the token I send: {token}"], NOW)
    assert d.outcome == "token_expiry_identified"


def test_decoded_jwt_payload_from_jwt_io() -> None:
    pasted = f'got 401 Unauthorized. decoded payload: {{"sub":"u_9","iat":{ts(8)},"exp":{ts(9)}}}'
    assert diagnose([pasted], NOW).outcome == "token_expiry_identified"


def test_jwt_claims_decodes_without_verifying() -> None:
    token = jwt({"iat": 1, "exp": 3601, "scope": "contacts.read"})
    assert jwt_claims(f"Bearer {token}") == {"iat": 1, "exp": 3601}
    assert jwt_claims("Bearer eyJnot.eyJvalid!.x") == {}


def test_401_fresh_token_is_not_expiry_and_asks_for_the_body() -> None:
    d = diagnose([PY_401_NO_BODY, "I just generated a new token and it still fails"], NOW)
    assert d.outcome == "needs_more_info"
    assert d.cause == "token_not_expired"
    assert "response body" in d.question


def test_401_with_unknown_token_age_asks_when_and_grant_type() -> None:
    d = diagnose([PY_401_NO_BODY], NOW)
    assert d.outcome == "needs_more_info"
    assert "grant type" in d.question


def test_conversation_answers_the_question_in_a_later_turn() -> None:
    turns = [
        "Our nightly sync fails with a 401",
        "We use client credentials. I requested the token at 08:15 UTC and reuse it all day",
    ]
    d = diagnose(turns, NOW)
    assert d.outcome == "token_expiry_identified"
    assert d.details["grant_type"] == "client_credentials"
    assert "grant_type=client_credentials" in d.fix
    assert "grant_type=refresh_token" not in d.fix


def test_refresh_token_user_gets_the_refresh_fix() -> None:
    turns = [EXPIRED_BODY, "we have a refresh token from the authorization code flow"]
    d = diagnose(turns, NOW)
    assert d.details["grant_type"] == "authorization_code"
    assert "grant_type=refresh_token" in d.fix
    assert "rotate" in d.fix


def test_fails_after_an_hour_symptom() -> None:
    d = diagnose(["Integration works for about an hour and then every call gets 401s"], NOW)
    assert d.outcome == "token_expiry_identified"


def test_correction_overrides_earlier_age_statement() -> None:
    turns = [
        "getting 401 again",
        "I got the token 2 hours ago",
        "sorry, I refreshed it 5 minutes ago",
    ]
    assert diagnose(turns, NOW).cause == "token_not_expired"


def test_malformed_token_from_axios() -> None:
    d = diagnose([AXIOS_401], NOW)
    assert d.outcome == "token_invalid_identified"
    assert d.cause == "access_token_malformed"
    assert "Bearer" in d.fix


def test_missing_token() -> None:
    d = diagnose(['HTTP/1.1 401 Unauthorized\n{"error":"missing_token"}'], NOW)
    assert (d.outcome, d.cause) == ("token_invalid_identified", "missing_token")


def test_invalid_grant_on_refresh_means_reauthorise() -> None:
    body = '{"error":"invalid_grant","error_description":"The refresh token is invalid, expired or revoked"}'
    d = diagnose([f"POST /oauth/token grant_type=refresh_token -> 400\n{body}"], NOW)
    assert (d.outcome, d.cause) == ("token_invalid_identified", "refresh_token_invalid")


def test_curl_429_with_plan_limit_and_retry_after() -> None:
    d = diagnose([CURL_429], NOW, plan="Professional", limit_per_min=1000)
    assert d.outcome == "rate_limit_explained"
    assert d.details["limit_per_min"] == "1000"
    assert d.details["retry_after_s"] == "12"
    assert d.details["remaining"] == "0"
    assert "Professional plan allows 1,000 requests per minute" in d.fix
    assert "12 s" in d.fix
    assert "X-RateLimit-Remaining" in d.fix


def test_python_429_headers_dict_starter_plan() -> None:
    d = diagnose([PY_429_HEADERS], NOW, plan="Starter", limit_per_min=100)
    assert d.outcome == "rate_limit_explained"
    assert d.details["retry_after_s"] == "30"
    assert "Starter plan allows 100 requests" in d.fix


def test_colloquial_429_without_plan_lists_all_limits() -> None:
    d = diagnose(["our import script keeps getting 429s since this morning"], NOW)
    assert d.outcome == "rate_limit_explained"
    assert "Starter 100, Professional 1,000, Enterprise 5,000" in d.fix


def test_rate_limit_error_code_without_status() -> None:
    d = diagnose(['{"error": "rate_limit_exceeded"}'], NOW, plan="Enterprise", limit_per_min=5000)
    assert d.outcome == "rate_limit_explained"
    assert "5,000" in d.fix


def test_postman_400_names_the_field() -> None:
    d = diagnose([POSTMAN_400], NOW)
    assert d.outcome == "malformed_field_identified"
    assert d.details["field"] == "email"
    assert d.details["field_message"] == "must be a valid email address"
    assert "`email`" in d.fix


def test_js_object_literal_400() -> None:
    d = diagnose([JS_FETCH_400], NOW)
    assert d.outcome == "malformed_field_identified"
    assert d.details["field"] == "close_date"
    assert "ISO 8601" in d.details["field_message"]


def test_python_dict_repr_400() -> None:
    text = "print(r.status_code, r.json())\n400 {'error': 'validation_failed', 'field': 'phone', 'message': 'must be E.164'}"
    d = diagnose([text], NOW)
    assert d.details["field"] == "phone"
    assert d.details["field_message"] == "must be E.164"


def test_several_invalid_fields_in_a_details_list() -> None:
    body = json.dumps(
        {
            "error": "validation_failed",
            "details": [
                {"field": "email", "message": "must be a valid email address"},
                {"field": "limit", "message": "must be between 1 and 200"},
            ],
        }
    )
    d = diagnose([f"HTTP/1.1 400 Bad Request\n\n{body}"], NOW)
    assert d.details["fields"] == "email,limit"
    assert "must be between 1 and 200" in d.fix


def test_400_without_body_asks_for_it() -> None:
    d = diagnose(["creating a contact returns a 400, no idea why"], NOW)
    assert d.outcome == "needs_more_info"
    assert "response body" in d.question


def test_403_insufficient_scope_is_permissions_not_expiry() -> None:
    d = diagnose(['< HTTP/2 403\n{"error":"insufficient_scope"}'], NOW)
    assert d.outcome == "permission_denied_identified"
    assert "refreshing will not help" in d.fix


def test_500_is_reported_for_escalation_with_request_id() -> None:
    d = diagnose(["HTTP/1.1 500 Internal Server Error\nX-Request-Id: req-123"], NOW)
    assert d.outcome == "server_error_reported"
    assert d.details["request_id"] == "req-123"


def test_nothing_to_go_on_asks_for_status_and_body() -> None:
    d = diagnose(["the API is not working for us"], NOW)
    assert d.outcome == "needs_more_info"
    assert "status code" in d.question and "curl -v" in d.question


def test_numbers_that_are_not_statuses_are_ignored() -> None:
    assert statuses("limit=200 and Retry-After: 400, 1000 requests, invoice 4010") == ()
    assert statuses("HTTP/1.1 200 OK ... later HTTP/1.1 429 Too Many Requests") == (200, 429)


def test_latest_error_status_wins() -> None:
    ev = gather(["first I got a 401", "now it says 429 Too Many Requests"], NOW)
    assert ev.status == 429


def test_diagnosis_is_json_ready() -> None:
    d = diagnose([CURL_401, "token from yesterday"], NOW)
    assert json.loads(json.dumps(d.to_dict()))["outcome"] == "token_expiry_identified"


def test_chrome_console_401_with_clock_time_statement() -> None:
    turns = [
        "GET https://api.casestream.io/v2/deals 401 (Unauthorized)   app.js:112",
        "the token is from this morning at 8am",
    ]
    d = diagnose(turns, NOW)
    assert d.outcome == "token_expiry_identified"
    assert d.details["token_age_s"] == "14400"


def test_revoked_token_means_reauthorise() -> None:
    body = '{"error":"invalid_token","error_description":"The access token was revoked"}'
    d = diagnose([body], NOW)
    assert (d.outcome, d.cause) == ("token_invalid_identified", "access_token_revoked")


def test_failing_since_yesterday_is_not_a_token_age() -> None:
    d = diagnose(["I am getting error code 401 since yesterday"], NOW)
    assert (d.outcome, d.cause) == ("needs_more_info", "token_age_unknown")


def test_logged_status_and_minutes_statement() -> None:
    turns = ['status=401 body={"error": "invalid_token"}', "we generated the token 90 minutes ago"]
    d = diagnose(turns, NOW)
    assert d.outcome == "token_expiry_identified"
    assert d.details["token_age_s"] == "5400"


@pytest.mark.parametrize(
    ("text", "outcome", "field"),
    [
        (
            "I create opportunity by API and receive 400 error, field close_date, message must "
            "be an ISO 8601 date",
            "malformed_field_identified",
            "close_date",
        ),
        (
            "why does ?limit=500 give me invalid_parameter on field limit?",
            "malformed_field_identified",
            "limit",
        ),
        ("validation_failed on the birthday field", "malformed_field_identified", "birthday"),
        ("rate limited constantly (429). we're on starter", "rate_limit_explained", None),
        (
            "error 401 unauthorized. The access token we store in database since two days",
            "token_expiry_identified",
            None,
        ),
        (
            "after the batch job (it runs ~3 hours on the same token) everything is 401 invalid_token",
            "token_expiry_identified",
            None,
        ),
    ],
)
def test_errors_described_in_sentences(text: str, outcome: str, field: str | None) -> None:
    d = diagnose([text], NOW)
    assert d.outcome == outcome
    assert d.details.get("field") == field
