"""The task lifecycle: which status may follow which, what each step must record, and the
one path for people's changes (change -> re-evaluate the encounter -> the caller commits).

Statuses are FHIR Task.status values, kept in `RuleOutput.task_status`:

    ready       -> in-progress (start) | on-hold (hold) | completed (complete)
                   | cancelled (cancel) | failed (fail, "decline")
    in-progress -> completed | failed | on-hold | cancelled
    on-hold     -> ready (release) | in-progress (resume) | cancelled
    completed, cancelled, failed: terminal, never reopened

`ready -> completed` is allowed because much of the work is done in one sitting (an IM
delivered at the bedside) and forcing a "start" first only adds a click. A completion needs
an `outcome`; a cancel or a decline by a person needs a `reason`; a hold may give one.

The rule engine's view (`RuleOutput.status`) follows: completed -> "completed" (the fact
family `completed_task_types` sees it, and the rule never raises it again); cancelled or
failed by a person -> "cancelled" with `end_reason` "<cancelled|declined> by <who>: <why>".
A rule whose conditions still hold raises such work again as a new task (the rules, not a
person, decide what is owed); completed work stays done.

API (stable: the web worklist and the FHIR API call these inside their own transaction,
then commit; every function raises a `TaskError` subclass and changes nothing on refusal):

    load(session, task_id) -> RuleOutput | None
        the task, locked for change (the visit's advisory lock on PostgreSQL, then the row)
    transition(session, task, target, actor, *, now, outcome=None, reason=None, note=None,
               expected_version=None, chosen=None) -> RuleOutput
        `target` is a status ("in-progress") or an action ("start"); `actor` a Principal
        (needs task:work) or a system name such as "engine"; the caller re-evaluates the
        stay after it (engine.planning.evaluation.after_work), in the same transaction.
        `chosen`: completing the discharge-plan task needs the chosen disposition (a
        transition code such as "snf"); it closes the other proposals
        (engine.work.disposition)
    add_note(session, task, text, actor, *, now, expected_version=None) -> TaskEvent
    reassign(session, task, owner, actor, *, now, reason=None, expected_version=None)
        -> RuleOutput    (needs task:assign; owner None puts the task back in its queue)
    allowed(status) -> tuple[str, ...]      the statuses reachable from `status`
    engine.work.history.history(session, task_id) -> list[TaskEvent]

Every change bumps `RuleOutput.version` (the FHIR versionId and ETag) and `updated_at`, and
appends a TaskEvent (who, when, from which status to which, the text given).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.errors import EngineError, NotPermitted, RuleRefused, StaleVersion
from engine.core.roles import Permission, Principal
from engine.core.vocabulary import (
    OPEN_TASK_STATUSES,
    TERMINAL_TASK_STATUSES,
    OutputKind,
    OutputStatus,
    TaskEventAction,
    TaskStatus,
)
from engine.storage.locks import lock, visit_lock_key
from engine.storage.models import Encounter, RuleOutput, TaskEvent
from engine.work import disposition
from engine.work.history import record

READY, IN_PROGRESS, ON_HOLD = TaskStatus.READY, TaskStatus.IN_PROGRESS, TaskStatus.ON_HOLD
COMPLETED, CANCELLED, FAILED = TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED
OPEN = OPEN_TASK_STATUSES
TERMINAL = TERMINAL_TASK_STATUSES
STATUSES = OPEN + TERMINAL

TRANSITIONS: dict[str, tuple[str, ...]] = {
    READY: (IN_PROGRESS, ON_HOLD, COMPLETED, CANCELLED, FAILED),
    IN_PROGRESS: (COMPLETED, FAILED, ON_HOLD, CANCELLED),
    ON_HOLD: (READY, IN_PROGRESS, CANCELLED),
    COMPLETED: (),
    CANCELLED: (),
    FAILED: (),
}
ACTIONS: dict[str, str] = {
    "start": IN_PROGRESS, "resume": IN_PROGRESS, "hold": ON_HOLD, "release": READY,
    "complete": COMPLETED, "cancel": CANCELLED, "fail": FAILED, "decline": FAILED,
}
# The history's name for arriving at each status.
_EVENT = {READY: TaskEventAction.RELEASED, IN_PROGRESS: TaskEventAction.STARTED,
          ON_HOLD: TaskEventAction.HELD, COMPLETED: TaskEventAction.COMPLETED,
          CANCELLED: TaskEventAction.CANCELLED, FAILED: TaskEventAction.FAILED}
MAX_TEXT = 500


class TaskError(EngineError):
    """A refused change to a task; its family (engine.core.errors) says how an edge answers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(TaskError, RuleRefused):
    """The lifecycle does not allow this change (or a required text is missing)."""


class Conflict(TaskError, StaleVersion):
    """Someone changed the task since the caller read it (the If-Match check)."""


class Forbidden(TaskError, NotPermitted):
    """The actor's role lacks the permission this change needs."""


def allowed(status: str | None) -> tuple[str, ...]:
    return TRANSITIONS.get(status or READY, ())


def actor_name(actor: Principal | str) -> str:
    return actor.name if isinstance(actor, Principal) else actor


def permit(actor: Principal | str, permission: Permission) -> None:
    if isinstance(actor, Principal) and not actor.can(permission):
        raise Forbidden(f"role {actor.role} may not {permission.value}")


def _check(task: RuleOutput, expected_version: int | None) -> None:
    if task.kind != OutputKind.TASK:
        raise Refused(f"output {task.id} is a {task.kind}, not a task")
    if expected_version is not None and expected_version != task.version:
        raise Conflict(f"task {task.id} is at version {task.version}, not {expected_version}: "
                       "read it again and retry")


def _text(value: str | None) -> str | None:
    value = (value or "").strip()
    return value[:MAX_TEXT] if value else None


def load(session: Session, task_id: int) -> RuleOutput | None:
    """The task with its visit locked, as intake locks it, so rules and people never race."""
    visit = session.execute(
        select(Encounter.visit_system, Encounter.visit_number)
        .join(RuleOutput, RuleOutput.encounter_id == Encounter.id)
        .where(RuleOutput.id == task_id, RuleOutput.kind == OutputKind.TASK)).first()
    if visit is None:
        return None
    lock(session, visit_lock_key(visit[0], visit[1]))
    return session.scalars(select(RuleOutput).where(RuleOutput.id == task_id)
                           .with_for_update()
                           .execution_options(populate_existing=True)).first()


def _touch(task: RuleOutput, now: datetime) -> None:
    task.version += 1
    task.updated_at = now


def transition(session: Session, task: RuleOutput, target: str, actor: Principal | str, *,
               now: datetime, outcome: str | None = None, reason: str | None = None,
               note: str | None = None, expected_version: int | None = None,
               chosen: str | None = None) -> RuleOutput:
    """Move the task to `target` (a status or an action) and record it; the caller then
    re-evaluates the stay (the work layer does not know the rules)."""
    _check(task, expected_version)
    permit(actor, Permission.TASK_WORK)
    target = ACTIONS.get(target, target)
    if target not in STATUSES:
        raise Refused(f"unknown task status or action {target!r}; statuses: "
                      f"{', '.join(STATUSES)}; actions: {', '.join(ACTIONS)}")
    current = task.task_status or READY
    if target not in allowed(current):
        reachable = ", ".join(allowed(current)) or "none: it is closed"
        raise Refused(f"task {task.id} is {current}; it cannot become {target} "
                      f"(allowed: {reachable})")
    outcome, reason = _text(outcome), _text(reason)
    chosen = _chosen(task, target, _text(chosen))
    if chosen is not None and not outcome:  # the choice is what was done
        outcome = f"disposition chosen: {disposition.title_of(task, chosen)}"
    if target == COMPLETED and not outcome:
        raise Refused("completing a task needs an outcome (what was done)")
    if target in (CANCELLED, FAILED) and not reason:
        raise Refused(f"a task becomes {target} only with a reason")
    who = actor_name(actor)
    detail: dict | None = None
    if chosen is not None:
        disposition.choose(session, task, chosen, who, now)
        detail = {"chosen": chosen}
    if target == IN_PROGRESS:
        task.started_at = task.started_at or now
        if task.owner is None and isinstance(actor, Principal) and actor.kind == "user":
            task.owner = who  # starting a queue task claims it
            detail = {"claimed": True}
    task.task_status = target
    task.outcome = outcome if target == COMPLETED else reason
    if target == COMPLETED:
        task.status, task.ended_at, task.end_reason = OutputStatus.COMPLETED, now, None
    elif target in (CANCELLED, FAILED):
        verb = "cancelled" if target == CANCELLED else "declined"
        task.status, task.ended_at = OutputStatus.CANCELLED, now
        task.end_reason = f"{verb} by {who}: {reason}"[:300]
    _touch(task, now)
    record(session, task, _EVENT[TaskStatus(target)], who, now, from_status=current,
           to_status=target,
           text=outcome or reason, detail=detail)
    if _text(note):
        record(session, task, TaskEventAction.NOTE, who, now, text=_text(note))
    return task


def _chosen(task: RuleOutput, target: str, chosen: str | None) -> str | None:
    """The disposition a plan task's completion chooses; refused when missing or unknown,
    or when given for any other step."""
    plan = disposition.is_plan_task(task)
    if chosen is not None and not (plan and target == COMPLETED):
        raise Refused("a chosen disposition is given only when completing the discharge "
                      "plan task")
    if not plan or target != COMPLETED:
        return None
    codes = [c["code"] for c in disposition.options(task)]
    if chosen is None:
        raise Refused(f"completing the discharge plan needs the chosen disposition (one of "
                      f"{', '.join(codes)})")
    if chosen not in codes:
        raise Refused(f"{chosen!r} is not a disposition the rules know (choose one of "
                      f"{', '.join(codes)})")
    return chosen


def add_note(session: Session, task: RuleOutput, text: str, actor: Principal | str, *,
             now: datetime, expected_version: int | None = None) -> TaskEvent:
    """A free-text note on the task (any status: a closed task can still be annotated)."""
    _check(task, expected_version)
    permit(actor, Permission.TASK_WORK)
    body = _text(text)
    if not body:
        raise Refused("a note needs text")
    _touch(task, now)
    return record(session, task, TaskEventAction.NOTE, actor_name(actor), now, text=body)


def reassign(session: Session, task: RuleOutput, owner: str | None, actor: Principal | str, *,
             now: datetime, reason: str | None = None,
             expected_version: int | None = None) -> RuleOutput:
    """Give an open task to `owner` (None: back to its queue); supervisors only."""
    _check(task, expected_version)
    permit(actor, Permission.TASK_ASSIGN)
    if (task.task_status or READY) in TERMINAL:
        raise Refused(f"task {task.id} is {task.task_status}; closed work is not reassigned")
    owner = _text(owner)
    if owner == task.owner:
        return task
    previous, task.owner = task.owner, owner
    _touch(task, now)
    record(session, task, TaskEventAction.ASSIGNED, actor_name(actor), now, text=_text(reason),
           detail={"from": previous, "to": owner})
    return task
