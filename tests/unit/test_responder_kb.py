"""Passages the responder tests share (chunks of the project's own KB articles)."""

from __future__ import annotations

from agent.responder import Passage, Question

TOKEN = Passage(
    id="kb-api-token-expired-401@v2#1",
    article_id="kb-api-token-expired-401",
    title='Fix "401 invalid_token" errors from the API',
    text=(
        "An HTTP **401 Unauthorized** response from `https://api.casestream.io/v2` means the"
        " API could not accept the access token you sent. The JSON body tells you why.\n\n"
        "Access tokens are valid for **1 hour (3600 seconds)**. This response means your"
        " integration kept using a token after that hour. It is not a permissions problem"
        " and not an outage.\n\n"
        "**What to do:**\n\n"
        "- **Authorization code apps:** exchange your refresh token for a new access token"
        " at `POST https://auth.casestream.io/oauth/token` with"
        " `grant_type=refresh_token`.\n"
        "- **Client credentials apps:** request a new token with"
        " `grant_type=client_credentials`. There is no refresh token in this flow.\n"
        "- Retry the original request once with the new token.\n\n"
        "**Prevent it:** store the `expires_in` value (3600) with the token and refresh"
        " proactively about 5 minutes before expiry."
    ),
    score=0.82,
)
RATE = Passage(
    id="kb-api-rate-limits@v2#2",
    article_id="kb-api-rate-limits",
    title="API rate limits and handling HTTP 429",
    text=(
        "The `Retry-After` header gives the number of **seconds** to wait before retrying."
        " Requests rejected with 429 are not processed, so it is safe to retry them.\n\n"
        "## How to handle 429 correctly\n\n"
        "1. Stop sending requests and wait at least the `Retry-After` value.\n"
        "2. Retry with **exponential backoff and jitter** if you get another 429: wait"
        " `Retry-After`, then 2\u00d7, 4\u00d7, 8\u00d7 that time (capped at 60 seconds).\n"
        "3. Give up after about 6 attempts and log the failure.\n"
        "4. Never retry in a tight loop - this keeps the tenant at its limit.\n\n"
        "Watch `X-RateLimit-Remaining` and slow down as it approaches zero."
    ),
    score=0.74,
)
LOCKOUT = Passage(
    id="kb-account-lockout@v2#1",
    article_id="kb-account-lockout",
    title="Account locked after failed sign-in attempts",
    text=(
        "- An account is locked after **5 consecutive failed sign-in attempts**.\n"
        "- The lock lasts **15 minutes**. After that, the user can try again and the"
        " failed-attempt counter starts from zero.\n\n"
        "## How to get back in as a user\n\n"
        "1. **Wait 15 minutes** and sign in with the correct password.\n"
        "2. **Reset your password.** Click **Forgot password?** on the sign-in page."
        " Completing the reset (link valid 30 minutes, single use) unlocks the account"
        " immediately.\n"
        "3. **Ask an administrator to unlock you** under"
        " **Settings > Users & Permissions > Users**."
    ),
    score=0.79,
)
REFUND = Passage(
    id="kb-billing-refunds@v2#1",
    article_id="kb-billing-refunds",
    title="Request a refund",
    text=(
        "- You can request a refund within **14 days of the charge** (the invoice date).\n"
        "- Refunds go back to the **original payment method** (card or SEPA bank account).\n"
        "- Once approved, a refund appears on your statement within **5-10 business days**,"
        " depending on your bank.\n"
        "- **Up to 100 EUR/USD** (per charge, including VAT): Casestream Support can approve"
        " and issue the refund directly, usually the same business day."
    ),
    score=0.71,
)
ALL = (TOKEN, RATE, LOCKOUT, REFUND)


def question(text: str, *passages: Passage, level: str = "basic", intent: str = "") -> Question:
    return Question(
        text=text,
        tenant_id="acme",
        intent=intent or "api_auth",
        passages=passages or ALL,
        technical_level="technical" if level == "technical" else "basic",
    )


def test_passage_ids_are_unique_and_cite_their_article() -> None:
    assert len({p.id for p in ALL}) == len(ALL)
    assert all(p.id.startswith(p.article_id + "@") for p in ALL)
