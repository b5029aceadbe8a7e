"""Search parameters: what each one is and how one of its values becomes a SQL condition.

A parameter's `build` gets one value (comma-separated alternatives are split before), its
modifier and the hospital's zone; it raises InvalidInput (Malformed when unreadable) for a
value it cannot use, answered 400 by the HTTP edge.

Dates (Encounter `date`, the period admit..discharge, open-ended while in hospital; Patient
`birthdate`): a value is a range at its precision; without an offset it is the hospital's
local time. `eq` period within the value's range, `ne` not so, `ge` ends at or after its
start (or ongoing), `gt` ends after its end (or ongoing), `le` starts before its end, `lt`
starts before its start, `sa` starts after it, `eb` ends before it. Encounters without a
start time never match a date search.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, false, or_

from engine.core.errors import InvalidInput, Malformed

MAX_ROW_ID = 2**31 - 1  # primary keys are 32-bit integers
Build = Callable[[str, str | None, ZoneInfo], ColumnElement[bool]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str  # FHIR search parameter type: token | string | date | reference
    doc: str
    build: Build
    modifiers: tuple[str, ...] = ()


def split_values(text: str) -> list[str]:
    """Comma-separated alternatives (OR); `\\,` is a literal comma."""
    out, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in ",$|\\":
            current.append(text[i + 1])
            i += 2
            continue
        if ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


# -- dates -------------------------------------------------------------------------------------
_DATE = re.compile(
    r"(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<F>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?\Z"
)


def date_range(name: str, text: str, zone: ZoneInfo) -> tuple[str, datetime, datetime]:
    """(prefix, low, high): the value as a half-open range of instants at its precision."""
    m = _DATE.match(text.replace(" ", "+"))  # an unencoded '+' in the offset arrives as ' '
    if not m:
        raise Malformed(f"{name}={text!r} is not a FHIR date: use [prefix]YYYY[-MM[-DD"
                        "[Thh:mm[:ss][offset]]]], prefixes eq ne gt lt ge le sa eb")
    prefix = m["prefix"] or "eq"
    if prefix == "ap":
        raise InvalidInput(f"{name}: the 'ap' (approximately) prefix is not supported")
    y, mo, d = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
    tz: tzinfo = zone
    if m["tz"] and m["tz"] != "Z":
        sign = -1 if m["tz"][0] == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m["tz"][1:3]), minutes=int(m["tz"][4:6])))
    elif m["tz"]:
        tz = UTC
    try:
        low = datetime(y, mo, d, int(m["H"] or 0), int(m["M"] or 0), int(m["S"] or 0),
                       tzinfo=tz)
    except ValueError as exc:
        raise Malformed(f"{name}={text!r} is not a valid date: {exc}") from exc
    if m["F"]:  # a polling client echoes meta.lastUpdated: its precision is the fraction
        digits = min(len(m["F"]), 6)
        low = low.replace(microsecond=int(m["F"][:digits].ljust(6, "0")))
        high = low + timedelta(microseconds=10 ** (6 - digits))
    elif m["S"]:
        high = low + timedelta(seconds=1)
    elif m["H"]:
        high = low + timedelta(minutes=1)
    elif m["d"]:
        high = datetime.combine(low.date() + timedelta(days=1), low.timetz())
    elif m["m"]:
        high = low.replace(year=y + (mo == 12), month=mo % 12 + 1)
    else:
        high = low.replace(year=y + 1)
    return prefix, low, high


def period(start: Any, end: Any, name: str = "date") -> Build:
    """A date parameter over a period (start, end); an open end means ongoing."""

    def build(text: str, _modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
        prefix, low, high = date_range(name, text, zone)
        has_start, ongoing = start.isnot(None), end.is_(None)
        return {
            "eq": and_(start >= low, end.isnot(None), end < high),
            "ne": and_(has_start, or_(start < low, ongoing, end >= high)),
            "gt": and_(has_start, or_(ongoing, end >= high)),
            "ge": and_(has_start, or_(ongoing, end >= low)),
            "lt": start < low,
            "le": start < high,
            "sa": start >= high,
            "eb": and_(end.isnot(None), end < low),
        }[prefix]

    return build


# -- references, strings, tokens ---------------------------------------------------------------
def row_id(text: str) -> int | None:
    """A logical id as a row id; ids outside the 32-bit key range simply do not exist."""
    return int(text) if text.isdigit() and len(text) <= 10 and int(text) <= MAX_ROW_ID else None


def _id_of(text: str, resource: str) -> int | None:
    return row_id(text.rstrip("/").rpartition(f"{resource}/")[2] if "/" in text else text)


def reference(column: Any, resource: str) -> Build:
    """A reference parameter on a row-id column: `Resource/<id>` or `<id>`."""
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        ident = _id_of(text, resource)
        return column == ident if ident is not None else false()

    return build


def by_id(model: Any, resource: str) -> Build:
    return reference(model.id, resource)


def token(text: str) -> tuple[str | None, str]:
    """(system, code) of a `[system|]code` token; system None when none was given."""
    system, sep, value = text.partition("|")
    return (system if sep else None), (value if sep else system)


def string(*columns: Any) -> Build:
    """A string parameter on columns: starts with (any case), `:exact` or `:contains`."""

    def build(text: str, modifier: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        if modifier == "exact":
            return or_(*(c == text for c in columns))
        if modifier == "contains":
            return or_(*(c.icontains(text, autoescape=True) for c in columns))
        return or_(*(c.istartswith(text, autoescape=True) for c in columns))

    return build


def choice(name: str, column: Any, allowed: tuple[str, ...],
           value_set: tuple[str, ...] = ()) -> Build:
    """A token parameter `name` on `column` that takes one of `allowed` codes. A code of the
    FHIR `value_set` the engine never keeps matches nothing; any other code is a 400."""

    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        code = token(text)[1]
        if code in allowed:
            return column == code
        return unused_code(name, code, allowed, value_set)

    return build


def unused_code(name: str, code: str, kept: Any, value_set: tuple[str, ...]
                ) -> ColumnElement[bool]:
    """A code the engine does not keep: nothing has it when it is in the FHIR value set (a
    client may ask for every status FHIR defines); otherwise a typo, refused."""
    if code in value_set:
        return false()
    raise InvalidInput(f"{name}={code!r} is not a code of its FHIR value set; this server "
                       f"keeps {', '.join(kept)}")


def instant(column: Any, name: str) -> Build:
    """A date parameter on an instant column (`_lastUpdated`, when recorded)."""
    return period(column, column, name)
