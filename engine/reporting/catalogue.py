"""Every metric, in the order the page shows them, and `compute_all`, which runs them.

The families are independent queries over different tables, so they run side by side, each
family on a session of its own (the database works on several cores while Python waits);
the metrics of one family share one GROUP BY (Context.shared) and run one after another.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
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
PARALLEL = 4  # sessions at once for one page: the pool keeps 8 or more
WORK_MEM = "64MB"


def _families() -> list[list[Metric]]:
    """The metrics grouped by the module that computes them (the ones that share rows)."""
    groups: dict[str, list[Metric]] = {}
    for metric in METRICS:
        groups.setdefault(metric.query.__module__, []).append(metric)
    return list(groups.values())


def compute_all(sessions: Callable[[], Session], scope: Scope,
                context: Callable[[], Context]) -> dict[str, Table]:
    """Every metric's table for `scope`, keyed by metric; `context()` makes each family's."""
    def family(metrics: list[Metric]) -> list[tuple[str, Table]]:
        ctx = context()
        with sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                # sorts and hashes of 100,000 stays in memory, not on disk (this read only)
                session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
            return [(m.key, m.query(session, scope, ctx)) for m in metrics]

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="metrics") as pool:
        done = list(pool.map(family, _families()))
    tables = dict(pair for pairs in done for pair in pairs)
    return {m.key: tables[m.key] for m in METRICS}
