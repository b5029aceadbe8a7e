"""The web session: a signed cookie, idle and absolute expiry, and CSRF protection.

The cookie is a JWT (engine.security.tokens, audience engine:session) holding the user's
name, token version, a CSRF token and the sign-in and last-use times; HttpOnly,
SameSite=Lax, Secure on https (or as ENGINE_COOKIE_SECURE says), no Max-Age so closing the
browser ends it on a shared workstation. Nothing about the session is kept on the server:
revocation goes through the account's token version.

CSRF: synchronizer token. Every form renders `csrf_field(request)`; htmx or scripts send
the token in an `X-CSRF-Token` header. The middleware refuses (403) any POST, PUT, PATCH or
DELETE that carries the session cookie without the session's token. Requests with an
Authorization header are exempt: browsers never add one on their own.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from typing import Literal

from markupsafe import Markup
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.security.middleware import HttpMiddleware
from engine.api.security.state import security
from engine.security.tokens import SessionClaims, TokenError, issue_session, read_session

COOKIE = "engine_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
REFRESH_AFTER_S = 60  # re-issue the cookie (sliding idle expiry) at most once a minute
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIXES = ("/fhir", "/api", "/admin", "/auth")  # answered as JSON, never as pages
# Sign-in checks its own token (a stale form gets a fresh one); the token endpoint changes
# nothing and answers only the caller, so a cross-site post there gains nothing.
CSRF_EXEMPT = frozenset({"/login", "/auth/token"})
_UNREAD = object()


def current(connection: HTTPConnection) -> SessionClaims | None:
    """The valid session of this request (signed in or anonymous), or None."""
    cached = getattr(connection.state, "session", _UNREAD)
    if cached is not _UNREAD:
        return cached  # type: ignore[return-value]
    claims = None
    raw = connection.cookies.get(COOKIE)
    if raw:
        sec = security(connection)
        try:
            claims = read_session(sec.key, raw)
        except TokenError:
            claims = None
        if claims is not None and time.time() - claims.last > sec.settings.session_idle_s:
            claims = None
    connection.state.session = claims
    return claims


def _new(connection: HTTPConnection, name: str | None, tv: int) -> SessionClaims:
    now = int(time.time())
    claims = SessionClaims(name, tv, secrets.token_urlsafe(32), now, now,
                           now + security(connection).settings.session_max_s)
    connection.state.session = claims
    connection.state.session_out = claims
    return claims


def begin(connection: HTTPConnection, name: str, token_version: int) -> None:
    """A signed-in session after a successful sign-in: new cookie, new CSRF token."""
    _new(connection, name, token_version)


def end(connection: HTTPConnection) -> None:
    connection.state.session = None
    connection.state.session_out = "clear"


def csrf_token(connection: HTTPConnection) -> str:
    """This session's CSRF token, starting an anonymous session when there is none."""
    claims = current(connection)
    if claims is None:
        claims = _new(connection, None, 0)
    return claims.csrf


def csrf_field(connection: HTTPConnection) -> Markup:
    """The hidden form field every POST form must carry."""
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, csrf_token(connection))


def csrf_matches(connection: HTTPConnection, submitted: str | None) -> bool:
    claims = current(connection)
    return bool(claims and submitted and hmac.compare_digest(submitted.encode(),
                                                             claims.csrf.encode()))


def _cookie(connection: HTTPConnection, value: str | Literal["clear"]) -> bytes:
    secure = security(connection).settings.cookie_secure
    if secure is None:
        secure = connection.url.scheme == "https"
    parts = [f"{COOKIE}={'' if value == 'clear' else value}", "Path=/", "HttpOnly",
             "SameSite=Lax"]
    if value == "clear":
        parts.append("Max-Age=0")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


def _outgoing(connection: HTTPConnection) -> bytes | None:
    """The Set-Cookie this response needs: a new or ended session, or a sliding refresh."""
    out = getattr(connection.state, "session_out", None)
    if out == "clear":
        return _cookie(connection, "clear")
    sec = security(connection)
    if isinstance(out, SessionClaims):
        return _cookie(connection, issue_session(sec.key, out))
    claims = getattr(connection.state, "session", None)
    now = int(time.time())
    if isinstance(claims, SessionClaims) and claims.sub and now - claims.last >= REFRESH_AFTER_S:
        fresh = SessionClaims(claims.sub, claims.tv, claims.csrf, claims.iat, now, claims.exp)
        return _cookie(connection, issue_session(sec.key, fresh))
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _submitted(request: Request, receive: Receive) -> tuple[str | None, Receive]:
    """The CSRF token the request carries (header or form field), and a receive to replay."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header, receive
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None, receive
    limit = security(request).settings.max_body_bytes
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, receive
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return None, receive
    body = b"".join(chunks)
    async with Request(request.scope, _replay(body, receive)).form() as form:
        value = form.get(CSRF_FIELD)
    return (value if isinstance(value, str) else None), _replay(body, receive)


Refuse = Callable[[Request, str], Response]


class SessionMiddleware(HttpMiddleware):
    """Checks CSRF on unsafe cookie requests; writes the session cookie on the way out.

    `refuse` answers a failed check (an OperationOutcome for the API, the refused page for a
    browser): the web pages own their templates, this edge does not."""

    def __init__(self, app: ASGIApp, refuse: Refuse) -> None:
        super().__init__(app)
        self.refuse = refuse

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if (request.method in UNSAFE and COOKIE in request.cookies
                and "authorization" not in request.headers
                and request.url.path not in CSRF_EXEMPT):
            token, receive = await _submitted(request, receive)
            if not csrf_matches(request, token):
                claims = current(request)
                if claims is not None and claims.sub:
                    request.state.audit_actor = claims.sub
                reason = ("this form has expired or did not come from this site: go back, "
                          "reload the page and try again" if claims else
                          "your session has ended: sign in again")
                await self.refuse(request, reason)(scope, receive, send)
                return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = _outgoing(request)
                if cookie is not None:
                    message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
