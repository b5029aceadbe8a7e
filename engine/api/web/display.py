"""How times, stays and people read on a page: the hospital's clock, in plain words."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engine.rules.score_detail import score_text

# ISO 8601 instants with an offset, as stored texts carry them ("overdue since 2026-03-03T..").
_INSTANT = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})")


def local(instant: datetime | None, zone: ZoneInfo, fmt: str = "%a %d %b %H:%M %Z") -> str:
    """An instant on the hospital's wall clock (the site profile's zone), with the zone's
    abbreviation so nobody takes it for UTC or their own zone."""
    if instant is None:
        return ""
    return instant.astimezone(zone).strftime(fmt)


def day(value: date | None) -> str:
    """A day of the hospital's calendar as wards write it: "Wed 04 Mar 2026"."""
    return value.strftime("%a %d %b %Y") if value is not None else ""


def localized(text: str | None, zone: ZoneInfo) -> str:
    """A stored text with the instants it quotes on the hospital's clock."""
    if not text:
        return ""
    return _INSTANT.sub(
        lambda m: local(datetime.fromisoformat(m.group(0).replace("Z", "+00:00")), zone), text)


def finding(kind: str, code: str, title: str | None, value: float | None,
            detail: dict[str, Any] | None) -> str:
    """A flag or score as its pill reads: "Excess days", "HOSPITAL 6 (intermediate)"."""
    detail = detail or {}
    if kind == "score":
        return score_text(code, value, detail)
    return str(detail.get("label") or title or words(code))


def end_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    """The next local midnight: "due today" means before it."""
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(UTC)


def span(delta: timedelta) -> str:
    """A duration as people say it: "45 min", "3 h", "2 d 4 h"."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    days, rest = divmod(hours, 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


def due_text(due: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """ "overdue by 3 h", "due in 40 min", "due tomorrow 09:00": what the due time means now."""
    if due is None:
        return "no due time"
    if due <= now:
        return f"overdue by {span(now - due)}"
    if due - now < timedelta(hours=12):
        return f"due in {span(due - now)}"
    days = (due.astimezone(zone).date() - now.astimezone(zone).date()).days
    clock = local(due, zone, "%H:%M")
    if days == 0:
        return f"due today {clock}"
    if days == 1:
        return f"due tomorrow {clock}"
    return f"due in {days} days"


def midnights(start: datetime | None, end: datetime, zone: ZoneInfo) -> int | None:
    """Local midnights crossed between two instants (the two-midnight count)."""
    if start is None:
        return None
    if end <= start:
        return 0
    return (end.astimezone(zone).date() - start.astimezone(zone).date()).days


def length_of_stay(start: datetime | None, end: datetime) -> str:
    """Length of stay so far, in days and hours."""
    if start is None:
        return ""
    return span(max(end - start, timedelta(0)))


def age(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def person_name(family: str | None, given: str | None) -> str:
    """ "FAMILY, Given" as wards write it; "(no name)" rather than an empty cell."""
    if family and given:
        return f"{family.upper()}, {given.title()}"
    return (family or "").upper() or (given or "").title() or "(no name)"


_SAID = {"ur_nurse": "UR nurse", "ur-nurse": "UR nurse", "in-progress": "In progress",
         "failed": "Failed", "rejected": "Declined", "icu": "ICU", "irf": "IRF", "snf": "SNF",
         "ltach": "LTACH"}


def words(code: str | None) -> str:
    """A code as text: "medicare_advantage" -> "Medicare advantage"."""
    if not code:
        return ""
    if code in _SAID:
        return _SAID[code]
    text = code.replace("_", " ").replace("-", " ")
    return text[:1].upper() + text[1:]
