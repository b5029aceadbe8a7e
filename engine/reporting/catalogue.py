"""Every metric, in the order the page shows them; `compute` runs one for a scope."""

from __future__ import annotations

from sqlalchemy.orm import Session

from engine.reporting import (
    authorizations,
    avoidable_days,
    barriers,
    length_of_stay,
    overdue,
    readmissions,
    timeliness,
)
from engine.reporting.scope import Scope
from engine.reporting.table import Context, Metric, Table

METRICS: tuple[Metric, ...] = (
    *length_of_stay.METRICS,
    *avoidable_days.METRICS,
    *barriers.METRICS,
    *timeliness.METRICS,
    *authorizations.METRICS,
    *readmissions.METRICS,
    *overdue.METRICS,
)
BY_KEY = {m.key: m for m in METRICS}


def compute(session: Session, metric: Metric, scope: Scope, ctx: Context) -> Table:
    return metric.query(session, scope, ctx)
