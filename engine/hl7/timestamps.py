"""HL7 DTM/TS values to aware datetimes: offset when given, else the hospital's zone."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<frac>\d{1,4}))?(?P<tz>[+-]\d{4})?$"
)


class Hl7TimestampError(ValueError):
    pass


def parse_dtm(value: str, zone: ZoneInfo) -> datetime | None:
    """Parse an HL7 timestamp; '' gives None. Local times resolve in `zone` (first fold)."""
    value = value.strip()
    if not value:
        return None
    m = _DTM.match(value)
    if not m:
        raise Hl7TimestampError(f"{value!r} is not an HL7 timestamp (YYYYMMDDHHMM[SS][+/-ZZZZ])")
    g = m.groupdict()
    try:
        naive = datetime(
            int(g["y"]),
            int(g["mo"] or 1),
            int(g["d"] or 1),
            int(g["h"] or 0),
            int(g["mi"] or 0),
            int(g["s"] or 0),
            int((g["frac"] or "0").ljust(6, "0")[:6]),
        )
    except ValueError as exc:
        raise Hl7TimestampError(f"{value!r} is not a valid date/time: {exc}") from exc
    if g["tz"]:
        sign = 1 if g["tz"][0] == "+" else -1
        hours, minutes = int(g["tz"][1:3]), int(g["tz"][3:5])
        if hours > 14 or minutes > 59:
            raise Hl7TimestampError(f"{value!r} has an invalid UTC offset")
        return naive.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
    return naive.replace(tzinfo=zone)


def parse_date(value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    if len(value) < 8 or not value[:8].isdigit():
        raise Hl7TimestampError(f"{value!r} is not an HL7 date (YYYYMMDD)")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError as exc:
        raise Hl7TimestampError(f"{value!r} is not a valid date: {exc}") from exc
