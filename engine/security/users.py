"""People and systems that may sign in: add, disable, list, change passwords, check secrets.

Disabling an account or changing its password bumps its token version, which revokes every
access token and web session issued before (they carry the version they were issued at).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine.core.errors import InvalidInput
from engine.core.roles import ROLES
from engine.security import passwords
from engine.storage.models import ApiClient, UserAccount

Kind = Literal["user", "client"]
NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}")
_MODEL: dict[str, type[UserAccount] | type[ApiClient]] = {
    "user": UserAccount, "client": ApiClient}


class AccountError(InvalidInput, ValueError):
    """A refused account change, said in one line for the person who asked."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    kind: Kind
    role: str
    active: bool
    token_version: int
    scopes: tuple[str, ...] = ()
    display_name: str | None = None
    created_at: datetime | None = None


def _account(row: UserAccount | ApiClient) -> Account:
    if isinstance(row, UserAccount):
        return Account(row.name, "user", row.role, row.active, row.token_version,
                       display_name=row.display_name, created_at=row.created_at)
    return Account(row.name, "client", row.role, row.active, row.token_version,
                   scopes=tuple(row.scopes.split()), created_at=row.created_at)


def _name(name: str) -> str:
    clean = name.strip().lower()
    if not NAME.fullmatch(clean):
        raise AccountError(f"invalid name {name!r}: use 1-100 of a-z 0-9 . _ @ - "
                           "(starting with a letter or digit)")
    return clean


def _role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return role


def _find(session: Session, kind: Kind, name: str) -> UserAccount | ApiClient | None:
    model = _MODEL[kind]
    # mypy reads select() over a union of models as their base class
    return cast("UserAccount | ApiClient | None", session.scalars(
        select(model).where(model.name == name.strip().lower())).first())


def _insert(sessions: sessionmaker[Session], row: UserAccount | ApiClient) -> Account:
    with sessions() as session:
        if _find(session, "user" if isinstance(row, UserAccount) else "client", row.name):
            raise AccountError(f"{row.name} already exists")
        session.add(row)
        try:
            session.commit()
        except IntegrityError as exc:
            raise AccountError(f"{row.name} already exists") from exc
        return _account(row)


def add_user(sessions: sessionmaker[Session], name: str, role: str, password: str,
             display_name: str | None = None) -> Account:
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc)) from None
    now = datetime.now(UTC)
    return _insert(sessions, UserAccount(
        name=_name(name), display_name=(display_name or "").strip() or None, role=_role(role),
        password_hash=passwords.hash_secret(password), active=True, token_version=1,
        created_at=now, updated_at=now))


def parse_scopes(role: str, scope: str) -> tuple[str, ...]:
    """Scopes are permission names the role holds, space-separated as OAuth2 sends them."""
    allowed = {p.value for p in ROLES[_role(role)]}
    wanted = tuple(dict.fromkeys(scope.replace(",", " ").split()))
    if not wanted:
        raise AccountError(f"give at least one scope; {role} may have: "
                           f"{' '.join(sorted(allowed))}")
    unknown = [s for s in wanted if s not in allowed]
    if unknown:
        raise AccountError(f"scope {' '.join(unknown)} is not granted to role {role}; it may "
                           f"have: {' '.join(sorted(allowed))}")
    return wanted


def add_client(sessions: sessionmaker[Session], name: str, scope: str,
               role: str = "integration") -> tuple[Account, str]:
    """A new client and its secret (shown once; only its hash is kept)."""
    scopes = parse_scopes(role, scope)
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    account = _insert(sessions, ApiClient(
        name=_name(name), secret_hash=passwords.hash_secret(secret), role=role,
        scopes=" ".join(scopes), active=True, token_version=1, created_at=now, updated_at=now))
    return account, secret


def _revise(sessions: sessionmaker[Session], kind: Kind, name: str,
            change: Callable[[Any], None]) -> None:
    """Apply `change` to the account and bump its token version (revoking what it held)."""
    with sessions() as session:
        row = _find(session, kind, name)
        if row is None:
            raise AccountError(f"no {kind} named {name}")
        change(row)
        row.token_version += 1
        row.updated_at = datetime.now(UTC)
        session.commit()


def new_secret(sessions: sessionmaker[Session], name: str) -> str:
    """Give a client a new secret (shown once), revoking the tokens issued with the old one."""
    secret = secrets.token_urlsafe(32)
    hashed = passwords.hash_secret(secret)
    _revise(sessions, "client", name, lambda row: setattr(row, "secret_hash", hashed))
    return secret


def set_password(sessions: sessionmaker[Session], name: str, password: str) -> None:
    """A new password for a person; signs them out everywhere."""
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc)) from None
    hashed = passwords.hash_secret(password)
    _revise(sessions, "user", name, lambda row: setattr(row, "password_hash", hashed))


def set_active(sessions: sessionmaker[Session], kind: Kind, name: str, active: bool) -> None:
    """Disable (revoking its tokens and sessions) or enable an account."""
    _revise(sessions, kind, name, lambda row: setattr(row, "active", active))


def accounts(sessions: sessionmaker[Session], kind: Kind) -> list[Account]:
    model = _MODEL[kind]
    with sessions() as session:
        rows: list[UserAccount | ApiClient] = list(
            session.scalars(select(model).order_by(model.name)))
        return [_account(r) for r in rows]


def current(session: Session, kind: Kind, name: str) -> Account | None:
    """The account as it is now (for checking a token's version and the role)."""
    row = _find(session, kind, name)
    return _account(row) if row is not None else None


def check_secret(sessions: sessionmaker[Session], kind: Kind, name: str,
                 secret: str) -> Account | None:
    """The active account whose password (user) or secret (client) this is, else None.

    Unknown and disabled names cost one hash like known ones. A hash made with weaker
    parameters than today's is replaced on a successful check.
    """
    with sessions() as session:
        row = _find(session, kind, name)
        stored = None if row is None else (
            row.password_hash if isinstance(row, UserAccount) else row.secret_hash)
        if not passwords.verify(stored, secret) or row is None or not row.active:
            return None
        if stored is not None and passwords.needs_rehash(stored):
            if isinstance(row, UserAccount):
                row.password_hash = passwords.hash_secret(secret)
            else:
                row.secret_hash = passwords.hash_secret(secret)
            session.commit()
        return _account(row)

