"""Avoidable days: the days of stays that were not medically necessary, as UR confirmed them,
by delay category, by the party responsible and over time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, cast, func, select
from sqlalchemy.orm import Session

from engine.core import ur_record
from engine.reporting import days
from engine.reporting.scope import Scope, stay_conditions, within_days
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import AvoidableDay, Encounter

CONFIRMED = "confirmed"
DEFINITION = (
    "Avoidable days confirmed by a person (proposed and rejected ones are not counted; voided "
    "records are excluded). A record covers its first to its last day, both included: "
    "last day - first day + 1 days. A record is counted, all its days, when its first day "
    "falls in the period, for the scope's stays (their unit, service and payer). Days: the "
    "sum of those day counts; records: how many runs of days.")


def _days(session: Session) -> Any:
    return days.day_number(session, AvoidableDay.last_day) \
        - days.day_number(session, AvoidableDay.first_day) + 1


def _grouped(session: Session, scope: Scope, group: Any) -> list[tuple[Any, ...]]:
    query = (select(group, func.sum(_days(session)), func.count())
             .join(Encounter, Encounter.id == AvoidableDay.encounter_id)
             .where(AvoidableDay.status == CONFIRMED, AvoidableDay.voided_at.is_(None),
                    *within_days(AvoidableDay.first_day, scope), *stay_conditions(scope))
             .group_by(group))
    return [tuple(row) for row in session.execute(query)]


def _ranked(label: str, rows: list[tuple[Any, ...]], names: dict[str, str]) -> Table:
    shown = [(ur_record.words(names, code), int(n or 0), int(runs)) for code, n, runs in rows]
    shown.sort(key=lambda r: (-r[1], r[0]))
    return Table((label, "Avoidable days", "Records"), shown)


def by_category(session: Session, scope: Scope, _ctx: Context) -> Table:
    return _ranked("Delay category", _grouped(session, scope, AvoidableDay.category),
                   ur_record.DELAY_CATEGORIES)


def by_party(session: Session, scope: Scope, _ctx: Context) -> Table:
    return _ranked("Responsible party",
                   _grouped(session, scope, AvoidableDay.responsible_party),
                   ur_record.RESPONSIBLE_PARTIES)


def _bucket(session: Session, grain: str) -> Any:
    """The first day's month (YYYY-MM) or the Monday of its week (YYYY-MM-DD)."""
    day = AvoidableDay.first_day
    if session.get_bind().dialect.name == "postgresql":
        if grain == "week":
            return func.to_char(func.date_trunc("week", cast(day, DateTime())), "YYYY-MM-DD")
        return func.to_char(day, "YYYY-MM")
    if grain == "week":
        return func.date(day, "weekday 0", "-6 days")
    return func.strftime("%Y-%m", day)


def over_time(session: Session, scope: Scope, _ctx: Context) -> Table:
    bucket = _bucket(session, scope.grain).label("bucket")
    rows = sorted(_grouped(session, scope, bucket), key=lambda r: str(r[0]))
    label = "Week (from Monday)" if scope.grain == "week" else "Month"
    return Table((label, "Avoidable days", "Records"),
                 [(str(b), int(n or 0), int(runs)) for b, n, runs in rows])


FAMILY = "Avoidable days"
METRICS = (
    Metric("avoidable-days-by-category", FAMILY, "Avoidable days by delay category",
           DEFINITION, by_category, Chart(0, (1,), "Avoidable days")),
    Metric("avoidable-days-by-party", FAMILY, "Avoidable days by responsible party",
           DEFINITION, by_party, Chart(0, (1,), "Avoidable days")),
    Metric("avoidable-days-over-time", FAMILY, "Avoidable days over time",
           DEFINITION + " Over time: by the month, or the week (Monday to Sunday), of the "
           "first day.", over_time, Chart(0, (1,), "Avoidable days", "line")),
)
