"""Overdue work now, by team (the queue a task belongs to) and by the person who owns it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core.vocabulary import OPEN_TASK_STATUSES, OutputKind
from engine.reporting.scope import Scope, stay_conditions
from engine.reporting.table import Chart, Context, Metric, Table
from engine.storage.models import Encounter, RuleOutput

DEFINITION = (
    "Open tasks (ready, in progress or on hold) whose due time has passed now, on the "
    "scope's stays, by queue (the team that does the work: case management, UR, physician "
    "advisor...) and by owner (unassigned: still in the queue). Escalated: overdue tasks "
    "already escalated to a supervisor (the owner keeps them). The period does not apply: "
    "a count as of now.")


def _overdue(session: Session, scope: Scope, ctx: Context, group: Any) -> list[tuple[Any, ...]]:
    query = (select(group, func.count(),
                    func.sum(case((RuleOutput.owner.is_(None), 1), else_=0)),
                    func.sum(case((RuleOutput.escalated_to.is_not(None), 1), else_=0)))
             .join(Encounter, Encounter.id == RuleOutput.encounter_id)
             .where(RuleOutput.kind == OutputKind.TASK,
                    RuleOutput.task_status.in_(OPEN_TASK_STATUSES),
                    RuleOutput.due_at < ctx.now, *stay_conditions(scope))
             .group_by(group))
    return [tuple(row) for row in session.execute(query)]


def by_queue(session: Session, scope: Scope, ctx: Context) -> Table:
    rows = [(str(queue or "(no queue)").replace("_", " "), int(n), int(u or 0), int(e or 0))
            for queue, n, u, e in _overdue(session, scope, ctx, RuleOutput.queue)]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table(("Queue", "Overdue tasks", "Unassigned", "Escalated"), rows)


def by_owner(session: Session, scope: Scope, ctx: Context) -> Table:
    rows = [(owner or "(unassigned)", int(n), int(e or 0))
            for owner, n, _u, e in _overdue(session, scope, ctx, RuleOutput.owner)]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return Table(("Owner", "Overdue tasks", "Escalated"), rows)


FAMILY = "Overdue work"
METRICS = (
    Metric("overdue-by-queue", FAMILY, "Overdue work by team (queue)", DEFINITION, by_queue,
           Chart(0, (1,), "Overdue tasks")),
    Metric("overdue-by-owner", FAMILY, "Overdue work by owner", DEFINITION, by_owner,
           Chart(0, (1,), "Overdue tasks")),
)
