"""Avoidable days: the days of stays that were not medically necessary, as UR confirmed them,
by delay category, by the party responsible and over time."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import DateTime, cast, func, select
from sqlalchemy.orm import Session

from engine.core import ur_record
from engine.reporting import days
from engine.reporting.scope import Scope, on_stays, within_days
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import AvoidableDay

CONFIRMED = "confirmed"
DEFINITION = (
    "Avoidable days confirmed by a person (proposed and rejected ones are not counted; voided "
    "records are excluded). A record covers its first to its last day, both included: "
    "last day - first day + 1 days. A record is counted, all its days, when its first day "
    "falls in the period, for the scope's stays (their unit, service and payer). Days: the "
    "sum of those day counts; records: how many runs of days.")


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


def _grouped(session: Session, scope: Scope, ctx: Context) -> list[tuple[Any, ...]]:
    """(category, party, period bucket, days, records): one GROUP BY for the three tables."""
    length = days.day_number(session, AvoidableDay.last_day) \
        - days.day_number(session, AvoidableDay.first_day) + 1
    groups = (AvoidableDay.category, AvoidableDay.responsible_party,
              _bucket(session, scope.grain).label("bucket"))
    query = on_stays(select(*groups, func.sum(length), func.count())
                     .where(AvoidableDay.status == CONFIRMED, AvoidableDay.voided_at.is_(None),
                            *within_days(AvoidableDay.first_day, scope)),
                     scope, AvoidableDay.encounter_id).group_by(*groups)
    return ctx.shared("avoidable_days", scope,
                      lambda: [tuple(row) for row in session.execute(query)])


def _summed(rows: list[tuple[Any, ...]], at: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        out[row[at]][0] += int(row[3] or 0)
        out[row[at]][1] += int(row[4])
    return out


def _ranked(label: str, sums: dict[str, list[int]], names: dict[str, str]) -> Table:
    shown = [(ur_record.words(names, code), n, runs) for code, (n, runs) in sums.items()]
    shown.sort(key=lambda r: (-r[1], r[0]))
    return Table((label, "Avoidable days", "Records"), shown)


def by_category(session: Session, scope: Scope, ctx: Context) -> Table:
    return _ranked("Delay category", _summed(_grouped(session, scope, ctx), 0),
                   ur_record.DELAY_CATEGORIES)


def by_party(session: Session, scope: Scope, ctx: Context) -> Table:
    return _ranked("Responsible party", _summed(_grouped(session, scope, ctx), 1),
                   ur_record.RESPONSIBLE_PARTIES)


def over_time(session: Session, scope: Scope, ctx: Context) -> Table:
    sums = _summed(_grouped(session, scope, ctx), 2)
    label = "Week (from Monday)" if scope.grain == "week" else "Month"
    return Table((label, "Avoidable days", "Records"),
                 [(str(b), n, runs) for b, (n, runs) in sorted(sums.items(),
                                                               key=lambda i: str(i[0]))])


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
