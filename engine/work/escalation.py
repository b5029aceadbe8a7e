"""Overdue work goes up without leaving its owner: an open task past its due time plus a
grace period is escalated, once, to the owner's supervisor (or the staffing file's default
supervisor). The owner keeps the task (it stays on their list, counted overdue there); the
supervisor is recorded in `escalated_to` and sees it on the supervisor page with its owner.
A history step says who it went to.

The server's clock loop calls `escalate_overdue` every interval. Rows are claimed with
FOR UPDATE SKIP LOCKED, so several engine processes never escalate one task twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.vocabulary import OutputKind, OutputStatus, TaskEventAction
from engine.storage.models import RuleOutput
from engine.work.history import ENGINE, record
from engine.work.lifecycle import OPEN
from engine.work.staffing import Staffing

BATCH = 500


def _overdue(now: datetime, grace: timedelta):
    return (select(RuleOutput)
            .where(RuleOutput.status == OutputStatus.ACTIVE, RuleOutput.kind == OutputKind.TASK,
                   RuleOutput.due_at < now - grace, RuleOutput.escalated_at.is_(None),
                   RuleOutput.task_status.in_(OPEN))
            .order_by(RuleOutput.due_at, RuleOutput.id)
            .limit(BATCH)
            .with_for_update(skip_locked=True))


def escalate(session: Session, task: RuleOutput, now: datetime, staffing: Staffing) -> None:
    task.escalated_to = staffing.supervisor_of(task.owner)
    task.escalated_at = now
    task.version += 1
    task.updated_at = now
    record(session, task, TaskEventAction.ESCALATED, ENGINE, now,
           text=f"overdue since {task.due_at.isoformat() if task.due_at else '?'}",
           detail={"owner": task.owner, "to": task.escalated_to})


def escalate_overdue(sessions: sessionmaker[Session], now: datetime, grace: timedelta,
                     staffing: Staffing) -> int:
    """Escalate every open task due before `now - grace` not yet escalated; return how many."""
    done = 0
    while True:
        with sessions() as session, session.begin():
            rows = list(session.scalars(_overdue(now, grace)))
            for task in rows:
                escalate(session, task, now, staffing)
        done += len(rows)
        if len(rows) < BATCH:
            return done

