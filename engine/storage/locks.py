"""Per-patient and per-visit serialization across processes (PostgreSQL advisory locks).

SQLite allows one writer at a time, so there the transaction itself is the lock.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session


def visit_lock_key(system: str, number: str) -> str:
    """The one name a visit is locked under. Intake, the task lifecycle and the clock must
    all spell it the same, or they stop serializing on the visit and nothing says so."""
    return f"visit:{system}|{number}"


def _key(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _postgres(session: Session | Connection) -> bool:
    bind = session if isinstance(session, Connection) else session.get_bind()
    return bind.dialect.name == "postgresql"


def lock(session: Session | Connection, *names: str) -> None:
    """Hold transaction-scoped locks on these names, in one round trip, in a fixed order."""
    if not names or not _postgres(session):
        return
    keys = sorted({_key(n) for n in names})
    session.execute(select(*(func.pg_advisory_xact_lock(k) for k in keys)))


def try_lock(session: Session, name: str) -> bool:
    """Take the lock if free (True), or give up at once (False): for background work."""
    if not _postgres(session):
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_key(name)))))
