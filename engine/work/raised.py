"""What the rule engine's reconciliation means for work: new tasks become ready and go to
their person or queue; tasks the rules withdraw are cancelled; both enter the history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from engine.core.vocabulary import OutputKind, TaskEventAction
from engine.storage.models import Encounter, RuleOutput
from engine.work.assignment import assign_new
from engine.work.history import ENGINE, record
from engine.work.lifecycle import CANCELLED, READY
from engine.work.staffing import Staffing


def follow(session: Session, enc: Encounter, created: list[RuleOutput],
           cancelled: list[RuleOutput], now: datetime, staffing: Staffing) -> None:
    """Called after reconciliation, in its transaction, with the outputs it created and
    cancelled and the staffing of the engine that evaluated."""
    new = [o for o in created if o.kind == OutputKind.TASK]
    ended = [o for o in cancelled if o.kind == OutputKind.TASK]
    if not new and not ended:
        return
    for task in new:
        task.task_status = READY
    assign_new(session, enc, new, now, staffing)
    for task in new:
        record(session, task, TaskEventAction.CREATED, ENGINE, now, to_status=READY,
               detail={"queue": task.queue, "owner": task.owner})
    for task in ended:
        before, task.task_status = task.task_status, CANCELLED
        record(session, task, TaskEventAction.CANCELLED, ENGINE, now, from_status=before,
               to_status=CANCELLED, text=task.end_reason)
