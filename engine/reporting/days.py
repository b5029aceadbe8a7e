"""Local calendar days in SQL, on both stores: a stay's length and a readmission's gap are
counted in the hospital's days (as the rules count los_days), not in UTC ones.

PostgreSQL converts in the query (AT TIME ZONE); SQLite has no zones, so the session's
connection gets a small deterministic function that does the same conversion.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, cast, func, literal, type_coerce
from sqlalchemy.orm import Session

_EPOCH = date(1970, 1, 1)
_SQLITE_FUNCTION = "engine_local_day"


@lru_cache(maxsize=8)
def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)


def _sqlite_local_day(stored: str | None, zone: str) -> int | None:
    """Days since 1970-01-01 of the local date of a UTC instant as SQLite stores it."""
    if stored is None:
        return None
    instant = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return (instant.astimezone(_zone(zone)).date() - _EPOCH).days


def local_day(session: Session, column: Any, zone: ZoneInfo) -> Any:
    """An integer expression: the local day number of the instant `column` (days since the
    epoch), so that differences of two are calendar days."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(cast(func.timezone(zone.key, column), Date)
                           - literal(_EPOCH, Date), Integer)
    raw: Any = session.connection().connection.driver_connection
    raw.create_function(_SQLITE_FUNCTION, 2, _sqlite_local_day, deterministic=True)
    return getattr(func, _SQLITE_FUNCTION)(column, zone.key, type_=Integer)


def day_number(session: Session, column: Any) -> Any:
    """An integer expression: the day number of a date column (days since the epoch)."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(column - literal(_EPOCH, Date), Integer)
    return cast(func.julianday(column) - 2440587.5, Integer)
