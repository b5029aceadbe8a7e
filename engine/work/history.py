"""A task's history: every step (created, assigned, started, noted, completed...) with who
and when, so a supervisor or an auditor can read what happened to a piece of work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.vocabulary import TaskEventAction
from engine.storage.models import RuleOutput, TaskEvent

ENGINE = "engine"  # the actor name of the rule engine and the clock


def record(session: Session, task: RuleOutput, action: str, actor: str, now: datetime, *,
           from_status: str | None = None, to_status: str | None = None,
           text: str | None = None, detail: dict[str, Any] | None = None) -> TaskEvent:
    """Append one step to the task's history (in the caller's transaction; a new task needs
    no flush first: the step names it by relationship)."""
    event = TaskEvent(at=now, actor=actor, action=action, from_status=from_status,
                      to_status=to_status, text=text, detail=detail, output=task)
    session.add(event)
    return event


def history(session: Session, task_id: int) -> list[TaskEvent]:
    """The task's steps, oldest first (including steps not yet flushed)."""
    session.flush()
    return list(session.scalars(select(TaskEvent).where(TaskEvent.output_id == task_id)
                                .order_by(TaskEvent.at, TaskEvent.id)))


def notes(session: Session, task_ids: list[int]) -> dict[int, list[TaskEvent]]:
    """Task id -> its notes, oldest first (one query for a page of tasks)."""
    if not task_ids:
        return {}
    out: dict[int, list[TaskEvent]] = {}
    rows = session.scalars(select(TaskEvent).where(TaskEvent.output_id.in_(task_ids),
                                                   TaskEvent.action == TaskEventAction.NOTE)
                           .order_by(TaskEvent.at, TaskEvent.id))
    for event in rows:
        out.setdefault(event.output_id, []).append(event)
    return out
