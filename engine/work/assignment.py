"""Who does a new task: the stay's case manager or UR nurse, chosen once and kept.

A task's rule queue names a role (staffing `queues`). The encounter's CaseAssignment for
that role wins, so a patient keeps the same case manager across transfers until a
supervisor reassigns. Otherwise the people of that role who cover the stay's unit, service
and payer class are candidates; the most specific match wins, then the lightest caseload
(open encounters assigned), then the name. No candidate: the task waits in its queue
(owner None) for whoever picks it up. A queue worked by supervisors (an overdue MOON's
escalation) goes to the supervisor of the stay's case manager (else of its UR nurse, else
the file's default supervisor): the person who answers for that team's deadlines.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from engine.core.roles import Permission, Principal
from engine.core.vocabulary import OPEN_ENCOUNTER_STATUSES, OutputKind, OutputStatus
from engine.storage.models import CaseAssignment, Encounter, RuleOutput
from engine.work import lifecycle
from engine.work.history import ENGINE
from engine.work.staffing import WORKING_ROLES, Staffing

# Driven from the open stays (the census, bounded by beds) to their assignments, never from
# a person's assignments: those grow with every stay ever held, and a query that walked them
# made each new task slower as the months went by.
_CASELOADS = (select(CaseAssignment.user_name, func.count())
              .select_from(Encounter)
              .join(CaseAssignment, (CaseAssignment.encounter_id == Encounter.id)
                    & (CaseAssignment.role == bindparam("role")))
              .where(Encounter.status.in_(OPEN_ENCOUNTER_STATUSES))
              .group_by(CaseAssignment.user_name))


def caseloads(session: Session, role: str, names: list[str] | None = None) -> dict[str, int]:
    """User name -> open encounters assigned in `role` (all people, or just `names`)."""
    loads = {name: count for name, count in session.execute(_CASELOADS, {"role": role})}
    return loads if names is None else {n: c for n, c in loads.items() if n in names}


def assignee(session: Session, enc: Encounter, role: str, staffing: Staffing) -> str | None:
    """The person who should hold this stay in `role`, or None for the queue."""
    ranked = []
    for person in staffing.people:
        if person.role != role:
            continue
        fit = person.covers(enc.unit, enc.hospital_service, enc.payer_class)
        if fit is not None:
            ranked.append((fit, person.name))
    if not ranked:
        return None
    best = max(fit for fit, _ in ranked)
    names = sorted(name for fit, name in ranked if fit == best)
    load = caseloads(session, role, names)
    return min(names, key=lambda n: (load.get(n, 0), n))


def case_owner(session: Session, enc: Encounter, role: str, now: datetime,
               staffing: Staffing) -> str | None:
    """The stay's person in `role`: kept if assigned before, else chosen and recorded."""
    if any(isinstance(obj, CaseAssignment) and obj.role == role for obj in session.new):
        session.flush()  # this transaction's earlier choices count in caseloads and below
    held = None if enc.id is None else session.scalars(select(CaseAssignment).where(
        CaseAssignment.encounter_id == enc.id, CaseAssignment.role == role)).first()
    if held is not None and (not staffing.people or staffing.person(held.user_name)):
        return held.user_name
    name = assignee(session, enc, role, staffing)
    if name is None:
        return None
    if held is None:
        session.add(CaseAssignment(encounter=enc, role=role, user_name=name,
                                   assigned_at=now, assigned_by=ENGINE))
    else:  # the person left the staffing file: the stay passes to a colleague
        held.user_name, held.assigned_at, held.assigned_by = name, now, ENGINE
        session.flush()  # rare; later caseloads in this transaction must see the move
    return name


def _held(session: Session, enc: Encounter, role: str) -> str | None:
    """Who holds the stay in `role` already (this transaction's choices included)."""
    if enc.id is None:
        return next((obj.user_name for obj in session.new if isinstance(obj, CaseAssignment)
                     and obj.encounter is enc and obj.role == role), None)
    session.flush()
    return session.scalars(select(CaseAssignment.user_name).where(
        CaseAssignment.encounter_id == enc.id, CaseAssignment.role == role)).first()


def stay_supervisor(session: Session, enc: Encounter, staffing: Staffing) -> str | None:
    """The supervisor of the stay's case manager, else of its UR nurse, else the default."""
    for role in WORKING_ROLES:
        held = _held(session, enc, role)
        if held is not None:
            return staffing.supervisor_of(held)
    return staffing.supervisor


def assign_new(session: Session, enc: Encounter, tasks: list[RuleOutput], now: datetime,
               staffing: Staffing) -> None:
    """Set the owner of tasks the rules just raised (the encounter may not be flushed yet)."""
    chosen: dict[str, str | None] = {}
    for task in sorted(tasks, key=lambda t: staffing.role_for_queue(t.queue) == "supervisor"):
        role = staffing.role_for_queue(task.queue)
        if role is not None and role not in chosen:
            chosen[role] = (stay_supervisor(session, enc, staffing) if role == "supervisor"
                            else case_owner(session, enc, role, now, staffing))
        task.owner = chosen.get(role) if role is not None else None


def reassign_case(session: Session, enc: Encounter, role: str, user_name: str,
                  actor: Principal | str, *, now: datetime, reason: str | None = None,
                  staffing: Staffing) -> list[RuleOutput]:
    """A supervisor gives the stay to another person: the assignment and its open tasks move.

    Returns the tasks that moved. Raises lifecycle.Forbidden without task:assign.
    """
    lifecycle.permit(actor, Permission.TASK_ASSIGN)
    moved: list[RuleOutput] = []
    tasks = session.scalars(select(RuleOutput).where(
        RuleOutput.encounter_id == enc.id, RuleOutput.kind == OutputKind.TASK,
        RuleOutput.status == OutputStatus.ACTIVE).order_by(RuleOutput.id))
    for task in tasks:
        if staffing.role_for_queue(task.queue) == role and task.owner != user_name:
            moved.append(lifecycle.reassign(session, task, user_name, actor, now=now,
                                            reason=reason, staffing=staffing))
    held = session.scalars(select(CaseAssignment).where(
        CaseAssignment.encounter_id == enc.id, CaseAssignment.role == role)).first()
    who = lifecycle.actor_name(actor)
    if held is None:
        session.add(CaseAssignment(encounter_id=enc.id, role=role, user_name=user_name,
                                   assigned_at=now, assigned_by=who))
    else:
        held.user_name, held.assigned_at, held.assigned_by = user_name, now, who
    return moved
