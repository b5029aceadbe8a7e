"""What a metric is asked about: the stays of a unit, a hospital service, a payer, a period;
read from a form, checked, and turned into conditions on the stay (Encounter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_

from engine.storage.models import Encounter

GRAINS = {"month": "Month", "week": "Week (from Monday)"}


@dataclass(frozen=True)
class Scope:
    """The filters every metric takes. Empty means all; dates are the site's local days."""

    unit: str | None = None
    service: str | None = None
    payer: str | None = None  # a plan code (IN1-2) or a payer class (medicare, commercial...)
    start: date | None = None  # first day of the period, included
    end: date | None = None  # last day of the period, included
    grain: str = "month"  # avoidable days over time: by month or by week


@dataclass(frozen=True)
class Asked:
    """A scope read from a form: the values as typed (the form shows them again) and, per
    field, what is wrong with them."""

    scope: Scope
    typed: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)


FIELDS = ("unit", "service", "payer", "from", "to", "grain")


def _day(text: str, label: str, errors: dict[str, str], name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = f"{label} must be a date (YYYY-MM-DD), not {text!r}."
        return None


def read(params: Mapping[str, Any]) -> Asked:
    """A scope from query parameters; an unknown unit is not an error (it has no stays)."""
    typed = {name: str(params.get(name) or "").strip()[:100] for name in FIELDS}
    errors: dict[str, str] = {}
    start = _day(typed["from"], "From", errors, "from")
    end = _day(typed["to"], "To", errors, "to")
    if start and end and end < start:
        errors["to"] = f"The period ends ({end.isoformat()}) before it starts " \
                       f"({start.isoformat()}): give a To date on or after the From date."
    grain = typed["grain"] or "month"
    if grain not in GRAINS:
        errors["grain"] = "Group avoidable days by month or by week."
        grain = "month"
    scope = Scope(unit=typed["unit"] or None, service=typed["service"] or None,
                  payer=typed["payer"] or None, start=start, end=end, grain=grain)
    return Asked(scope if not errors else Scope(grain=grain), typed, errors)


def stay_conditions(scope: Scope) -> list[ColumnElement[bool]]:
    """The stay's unit (where it is or was last), hospital service and payer (plan or class)."""
    out: list[ColumnElement[bool]] = []
    if scope.unit:
        out.append(Encounter.unit == scope.unit)
    if scope.service:
        out.append(Encounter.hospital_service == scope.service)
    if scope.payer:
        out.append(or_(Encounter.payer_plan == scope.payer, Encounter.payer_class == scope.payer))
    return out


def on_stays(query: Any, scope: Scope, encounter_id: Any) -> Any:
    """`query` narrowed to the scope's stays; without unit, service or payer no join at all
    (the metrics over every stay read their own table only)."""
    conditions = stay_conditions(scope)
    if not conditions:
        return query
    return query.join(Encounter, Encounter.id == encounter_id).where(*conditions)


def instants(scope: Scope, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """The period as instants: from local midnight of its first day to local midnight after
    its last (a half-open range the indexes on admit and discharge times serve)."""
    start = datetime.combine(scope.start, time(), zone) if scope.start else None
    end = datetime.combine(scope.end + timedelta(days=1), time(), zone) if scope.end else None
    return start, end


def within(column: Any, scope: Scope, zone: ZoneInfo) -> list[ColumnElement[bool]]:
    """`column` (an instant) inside the period."""
    start, end = instants(scope, zone)
    out: list[ColumnElement[bool]] = []
    if start is not None:
        out.append(column >= start)
    if end is not None:
        out.append(column < end)
    return out


def within_days(column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """`column` (a date) inside the period."""
    out: list[ColumnElement[bool]] = []
    if scope.start is not None:
        out.append(column >= scope.start)
    if scope.end is not None:
        out.append(column <= scope.end)
    return out
