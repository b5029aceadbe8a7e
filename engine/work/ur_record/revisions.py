"""A record's history: before every correction or void, its state as it was is kept.

The current row plus its RecordRevision rows are the whole history of a record, oldest first;
nothing a person recorded is overwritten without a copy.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from engine.core.roles import Permission, Principal
from engine.storage.models import RecordRevision
from engine.work.ur_record.problems import RecordInvalid, RecordStale, permitted

_BOOK = ("id", "version", "updated_by", "updated_at")  # kept as the revision's own columns


class Versioned(Protocol):
    id: int
    encounter_id: int
    version: int
    updated_by: str
    updated_at: datetime
    voided_at: datetime | None
    void_reason: str | None


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def body_of(row: object) -> dict[str, Any]:
    """Every column of the row, JSON-ready (dates as ISO text)."""
    mapper = inspect(row).mapper  # type: ignore[union-attr]
    return {c.key: _plain(getattr(row, c.key)) for c in mapper.column_attrs}


def _keep(session: Session, row: Versioned, by: str, now: datetime, reason: str | None) -> None:
    session.add(RecordRevision(kind=type(row).__tablename__,  # type: ignore[attr-defined]
                               record_id=row.id, encounter_id=row.encounter_id,
                               version=row.version, changed_by=by, changed_at=now,
                               reason=(reason or "")[:500] or None, body=body_of(row)))


def check_version(row: Versioned, expected: int | None) -> None:
    if expected is not None and expected != row.version:
        raise RecordStale(f"this record is at version {row.version}, not {expected}: someone "
                          "changed it since you opened it; read it again")


def revise(session: Session, row: Versioned, changes: dict[str, Any], by: str, now: datetime,
           reason: str | None, expected_version: int | None = None) -> bool:
    """Apply `changes`, keeping the state before them; False (nothing kept) when nothing
    changes. A voided record is not corrected."""
    check_version(row, expected_version)
    if row.voided_at is not None:
        raise RecordInvalid("record", "this record was voided; record a new one instead")
    changed = {k: v for k, v in changes.items() if getattr(row, k) != v}
    if not changed:
        return False
    _keep(session, row, by, now, reason)
    for key, value in changed.items():
        setattr(row, key, value)
    row.version += 1
    row.updated_by, row.updated_at = by, now
    session.flush()  # sessions do not autoflush: the history and the checks after see it
    return True


def void(session: Session, row: Versioned, actor: Principal | str, now: datetime, reason: str,
         expected_version: int | None = None, *, permission: Permission) -> None:
    """Entered in error: kept, marked void with why, left out of facts and numbers. Only a
    role that may write the record may void it (`permission`: UR_WRITE or BARRIER_WRITE)."""
    by = permitted(actor, permission)
    check_version(row, expected_version)
    if not (reason or "").strip():
        raise RecordInvalid("void_reason", "say why the record is void (entered in error...)")
    if row.voided_at is not None:
        raise RecordInvalid("record", "this record is already void")
    _keep(session, row, by, now, reason)
    row.voided_at, row.void_reason = now, reason.strip()[:500]
    row.version += 1
    row.updated_by, row.updated_at = by, now
    session.flush()


def history(session: Session, kind: str, record_id: int) -> list[RecordRevision]:
    """The states a record had before each change, oldest first."""
    return list(session.scalars(select(RecordRevision).where(
        RecordRevision.kind == kind, RecordRevision.record_id == record_id)
        .order_by(RecordRevision.version)))
