"""Open discharge barriers now: how long they have stood and of which kind."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core import ur_record
from engine.reporting.scope import Scope, on_stays
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import Barrier

DEFINITION = (
    "Barriers open now: not resolved and not voided, on the scope's stays (their unit, "
    "service and payer; any stay, discharged or not: a barrier left open is open work). "
    "Age: now minus when the barrier was opened, in buckets under 24 hours, 1-2 days "
    "(24 to 72 hours), 3-7 days (72 hours to 8 days) and over 7 days (8 days or more). The "
    "period does not apply: this is a count as of now.")
AGES = ("<24 h", "1-2 d", "3-7 d", ">7 d")
_LIMITS = (timedelta(hours=24), timedelta(hours=72), timedelta(days=8))


def _open(session: Session, scope: Scope, ctx: Context) -> list[tuple[Any, ...]]:
    """(age bucket, category, open barriers): one GROUP BY for both tables."""
    age = case(*[(Barrier.opened_at > ctx.now - limit, i) for i, limit in enumerate(_LIMITS)],
               else_=len(_LIMITS)).label("age")
    query = on_stays(select(age, Barrier.category, func.count())
                     .where(Barrier.resolved_at.is_(None), Barrier.voided_at.is_(None)),
                     scope, Barrier.encounter_id).group_by(age, Barrier.category)
    return ctx.shared("barriers", scope, lambda: [tuple(r) for r in session.execute(query)])


def _summed(rows: list[tuple[Any, ...]], at: int) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for row in rows:
        out[row[at]] += int(row[2])
    return out


def by_age(session: Session, scope: Scope, ctx: Context) -> Table:
    counts = _summed(_open(session, scope, ctx), 0)
    return Table(("Age", "Open barriers"),
                 [(name, counts.get(i, 0)) for i, name in enumerate(AGES)])


def by_category(session: Session, scope: Scope, ctx: Context) -> Table:
    rows = [(ur_record.words(ur_record.DELAY_CATEGORIES, code), n)
            for code, n in _summed(_open(session, scope, ctx), 1).items()]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table(("Delay category", "Open barriers"), rows)


FAMILY = "Open barriers"
METRICS = (
    Metric("open-barriers-by-age", FAMILY, "Open barriers by age", DEFINITION, by_age,
           Chart(0, (1,), "Open barriers")),
    Metric("open-barriers-by-category", FAMILY, "Open barriers by delay category", DEFINITION,
           by_category, Chart(0, (1,), "Open barriers")),
)
