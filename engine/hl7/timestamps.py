"""HL7 DTM/TS values to aware datetimes: offset when given, else the hospital's zone.

Every precision HL7 allows is read: year, month, day, minute, second, and 1 to 4 fractional
digits (and 6, which many senders write), with or without a +/-HHMM offset. A partial value
reads as its first instant (`1950` is 1950-01-01 00:00).

Local times (no offset) are read in the site's IANA zone with `fold=0`, PEP 495's default:

* the autumn hour that happens twice (America/Chicago 2026-11-01 01:00-01:59) reads as its
  first pass, still on daylight time (01:30 -> 06:30Z). HL7 v2 gives a sender no way to say
  which pass it meant except an explicit offset, which we honour when sent;
* a spring time that never happens (2026-03-08 02:00-02:59) reads with the offset in force
  before the jump (02:30 CST = 08:30Z) and is returned as the wall time that instant really
  had (03:30 CDT), so nothing downstream sees a local time that did not exist.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from engine.core.errors import Malformed

_DTM = re.compile(
    r"(?P<y>\d{4})(?:(?P<mo>\d{2})(?:(?P<d>\d{2})(?:(?P<h>\d{2})(?:(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:\.(?P<frac>\d{1,6}))?)?)?)?)?)?(?P<tz>[+-]\d{4})?\Z"
)
_UTC = UTC


class Hl7TimestampError(Malformed, ValueError):
    pass


def parse_dtm(value: str, zone: ZoneInfo) -> datetime | None:
    """Parse an HL7 timestamp; '' gives None. Local times resolve in `zone` (see above)."""
    value = value.strip()
    if not value:
        return None
    return _parse_dtm(value, zone)


@lru_cache(maxsize=4096)
def _parse_dtm(value: str, zone: ZoneInfo) -> datetime:
    # Messages repeat their times (MSH-7, EVN-2, PV1-44 ...): datetimes are immutable, so
    # a parsed value is shared. Errors are raised, never cached.
    m = _DTM.match(value)
    if not m:
        raise Hl7TimestampError(
            f"{value!r} is not an HL7 timestamp (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])"
        )
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        naive = datetime(
            int(y),
            int(mo or 1),
            int(d or 1),
            int(h or 0),
            int(mi or 0),
            int(s or 0),
            int(frac.ljust(6, "0")) if frac else 0,
        )
    except ValueError as exc:
        raise Hl7TimestampError(f"{value!r} is not a valid date/time: {exc}") from exc
    if tz:
        hours, minutes = int(tz[1:3]), int(tz[3:5])
        if hours > 14 or minutes > 59:
            raise Hl7TimestampError(f"{value!r} has an invalid UTC offset")
        offset = timedelta(hours=hours, minutes=minutes)
        fixed = timezone(offset if tz[0] == "+" else -offset)
        return _representable(value, naive.replace(tzinfo=fixed))
    local = _representable(value, naive.replace(tzinfo=zone))
    if _offset_changes_on(zone, naive.year, naive.month, naive.day):
        before, after = local.utcoffset(), local.replace(fold=1).utcoffset()
        if before is not None and after is not None and before < after:
            # In the spring gap: fold=0 used the pre-jump offset; give the real wall time.
            return local.astimezone(_UTC).astimezone(zone)
    return local


def _representable(value: str, when: datetime) -> datetime:
    """Refuse an instant that has no UTC form (e.g. 9999-12-31 23:59 -0600): storing it
    would fail on every retry and stall the sender's queue."""
    try:
        when.astimezone(_UTC)
    except OverflowError as exc:
        raise Hl7TimestampError(f"{value!r} is out of range") from exc
    return when


@lru_cache(maxsize=1024)
def _offset_changes_on(zone: ZoneInfo, year: int, month: int, day: int) -> bool:
    """Whether the zone's UTC offset changes during this local day (a DST day)."""
    start = datetime(year, month, day, tzinfo=zone)
    if start.date() == date.max:
        return False
    return start.utcoffset() != (start + timedelta(days=1)).utcoffset()


def date_precision(value: str) -> str:
    """How much of a DT/DTM was sent, as far as a date goes: "year", "month" or "day"."""
    digits = len(value.strip()[:8])
    return "year" if digits < 6 else "month" if digits < 8 else "day"


def parse_date(value: str) -> date | None:
    """An HL7 DT (or the date part of a DTM): YYYY, YYYYMM or YYYYMMDD, as HL7 allows a
    partial date (a year-only birth date reads as 1 January of that year)."""
    value = value.strip()
    if not value:
        return None
    m = _DTM.match(value)
    if not m:
        raise Hl7TimestampError(f"{value!r} is not an HL7 date (YYYY[MM[DD]])")
    y, mo, d = m.group("y", "mo", "d")
    try:
        return date(int(y), int(mo or 1), int(d or 1))
    except ValueError as exc:
        raise Hl7TimestampError(f"{value!r} is not a valid date: {exc}") from exc
