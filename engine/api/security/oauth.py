"""POST /auth/token: OAuth2 (RFC 6749) password and client-credentials grants.

People use the password grant (username, password); systems such as the EHR use client
credentials (client_id, client_secret in the form or HTTP Basic). An optional `scope`
narrows the token to some of the permissions the account holds. Errors are OAuth2 error
JSON, not OperationOutcomes, as OAuth2 clients expect.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from engine.api.security import signin
from engine.api.security.state import security
from engine.core.roles import ROLES
from engine.security import users
from engine.security.tokens import issue_access

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenRequest(BaseModel):
    grant_type: str = ""
    username: str = ""
    password: str = ""
    client_id: str = ""
    client_secret: str = ""
    scope: str | None = None


class OAuthError(Exception):
    """The token endpoint's RFC 6749 (5.2) answer: status, error code and description.

    A wire form, like engine.api.outcomes.FhirError, raised and answered inside this
    module's endpoint only, so it is no engine error (engine.core.errors)."""

    def __init__(self, status: int, error: str, description: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.error, "error_description": self.description},
                            status_code=self.status, headers={**NO_STORE, **self.headers})


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "malformed HTTP Basic credentials",
                         {"WWW-Authenticate": 'Basic realm="engine"'}) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(401, "invalid_client", "malformed HTTP Basic credentials",
                         {"WWW-Authenticate": 'Basic realm="engine"'})
    return unquote(client_id), unquote(secret)


def _granted(account: users.Account, requested: str | None) -> tuple[str, ...]:
    holds = account.scopes if account.kind == "client" else tuple(
        sorted(p.value for p in ROLES.get(account.role, ())))
    if requested is None or not requested.strip():
        return holds
    wanted = tuple(dict.fromkeys(requested.split()))
    beyond = [s for s in wanted if s not in holds]
    if beyond:
        raise OAuthError(400, "invalid_scope", f"scope {' '.join(beyond)} is not granted to "
                                               f"{account.name}; it holds: {' '.join(holds)}")
    return wanted


def _grant(request: Request, accounts: sessionmaker[Session], form: TokenRequest) -> dict:
    if form.grant_type == "password":
        if not form.username or not form.password:
            raise OAuthError(400, "invalid_request", "the password grant needs username and "
                                                     "password")
        try:
            account = signin.check(request, accounts, "user", form.username, form.password)
        except signin.Throttled as exc:
            raise OAuthError(429, "temporarily_unavailable", str(exc),
                             {"Retry-After": str(exc.wait_s)}) from None
        if account is None:
            raise OAuthError(400, "invalid_grant", "unknown user, wrong password, or the "
                                                   "account is disabled")
    elif form.grant_type == "client_credentials":
        basic = _basic(request)
        client_id, secret = basic or (form.client_id, form.client_secret)
        challenge = {"WWW-Authenticate": 'Basic realm="engine"'} if basic else {}
        if not client_id or not secret:
            raise OAuthError(401, "invalid_client", "send client_id and client_secret (form or "
                                                    "HTTP Basic)", challenge)
        try:
            account = signin.check(request, accounts, "client", client_id, secret)
        except signin.Throttled as exc:
            raise OAuthError(429, "temporarily_unavailable", str(exc),
                             {"Retry-After": str(exc.wait_s)}) from None
        if account is None:
            raise OAuthError(401, "invalid_client", "unknown client, wrong secret, or the "
                                                    "client is disabled", challenge)
    elif not form.grant_type:
        raise OAuthError(400, "invalid_request", "grant_type is required")
    else:
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {form.grant_type!r}: use "
                                                        "password or client_credentials")
    scope = _granted(account, form.scope)
    ttl = security(request).settings.token_ttl_s
    token, _ = issue_access(security(request).key, sub=account.name, kind=account.kind,
                            role=account.role, scope=scope, tv=account.token_version,
                            ttl_s=ttl)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl,
            "scope": " ".join(scope)}


def build_router(accounts: Callable[..., Any]) -> APIRouter:
    """POST /token; `accounts` is the FastAPI dependency that gives the sessions of the
    database holding the accounts (the HTTP app passes the engine's)."""
    router = APIRouter()
    account_store = Depends(accounts)

    @router.post("/token")
    async def token(request: Request,
                    store: sessionmaker[Session] = account_store) -> JSONResponse:
        """Exchange credentials for a bearer token (form body, RFC 6749 section 4.3/4.4)."""
        try:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/x-www-form-urlencoded":
                raise OAuthError(400, "invalid_request", "send the form as "
                                                         "application/x-www-form-urlencoded")
            async with request.form(max_files=0, max_fields=20) as raw:
                fields = {k: v for k, v in raw.items() if isinstance(v, str)}
            try:
                form = TokenRequest.model_validate(fields)
            except ValidationError:
                raise OAuthError(400, "invalid_request", "malformed token request") from None
            body = await run_in_threadpool(_grant, request, store, form)
        except OAuthError as exc:
            return exc.response()
        return JSONResponse(body, headers=NO_STORE)

    return router
