"""The task lifecycle: which status may follow which, what each step must record, and the
one path for people's changes (change -> re-evaluate the encounter -> the caller commits).

Statuses are FHIR Task.status values, kept in `RuleOutput.task_status`:

    ready       -> in-progress (start) | on-hold (hold) | completed (complete)
                   | cancelled (cancel) | failed (fail) | rejected (decline)
    in-progress -> completed | failed | on-hold | cancelled | rejected
    on-hold     -> ready (release) | in-progress (resume) | cancelled | rejected
    completed, cancelled, failed, rejected: terminal, never reopened

`ready -> completed` is allowed because much of the work is done in one sitting (an IM
delivered at the bedside) and forcing a "start" first only adds a click. A completion needs
an `outcome`; a cancel or a failure needs a `reason`; a hold may give one. A decline
("this does not apply") needs a `reason_code` from engine.core.declines (`reason` adds
words; "other" needs them) and is a decision (engine.work.decisions): the rule does not
raise that work again for the stay until a fact it rests on changes.

The rule engine's view (`RuleOutput.status`) follows: completed -> "completed" (the fact
family `completed_task_types` sees it, and the rule never raises it again); cancelled or
failed or declined by a person -> "cancelled" with `end_reason` "<cancelled|failed|declined>
by <who>: <why>". A rule whose conditions still hold raises cancelled or failed work again as
a new task (the rules, not a person, decide what is owed); completed work stays done, and
declined work stays declined while the decision holds.

Role and order: a person starts or completes only work of their own role (the role the
staffing file maps the task's queue to) unless they are a supervisor; systems (the EHR's
client, the engine) are not people and are not asked. Starting a task another person owns
takes it: the owner becomes the starter, and the history says from whom. A task whose rule
says it comes `after` other task types (the follow-up IM after the first IM) cannot be
completed while one of those is still open on the stay.

API (stable: the web worklist and the FHIR API call these inside their own transaction,
then commit; every function raises a `TaskError` subclass and changes nothing on refusal):

    load(session, task_id) -> RuleOutput | None
        the task, locked for change (the visit's advisory lock on PostgreSQL, then the row)
    transition(session, task, target, actor, *, now, outcome=None, reason=None, note=None,
               expected_version=None, staffing=EMPTY, reason_code=None, by_display=None,
               chosen=None) -> RuleOutput
        `target` is a status ("in-progress") or an action ("start"); `actor` a Principal
        (needs task:work) or a system name such as "engine"; the caller re-evaluates the
        stay after it (engine.planning.evaluation.after_work), in the same transaction.
        `chosen`: completing the discharge-plan task needs the chosen disposition (a
        transition code such as "snf"); it closes the other proposals
        (engine.work.disposition)
    add_note(session, task, text, actor, *, now, expected_version=None) -> TaskEvent
    reassign(session, task, owner, actor, *, now, reason=None, expected_version=None,
             staffing=EMPTY)
        -> RuleOutput    (needs task:assign; owner None puts the task back in its queue;
                          an owner of the staffing file must be of the task's role)
    allowed(status) -> tuple[str, ...]      the statuses reachable from `status`
    engine.work.history.history(session, task_id) -> list[TaskEvent]

Every change bumps `RuleOutput.version` (the FHIR versionId and ETag) and `updated_at`, and
appends a TaskEvent (who, when, from which status to which, the text given).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core import errors
from engine.core.declines import OTHER, reason_words
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
from engine.work import decisions, disposition
from engine.work.history import record
from engine.work.staffing import EMPTY, Staffing
from engine.work.ur_record import reviews

READY, IN_PROGRESS, ON_HOLD = TaskStatus.READY, TaskStatus.IN_PROGRESS, TaskStatus.ON_HOLD
COMPLETED, CANCELLED, FAILED = TaskStatus.COMPLETED, TaskStatus.CANCELLED, TaskStatus.FAILED
REJECTED = TaskStatus.REJECTED
OPEN = OPEN_TASK_STATUSES
TERMINAL = TERMINAL_TASK_STATUSES
STATUSES = OPEN + TERMINAL

TRANSITIONS: dict[str, tuple[str, ...]] = {
    READY: (IN_PROGRESS, ON_HOLD, COMPLETED, CANCELLED, FAILED, REJECTED),
    IN_PROGRESS: (COMPLETED, FAILED, ON_HOLD, CANCELLED, REJECTED),
    ON_HOLD: (READY, IN_PROGRESS, CANCELLED, REJECTED),
    COMPLETED: (),
    CANCELLED: (),
    FAILED: (),
    REJECTED: (),
}
ACTIONS: dict[str, str] = {
    "start": IN_PROGRESS, "resume": IN_PROGRESS, "hold": ON_HOLD, "release": READY,
    "complete": COMPLETED, "cancel": CANCELLED, "fail": FAILED, "decline": REJECTED,
}
# The history's name for arriving at each status.
_EVENT = {READY: TaskEventAction.RELEASED, IN_PROGRESS: TaskEventAction.STARTED,
          ON_HOLD: TaskEventAction.HELD, COMPLETED: TaskEventAction.COMPLETED,
          CANCELLED: TaskEventAction.CANCELLED, FAILED: TaskEventAction.FAILED,
          REJECTED: TaskEventAction.DECLINED}
_VERB: dict[str, str] = {CANCELLED: "cancelled", FAILED: "failed", REJECTED: "declined"}
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


class OutOfOrder(TaskError, errors.Conflict):
    """The task waits for other work on the stay that is still open."""


_ROLE_SAID = {"case_manager": "a case manager", "ur_nurse": "a UR nurse",
              "supervisor": "a supervisor"}


# The steps only the task's role (or a supervisor) may take: doing the work, or deciding
# that it does not apply.
_WORKED: dict[str, str] = {IN_PROGRESS: "start", COMPLETED: "complete", REJECTED: "decline"}


def _may_work(task: RuleOutput, actor: Principal | str, staffing: Staffing, verb: str) -> None:
    """People work their own role's tasks (supervisors any); systems are not asked."""
    may_work_queue(task.queue, task.title or task.code, actor, staffing, verb)


def may_work_queue(queue: str | None, what: str, actor: Principal | str, staffing: Staffing,
                   verb: str) -> None:
    """Refuse a person whose role does not work `queue` (the check behind _may_work, also
    for work that is not a task, such as declining a proposal)."""
    if not isinstance(actor, Principal) or actor.kind != "user":
        return
    if staffing.may_work(actor.role, queue):
        return
    wanted = staffing.role_for_queue(queue) or ""
    raise Forbidden(f"{what} is work for {_ROLE_SAID.get(wanted, wanted)}; "
                    f"{_ROLE_SAID.get(actor.role, actor.role)} may not {verb} it (ask its "
                    "owner or a supervisor)")


def _awaited(session: Session, task: RuleOutput) -> None:
    """Refuse completing a task while a task type it comes after is open on the stay."""
    after = (task.detail or {}).get("after") or []
    if not after:
        return
    waiting = session.execute(
        select(RuleOutput.title, RuleOutput.code, RuleOutput.task_status)
        .where(RuleOutput.encounter_id == task.encounter_id, RuleOutput.kind == OutputKind.TASK,
               RuleOutput.status == OutputStatus.ACTIVE, RuleOutput.code.in_(after),
               RuleOutput.task_status.in_(OPEN), RuleOutput.id != task.id)
        .order_by(RuleOutput.id)).first()
    if waiting is not None:
        title, code, status = waiting
        raise OutOfOrder(f"{task.title or task.code} comes after {title or code}, which is "
                         f"still {status or READY}: complete that first")


# What each kind of required record is called in a refusal.
_RECORDS = {"utilization_review": "a utilization review"}


def _documented(session: Session, task: RuleOutput) -> None:
    """Refuse completing a task whose rule requires a record (a review task needs the
    review) until the stay's UR record holds it."""
    needed = (task.detail or {}).get("requires_record")
    if needed != "utilization_review":
        return
    if not reviews.documents_task(session, task.id, task.encounter_id, task.fired_at):
        raise Refused(f"{task.title or task.code} is completed by recording "
                      f"{_RECORDS[needed]} on the stay (review date, level of care, criteria "
                      "result, next review): record the review, then complete the task")
    reviews.claim(session, task.id, task.encounter_id, task.fired_at)


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
               staffing: Staffing = EMPTY, reason_code: str | None = None,
               by_display: str | None = None, chosen: str | None = None) -> RuleOutput:
    """Move the task to `target` (a status or an action) and record it; the caller then
    re-evaluates the stay (the work layer does not know the rules). `staffing` says which
    role works the task's queue (the engine's file; EMPTY knows the two default queues). A
    decline records the decision; `by_display` is the person's name as the timeline shows it."""
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
    if target in _WORKED:  # whose work it is, before what was typed
        _may_work(task, actor, staffing, _WORKED[target])
    outcome, reason = _text(outcome), _text(reason)
    chosen = _chosen(task, target, _text(chosen))
    if chosen is not None and not outcome:  # the choice is what was done
        outcome = f"disposition chosen: {disposition.title_of(task, chosen)}"
    if target == COMPLETED and not outcome:
        raise Refused("completing a task needs an outcome (what was done)")
    if target in (CANCELLED, FAILED) and not reason:
        raise Refused(f"a task becomes {target} only with a reason")
    if target == COMPLETED:
        _awaited(session, task)
        _documented(session, task)
    words = reason  # a decline's own words, beside its coded reason
    if target == REJECTED:
        reason_code = (reason_code or "").strip() or (OTHER if reason else None)
        problem = decisions.reason_problem(reason_code, reason)
        if problem:
            raise Refused(problem)
        assert reason_code is not None  # reason_problem refuses a missing code
        words, reason = reason, reason_words(reason_code, reason)
    who = actor_name(actor)
    detail: dict | None = None
    if chosen is not None:
        disposition.choose(session, task, chosen, who, now)
        detail = {"chosen": chosen}
    if target == IN_PROGRESS:
        task.started_at = task.started_at or now
        if task.owner != who and isinstance(actor, Principal) and actor.kind == "user":
            # starting a queue task claims it; starting someone else's takes it
            detail = {"claimed": True} if task.owner is None else {"claimed": True,
                                                                    "from": task.owner}
            task.owner = who
    task.task_status = target
    task.outcome = outcome if target == COMPLETED else reason
    if target == COMPLETED:
        task.status, task.ended_at, task.end_reason = OutputStatus.COMPLETED, now, None
    elif target in (CANCELLED, FAILED, REJECTED):
        task.status, task.ended_at = OutputStatus.CANCELLED, now
        task.end_reason = f"{_VERB[target]} by {by_display or who}: {reason}"[:300]
    if target == REJECTED:
        assert reason_code is not None
        decisions.record(session, task, who, now, code=reason_code, text=words,
                         by_display=by_display)
        task.detail = {**(task.detail or {}), "decline": {"code": reason_code, "text": words}}
        detail = {"reason": reason_code, "by": by_display or who}
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
             expected_version: int | None = None, staffing: Staffing = EMPTY) -> RuleOutput:
    """Give an open task to `owner` (None: back to its queue); supervisors only. A person of
    the staffing file must be of the task's role (or a supervisor)."""
    _check(task, expected_version)
    permit(actor, Permission.TASK_ASSIGN)
    if (task.task_status or READY) in TERMINAL:
        raise Refused(f"task {task.id} is {task.task_status}; closed work is not reassigned")
    owner = _text(owner)
    if owner == task.owner:
        return task
    person = staffing.person(owner)
    if person is not None and not staffing.may_work(person.role, task.queue):
        wanted = staffing.role_for_queue(task.queue) or ""
        raise Refused(f"{person.display or person.name} is {_ROLE_SAID.get(person.role)}; "
                      f"{task.title or task.code} is work for {_ROLE_SAID.get(wanted, wanted)}")
    previous, task.owner = task.owner, owner
    _touch(task, now)
    record(session, task, TaskEventAction.ASSIGNED, actor_name(actor), now, text=_text(reason),
           detail={"from": previous, "to": owner})
    return task
