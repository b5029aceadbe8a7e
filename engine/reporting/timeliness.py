"""Work done by its deadline: the Medicare notices (IM, MOON) delivered on time and the UR
reviews done on time, from the tasks the rules raise for them (RuleOutput kind task; a
completed or cancelled task's `ended_at` is when it ended, its `due_at` the deadline).

The notice and review rules need the patient in the hospital, so a discharge cancels the
tasks still open: a notice never given is a cancelled task, and one cancelled after its
deadline was owed and not done (missed), not a task that stopped applying."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core.vocabulary import OutputKind, TaskStatus
from engine.reporting.scope import Scope, on_stays, within
from engine.reporting.table import Chart, Context, Metric, Table, rate
from engine.storage.models import RuleOutput

NOTICES: Mapping[str, str] = {
    "im-notice": "IM (within 2 days of admission)",
    "im-follow-up-notice": "IM follow-up copy (before discharge)",
    "moon-notice": "MOON (within 36 hours of observation)",
}
REVIEWS: Mapping[str, str] = {
    "initial-ur-review": "Initial (admission) review",
    "continued-stay-review": "Continued-stay review",
    "status-review": "Status (two-midnight) review",
    "short-stay-review": "Short-stay review",
    "excess-days-review": "Excess-days review",
}
# still owed: open, or tried and failed (the work is still to do)
OWED = (TaskStatus.READY, TaskStatus.IN_PROGRESS, TaskStatus.ON_HOLD, TaskStatus.FAILED)
_RULE = (
    "Tasks of these types with a due time in the period, on the scope's stays. On time: "
    "completed at or before the due time. Late: completed after it. Overdue: not completed "
    "and past due now (open, or failed: still owed). Missed: cancelled after the due time "
    "(owed and never done: ended by the discharge, or by the rule no longer applying once "
    "the deadline had passed). On time % = on time / (on time + late + overdue + missed). "
    "Excluded: tasks cancelled at or before the due time (the rule stopped applying in "
    "time), tasks declined by a person as not applying, and open tasks not yet due.")
NOTICE_DEFINITION = ("Medicare notices delivered on time: the IM (Important Message from "
                     "Medicare, first notice and follow-up copy) and the MOON (Medicare "
                     "Outpatient Observation Notice) tasks. " + _RULE)
REVIEW_DEFINITION = ("UR reviews done on time: initial, continued-stay, status, short-stay "
                     "and excess-days review tasks. " + _RULE)
COLUMNS = ("On time", "Late", "Overdue", "Missed", "Counted", "On time %")
Counts = tuple[int, int, int, int]  # on time, late, overdue, missed


def _counts(session: Session, scope: Scope, ctx: Context) -> dict[str, Counts]:
    """(on time, late, overdue, missed) per task type, notices and reviews in one GROUP BY."""
    done = RuleOutput.task_status == TaskStatus.COMPLETED
    on_time = func.sum(case((done & (RuleOutput.ended_at <= RuleOutput.due_at), 1), else_=0))
    late = func.sum(case((done & (RuleOutput.ended_at > RuleOutput.due_at), 1), else_=0))
    overdue = func.sum(case((RuleOutput.task_status.in_(OWED)
                             & (RuleOutput.due_at < ctx.now), 1), else_=0))
    missed = func.sum(case(((RuleOutput.task_status == TaskStatus.CANCELLED)
                            & (RuleOutput.ended_at > RuleOutput.due_at), 1), else_=0))
    query = on_stays(select(RuleOutput.code, on_time, late, overdue, missed)
                     .where(RuleOutput.kind == OutputKind.TASK,
                            RuleOutput.code.in_([*NOTICES, *REVIEWS]),
                            RuleOutput.due_at.is_not(None),
                            *within(RuleOutput.due_at, scope, ctx.zone)),
                     scope, RuleOutput.encounter_id).group_by(RuleOutput.code)
    return ctx.shared("timeliness", scope, lambda: {
        code: (int(a or 0), int(b or 0), int(c or 0), int(d or 0))
        for code, a, b, c, d in session.execute(query)})


def _row(name: str, counts: Counts) -> tuple[Any, ...]:
    counted = sum(counts)
    return (name, *counts, counted, rate(counts[0], counted))


def _table(counts: dict[str, Counts], types: Mapping[str, str]) -> Table:
    rows: list[tuple[Any, ...]] = []
    total = (0, 0, 0, 0)
    for code, name in types.items():
        found = counts.get(code, (0, 0, 0, 0))
        if sum(found):
            rows.append(_row(name, found))
        total = (total[0] + found[0], total[1] + found[1], total[2] + found[2],
                 total[3] + found[3])
    rows.append(_row("All", total))
    return Table(("Task type", *COLUMNS), rows)


def notices(session: Session, scope: Scope, ctx: Context) -> Table:
    return _table(_counts(session, scope, ctx), NOTICES)


def reviews(session: Session, scope: Scope, ctx: Context) -> Table:
    return _table(_counts(session, scope, ctx), REVIEWS)


_CHART = Chart(0, (1, 2, 3, 4), "Tasks", "stacked")
METRICS = (
    Metric("notices-on-time", "Medicare notices", "IM and MOON delivered on time",
           NOTICE_DEFINITION, notices, _CHART),
    Metric("reviews-on-time", "Utilization reviews", "Reviews done on time",
           REVIEW_DEFINITION, reviews, _CHART),
)
