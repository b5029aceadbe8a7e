"""Signed tokens: OAuth2 access tokens (JWT, HS256) and the web session cookie.

Both are JWTs signed with one key but for different audiences, so a session cookie is never
accepted as a bearer token nor the reverse. Each carries the account's token version
(`tv`): bumping it in the database (disable, new password) revokes everything issued
before. Times are wall-clock time, never the engine's injectable clock, which runs in
event time during replays.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jwt

from engine.core.config import Settings
from engine.core.errors import ConfigurationError, NotAuthenticated

log = logging.getLogger("engine.security")

ALGORITHM = "HS256"
ISSUER = "engine"
ACCESS = "engine:api"
SESSION = "engine:session"
MIN_KEY_LENGTH = 32
Kind = Literal["user", "client"]


class SigningKeyError(ConfigurationError, ValueError):
    """The configured signing key cannot be used (too short, unreadable file)."""


class TokenError(NotAuthenticated):
    """The token is malformed, forged, expired or for another audience."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    sub: str
    kind: Kind
    role: str
    scope: tuple[str, ...]
    tv: int
    iat: int
    exp: int
    jti: str


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """A browser session: anonymous (sub None, only a CSRF token) until sign-in."""

    sub: str | None
    tv: int
    csrf: str
    iat: int  # sign-in time: the session ends session_max_s after it
    last: int  # last use: the session ends session_idle_s after it
    exp: int


def signing_key(settings: Settings) -> bytes:
    """ENGINE_JWT_SECRET, or a key generated once into jwt_secret_file (demo, one process)."""
    if settings.jwt_secret is not None:
        key = settings.jwt_secret.get_secret_value()
        if len(key) < MIN_KEY_LENGTH:
            raise SigningKeyError(f"ENGINE_JWT_SECRET must be at least {MIN_KEY_LENGTH} "
                                  "characters")
        return key.encode()
    return _key_file(settings.jwt_secret_file, settings.database_url)


def _key_file(path: Path, database_url: str) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if len(key) < MIN_KEY_LENGTH:
            raise SigningKeyError(f"signing key file {path} holds a key under "
                                  f"{MIN_KEY_LENGTH} characters") from None
        return key.encode()
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    if not database_url.startswith("sqlite"):
        log.warning("generated a signing key in %s: set ENGINE_JWT_SECRET so every engine "
                    "process signs and checks tokens with the same key", path)
    return key.encode()


def issue_access(key: bytes, *, sub: str, kind: Kind, role: str, scope: tuple[str, ...],
                 tv: int, ttl_s: int, now: float | None = None) -> tuple[str, AccessClaims]:
    iat = int(now if now is not None else time.time())
    claims = AccessClaims(sub, kind, role, scope, tv, iat, iat + ttl_s, uuid.uuid4().hex)
    payload = {"iss": ISSUER, "aud": ACCESS, "sub": sub, "kind": kind, "role": role,
               "scope": " ".join(scope), "tv": tv, "iat": iat, "exp": claims.exp,
               "jti": claims.jti}
    return jwt.encode(payload, key, algorithm=ALGORITHM), claims


def read_access(key: bytes, token: str) -> AccessClaims:
    payload = _decode(key, token, ACCESS, ["sub", "kind", "role", "tv", "iat", "exp", "jti"])
    if payload["kind"] not in ("user", "client"):
        raise TokenError("unknown principal kind")
    try:
        return AccessClaims(str(payload["sub"]), payload["kind"], str(payload["role"]),
                            tuple(str(payload.get("scope", "")).split()), int(payload["tv"]),
                            int(payload["iat"]), int(payload["exp"]), str(payload["jti"]))
    except (TypeError, ValueError) as exc:
        raise TokenError("malformed claims") from exc


def issue_session(key: bytes, session: SessionClaims) -> str:
    payload = {"iss": ISSUER, "aud": SESSION, "tv": session.tv, "csrf": session.csrf,
               "iat": session.iat, "last": session.last, "exp": session.exp}
    if session.sub is not None:
        payload["sub"] = session.sub
    return jwt.encode(payload, key, algorithm=ALGORITHM)


def read_session(key: bytes, token: str) -> SessionClaims:
    payload = _decode(key, token, SESSION, ["csrf", "iat", "last", "exp"])
    try:
        return SessionClaims(payload.get("sub"), int(payload.get("tv", 0)), str(payload["csrf"]),
                             int(payload["iat"]), int(payload["last"]), int(payload["exp"]))
    except (TypeError, ValueError) as exc:
        raise TokenError("malformed claims") from exc


def _decode(key: bytes, token: str, audience: str, required: list[str]) -> dict:
    try:
        return jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience, issuer=ISSUER,
                          options={"require": [*required, "iss", "aud"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("expired") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError("invalid") from exc
