"""Avoidable days: the days of stays that were not medically necessary, as UR confirmed them,
by delay category, by the party responsible and over time.

Over time each day counts in its own month or week, and every month or week of the period is
shown (a quiet month is a zero, not a line drawn across it). The database groups the runs by
their first and last days (a few thousand pairs at most: a year of days times a few lengths);
Python splits those into days.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core import ur_record
from engine.reporting import days
from engine.reporting.scope import Scope, on_stays, within_days
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import AvoidableDay

CONFIRMED = "confirmed"
_COUNTED = (
    "Avoidable days confirmed by a person (proposed and rejected ones are not counted; voided "
    "records are excluded), for the scope's stays (their unit, service and payer). A record "
    "covers its first to its last day, both included: last day - first day + 1 days.")
DEFINITION = _COUNTED + (
    " A record is counted, all its days, when its first day falls in the period. Days: the "
    "sum of those day counts; records: how many runs of days.")
OVER_TIME_DEFINITION = _COUNTED + (
    " Over time: each day in its own month, or week (Monday to Sunday), counting the days "
    "that fall in the period. Every month or week is shown, zero when it has none, from the "
    "period's first day (without one: the first avoidable day) to its last (without one: "
    "today, or the last avoidable day if later). Days: the avoidable days in that month or "
    "week; records: the records with a day in it (a record running from one month or week "
    "into the next counts in both).")
_DAY = timedelta(days=1)


def _confirmed(query: Any, scope: Scope) -> Any:
    return on_stays(query.where(AvoidableDay.status == CONFIRMED,
                                AvoidableDay.voided_at.is_(None)),
                    scope, AvoidableDay.encounter_id)


def _grouped(session: Session, scope: Scope, ctx: Context) -> list[tuple[Any, ...]]:
    """(category, party, days, records) of the records whose first day is in the period: one
    GROUP BY for the two ranked tables."""
    length = days.day_number(session, AvoidableDay.last_day) \
        - days.day_number(session, AvoidableDay.first_day) + 1
    groups = (AvoidableDay.category, AvoidableDay.responsible_party)
    query = _confirmed(select(*groups, func.sum(length), func.count())
                       .where(*within_days(AvoidableDay.first_day, scope)),
                       scope).group_by(*groups)
    return ctx.shared("avoidable_days", scope,
                      lambda: [tuple(row) for row in session.execute(query)])


def _summed(rows: list[tuple[Any, ...]], at: int) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        out[row[at]][0] += int(row[2] or 0)
        out[row[at]][1] += int(row[3])
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


def _runs(session: Session, scope: Scope) -> list[tuple[date, date, int]]:
    """(first day, last day, records) of the records with a day in the period."""
    overlapping = []
    if scope.start is not None:
        overlapping.append(AvoidableDay.last_day >= scope.start)
    if scope.end is not None:
        overlapping.append(AvoidableDay.first_day <= scope.end)
    groups = (AvoidableDay.first_day, AvoidableDay.last_day)
    query = _confirmed(select(*groups, func.count()).where(*overlapping),
                       scope).group_by(*groups)
    return [(first, last, int(n)) for first, last, n in session.execute(query)]


def _bucket(day: date, grain: str) -> date:
    """The Monday of the day's week, or the first of its month."""
    return day - timedelta(days=day.weekday()) if grain == "week" else day.replace(day=1)


def _next(bucket: date, grain: str) -> date:
    if grain == "week":
        return bucket + timedelta(days=7)
    return date(bucket.year + bucket.month // 12, bucket.month % 12 + 1, 1)


def over_time(session: Session, scope: Scope, ctx: Context) -> Table:
    label = "Week (from Monday)" if scope.grain == "week" else "Month"
    columns = (label, "Avoidable days", "Records")
    runs = _runs(session, scope)
    if scope.start is None and not runs:
        return Table(columns, [])
    today = ctx.now.astimezone(ctx.zone).date()
    start = scope.start or min(first for first, _, _ in runs)
    end = scope.end or max([today, *(last for _, last, _ in runs)])
    counted: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for first, last, n in runs:
        day, touched = max(first, start), set()
        while day <= min(last, end):
            bucket = _bucket(day, scope.grain)
            counted[bucket][0] += n
            touched.add(bucket)
            day += _DAY
        for bucket in touched:
            counted[bucket][1] += n
    rows: list[tuple[str, int, int]] = []
    bucket = _bucket(start, scope.grain)
    while bucket <= end:
        n, records = counted.get(bucket, (0, 0))
        rows.append((bucket.isoformat() if scope.grain == "week" else bucket.strftime("%Y-%m"),
                     n, records))
        bucket = _next(bucket, scope.grain)
    return Table(columns, rows)


FAMILY = "Avoidable days"
METRICS = (
    Metric("avoidable-days-by-category", FAMILY, "Avoidable days by delay category",
           DEFINITION, by_category, Chart(0, (1,), "Avoidable days")),
    Metric("avoidable-days-by-party", FAMILY, "Avoidable days by responsible party",
           DEFINITION, by_party, Chart(0, (1,), "Avoidable days")),
    Metric("avoidable-days-over-time", FAMILY, "Avoidable days over time",
           OVER_TIME_DEFINITION, over_time, Chart(0, (1,), "Avoidable days", "line")),
)
