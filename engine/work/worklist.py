"""One person's worklist: who needs me first and why.

Order: stat work first (it means "now", wherever it is due), then overdue, then priority
(asap, urgent, routine), then due time (tasks without one last), then age. Overdue stays
ahead of on-time urgent work: a late IM or MOON is a missed regulatory deadline. Counts:
the whole filtered list, how much of it is overdue and how much is still due later today
(the hospital's local day). Filters narrow the list and the counts alike: unit, task type,
payer class, task status, escalated to whom, overdue only.

The web worklist and the benchmark both call `worklist()`. It reads plain rows (no ORM
objects) in two statements, both served by the (owner, task_status, due_at) index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from engine.core.vocabulary import OutputKind
from engine.storage.models import Encounter, Patient, PatientIdentifier, RuleOutput
from engine.work.lifecycle import OPEN

PRIORITY_RANK = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Filters:
    """What to show. `owner` None with `unassigned` False means everyone's (supervisors)."""

    owner: str | None = None
    unassigned: bool = False  # only tasks waiting in a queue (owner None)
    escalated_to: str | None = None  # only tasks escalated to this supervisor (any owner)
    overdue_only: bool = False
    queue: str | None = None
    unit: str | None = None
    task_type: str | None = None
    payer_class: str | None = None
    statuses: tuple[str, ...] = OPEN


@dataclass(frozen=True, slots=True)
class Item:
    task_id: int
    version: int
    code: str
    title: str | None
    priority: str | None
    task_status: str | None
    due_at: datetime | None
    owner: str | None
    queue: str | None
    escalated_at: datetime | None
    escalated_to: str | None
    rule_id: str
    encounter_id: int
    visit_number: str
    unit: str | None
    room: str | None
    bed: str | None
    care_status: str | None
    payer_class: str | None
    patient_id: int
    family: str | None
    given: str | None
    mrn: str | None
    overdue: bool


@dataclass(frozen=True)
class Worklist:
    items: list[Item]
    total: int
    overdue: int
    due_today: int
    page: int
    page_size: int
    now: datetime
    filters: Filters = field(default_factory=Filters)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _conditions(f: Filters, now: datetime) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [RuleOutput.kind == OutputKind.TASK,
                                        RuleOutput.task_status.in_(f.statuses)]
    if f.unassigned:
        conds.append(RuleOutput.owner.is_(None))
    elif f.owner is not None:
        conds.append(RuleOutput.owner == f.owner)
    if f.escalated_to is not None:
        conds.append(RuleOutput.escalated_to == f.escalated_to)
    if f.overdue_only:
        conds.append(RuleOutput.due_at < now)
    if f.queue is not None:
        conds.append(RuleOutput.queue == f.queue)
    if f.task_type is not None:
        conds.append(RuleOutput.code == f.task_type)
    if f.unit is not None:
        conds.append(Encounter.unit == f.unit)
    if f.payer_class is not None:
        conds.append(Encounter.payer_class == f.payer_class)
    return conds


def _end_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=zone).astimezone(UTC)


def worklist(session: Session, now: datetime, zone: ZoneInfo, filters: Filters = Filters(),
             *, page: int = 1, page_size: int = 50) -> Worklist:
    """A page of the worklist (1-based) with its counts."""
    page, page_size = max(1, page), min(max(1, page_size), MAX_PAGE_SIZE)
    now = now.astimezone(UTC)
    conds = _conditions(filters, now)
    joined = filters.unit is not None or filters.payer_class is not None
    overdue = RuleOutput.due_at < now
    counts = select(func.count(),
                    func.count(case((overdue, 1))),
                    func.count(case(((RuleOutput.due_at >= now)
                                     & (RuleOutput.due_at < _end_of_day(now, zone)), 1))))
    counts = counts.select_from(RuleOutput)
    if joined:
        counts = counts.join(Encounter, Encounter.id == RuleOutput.encounter_id)
    total, late, today = session.execute(counts.where(*conds)).one()
    if total == 0:
        return Worklist([], 0, 0, 0, page, page_size, now, filters)
    mrn = (select(PatientIdentifier.value)
           .where(PatientIdentifier.patient_id == RuleOutput.patient_id,
                  PatientIdentifier.is_mrn.is_(True))
           .order_by(PatientIdentifier.id).limit(1).scalar_subquery())
    rank = case(PRIORITY_RANK, value=RuleOutput.priority, else_=len(PRIORITY_RANK))
    rows = session.execute(
        select(RuleOutput.id, RuleOutput.version, RuleOutput.code, RuleOutput.title,
               RuleOutput.priority, RuleOutput.task_status, RuleOutput.due_at,
               RuleOutput.owner, RuleOutput.queue, RuleOutput.escalated_at,
               RuleOutput.escalated_to, RuleOutput.rule_id,
               Encounter.id, Encounter.visit_number, Encounter.unit, Encounter.room,
               Encounter.bed, Encounter.care_status, Encounter.payer_class,
               Patient.id, Patient.family, Patient.given, mrn)
        .join(Encounter, Encounter.id == RuleOutput.encounter_id)
        .join(Patient, Patient.id == RuleOutput.patient_id)
        .where(*conds)
        .order_by(case((RuleOutput.priority == "stat", 0), (overdue, 1), else_=2), rank,
                  RuleOutput.due_at.is_(None),
                  RuleOutput.due_at, RuleOutput.id)
        .offset((page - 1) * page_size).limit(page_size))
    # The row's columns are Item's fields, in order.
    items = [Item(*row, overdue=row[6] is not None and row[6] < now)  # type: ignore[call-arg]
             for row in rows]
    return Worklist(items, total, late, today, page, page_size, now, filters)
