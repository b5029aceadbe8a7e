"""Checking a name and secret, for the token endpoint and the sign-in page alike.

Throttled per name and per client address; every attempt, good or bad, leaves an audit
record (operation login) naming who tried, never the secret.
"""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from engine.api.security import audit
from engine.api.security.state import security
from engine.core.errors import TooManyAttempts
from engine.core.roles import Principal
from engine.security import users


class Throttled(TooManyAttempts):
    """Too many failures lately for this name or address."""

    def __init__(self, wait_s: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {wait_s} s")
        self.wait_s = wait_s


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check(request: Request, accounts: sessionmaker[Session], kind: users.Kind, name: str,
          secret: str) -> users.Account | None:
    """The active account these credentials open (looked up through `accounts`), None if
    they do not; Throttled if locked.

    Blocking (argon2, database): call it from a worker thread.
    """
    name = name.strip()[:100]
    throttle = security(request).throttle
    keys = (f"{kind}:{name.lower()}", f"address:{address(request)}")
    audit.attempt(request, name or "(no name)", kind)
    wait = throttle.wait_s(*keys)
    if wait:
        audit.note(request, "login", None, outcome="4")
        raise Throttled(wait)
    account = users.check_secret(accounts, kind, name, secret) \
        if name and secret else None
    if account is None:
        throttle.failed(*keys)
        audit.note(request, "login", None, outcome="4")
        return None
    throttle.succeeded(keys[0])
    request.state.principal = Principal(account.name, account.kind, account.role)
    audit.note(request, "login", None, outcome="0")
    return account
