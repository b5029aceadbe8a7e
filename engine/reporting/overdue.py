"""Overdue work now, by team (the queue a task belongs to) and by the person who owns it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core.vocabulary import OPEN_TASK_STATUSES, OutputKind, OutputStatus
from engine.reporting.scope import Scope, on_stays
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import RuleOutput

DEFINITION = (
    "Open tasks (ready, in progress or on hold) whose due time has passed now, on the "
    "scope's stays, by queue (the team that does the work: case management, UR, physician "
    "advisor...) and by owner (unassigned: still in the queue). Escalated: overdue tasks "
    "already escalated to a supervisor (the owner keeps them). The period does not apply: "
    "a count as of now.")


def _overdue(session: Session, scope: Scope, ctx: Context) -> list[tuple[Any, ...]]:
    """(queue, owner, overdue, escalated): one GROUP BY for both tables, on the open-work
    index (status, kind, due_at): an open task is an active output."""
    groups = (RuleOutput.queue, RuleOutput.owner)
    query = on_stays(select(*groups, func.count(),
                            func.sum(case((RuleOutput.escalated_to.is_not(None), 1), else_=0)))
                     .where(RuleOutput.status == OutputStatus.ACTIVE,
                            RuleOutput.kind == OutputKind.TASK,
                            RuleOutput.due_at < ctx.now,
                            RuleOutput.task_status.in_(OPEN_TASK_STATUSES)),
                     scope, RuleOutput.encounter_id).group_by(*groups)
    return ctx.shared("overdue", scope, lambda: [tuple(r) for r in session.execute(query)])


def by_queue(session: Session, scope: Scope, ctx: Context) -> Table:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for queue, owner, n, escalated in _overdue(session, scope, ctx):
        acc = sums[str(queue or "(no queue)").replace("_", " ")]
        acc[0] += int(n)
        acc[1] += int(n) if owner is None else 0
        acc[2] += int(escalated or 0)
    rows = [(queue, n, unassigned, escalated)
            for queue, (n, unassigned, escalated) in sums.items()]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table(("Queue", "Overdue tasks", "Unassigned", "Escalated"), rows)


def by_owner(session: Session, scope: Scope, ctx: Context) -> Table:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _queue, owner, n, escalated in _overdue(session, scope, ctx):
        acc = sums[owner or "(unassigned)"]
        acc[0] += int(n)
        acc[1] += int(escalated or 0)
    rows = [(owner, n, escalated) for owner, (n, escalated) in sums.items()]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table(("Owner", "Overdue tasks", "Escalated"), rows)


FAMILY = "Overdue work"
METRICS = (
    Metric("overdue-by-queue", FAMILY, "Overdue work by team (queue)", DEFINITION, by_queue,
           Chart(0, (1,), "Overdue tasks")),
    Metric("overdue-by-owner", FAMILY, "Overdue work by owner", DEFINITION, by_owner,
           Chart(0, (1,), "Overdue tasks")),
)
