"""Who is calling: an OAuth2 bearer token (API) or the web session cookie (pages).

Endpoints depend on `require(permission)` (API: 401/403 as OperationOutcome) and pages on
`require_page(permission)` (redirect to /login, or a 403 page); both yield the caller as a
`Principal` and leave it on `request.state.principal` for the audit trail. Every use of a
token or session checks the account in the database, so disabling it or bumping its token
version takes effect on the next request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from engine.api import session
from engine.api.deps import get_runtime
from engine.api.http_errors import outcome_for
from engine.api.security.state import SecurityState, security
from engine.core.config import Settings
from engine.core.errors import NotAuthenticated, NotPermitted
from engine.core.roles import Permission, Principal
from engine.security import users
from engine.security.tokens import TokenError, read_access

REALM = 'Bearer realm="engine"'
log = logging.getLogger("engine.security")


class Unauthenticated(NotAuthenticated):
    """No valid credential for the API; answered 401 with the WWW-Authenticate challenge
    RFC 6750 asks for, `error` being its error code when there is one."""

    def __init__(self, diagnostics: str, error: str | None = None) -> None:
        super().__init__(diagnostics)
        self.headers = {"WWW-Authenticate": REALM + (f', error="{error}"' if error else "")}


class SignInRequired(NotAuthenticated):
    """A page asked for by someone not signed in: send them to /login and back."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageRefused(NotPermitted):
    """A signed-in person whose role does not allow this page (the refused page, 403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _account_principal(request: Request, kind: users.Kind, name: str, tv: int,
                       scopes: frozenset[str]) -> Principal | None:
    """The principal if the account still exists, is active and the version still holds."""
    with get_runtime(request).readers() as db:
        account = users.current(db, kind, name)
    if account is None or not account.active or account.token_version != tv:
        return None
    return Principal(name=account.name, kind=kind, role=account.role, scopes=scopes)


def _from_bearer(request: Request, header: str) -> Principal:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("authentication required: send Authorization: Bearer <token> "
                              "(from POST /auth/token)", "invalid_request")
    try:
        claims = read_access(security(request).key, token.strip())
    except TokenError as exc:
        raise Unauthenticated(f"{exc} bearer token: get a new one from POST /auth/token",
                              "invalid_token") from None
    principal = _account_principal(request, claims.kind, claims.sub, claims.tv,
                                   frozenset(claims.scope))
    if principal is None:
        raise Unauthenticated("bearer token revoked (account disabled or changed): get a new "
                              "one", "invalid_token")
    return principal


def _from_session(request: Request) -> Principal | None:
    claims = session.current(request)
    if claims is None or not claims.sub:
        return None
    return _account_principal(request, "user", claims.sub, claims.tv, frozenset())


def authenticate(request: Request) -> Principal:
    """The caller: bearer token first, else the session cookie; 401 when neither holds."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    header = request.headers.get("authorization")
    principal = _from_bearer(request, header) if header else _from_session(request)
    if principal is None:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token> "
                              "(from POST /auth/token)")
    request.state.principal = principal
    return principal


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the authenticated caller, refused with 403 without `permission`."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not principal.can(permission):
            raise NotPermitted(f"role {principal.role} may not {permission.value}")
        return principal

    return dependency


def require_page(permission: Permission) -> Callable[[Request], Principal]:
    """A dependency for web pages: signed in with the web UI and `permission`, or refused.

    Not signed in: a redirect to /login?next=<this page>. Signed in (or a bearer token)
    without the permission: a 403 page.
    """

    def dependency(request: Request) -> Principal:
        try:
            principal = authenticate(request)
        except Unauthenticated as exc:
            if request.headers.get("authorization"):
                raise PageRefused("this token is not valid for the web pages") from exc
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target) from None
        for needed in (Permission.WEB_UI, permission):
            if not principal.can(needed):
                raise PageRefused(f"Your role ({principal.role.replace('_', ' ')}) does not "
                                  "allow this page.")
        return principal

    return dependency


def require_token(request: Request) -> str:
    """Any authenticated caller (kept for endpoints not yet moved to `require`)."""
    return authenticate(request).name


def install(app: FastAPI, settings: Settings) -> None:
    """Keep the signing key and throttle on the app; answer refusals in the right form."""
    app.state.security = SecurityState.from_settings(settings)
    if os.environ.get("ENGINE_API_TOKEN"):
        log.warning("ENGINE_API_TOKEN is no longer read: add a client (engine clients add) "
                    "and get tokens from POST /auth/token")

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_request: Request, exc: Unauthenticated) -> JSONResponse:
        return outcome_for(exc, headers=exc.headers)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = f"/login?next={quote(exc.next_path, safe='/')}"
        if request.headers.get("hx-request"):  # htmx: navigate the whole page, not a fragment
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

