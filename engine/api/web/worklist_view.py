"""The worklist as a table: the shared query's rows, with what a case manager reads at 7:30.

engine/work/worklist.py decides which tasks and in which order (overdue, priority, due);
this module only adds, for the encounters on the page, what the rows display: length of
stay and midnights, age, active flags and risk scores. Column sorting reorders the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.web import display
from engine.core.vocabulary import OutputKind, OutputStatus, TaskStatus
from engine.storage.models import Encounter, Patient, RuleOutput
from engine.work.worklist import PRIORITY_RANK, Item, Worklist


@dataclass(frozen=True)
class Score:
    text: str
    high: bool


@dataclass
class Row:
    task_id: int
    version: int
    encounter_id: int
    patient: str
    mrn: str | None
    age: int | None
    location: str
    unit: str
    care_status: str | None
    los: str
    los_hours: float
    midnights: int | None
    payer: str | None
    flags: list[str] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    title: str = ""
    task_type: str = ""
    rule_id: str = ""
    priority: str = ""
    due_at: datetime | None = None
    due_text: str = ""
    due_local: str = ""
    overdue: bool = False
    status: str = ""
    owner: str | None = None
    queue: str | None = None
    escalated: bool = False
    escalated_to: str | None = None
    position: int = 0  # the worklist's own order

    @property
    def risk(self) -> tuple[int, int]:
        return (sum(s.high for s in self.scores), len(self.flags))


@dataclass(frozen=True)
class _Stay:
    admit: datetime | None
    discharge: datetime | None
    birth: date | None


def _stays(session: Session, ids: list[int]) -> dict[int, _Stay]:
    rows = session.execute(
        select(Encounter.id, Encounter.admit_time, Encounter.discharge_time,
               Patient.birth_date)
        .join(Patient, Patient.id == Encounter.patient_id).where(Encounter.id.in_(ids)))
    return {r[0]: _Stay(r[1], r[2], r[3]) for r in rows}


def _findings(session: Session, ids: list[int]) -> tuple[dict[int, list[str]],
                                                           dict[int, list[Score]]]:
    flags: dict[int, list[str]] = {}
    scores: dict[int, list[Score]] = {}
    rows = session.execute(
        select(RuleOutput.encounter_id, RuleOutput.kind, RuleOutput.code, RuleOutput.title,
               RuleOutput.value, RuleOutput.detail)
        .where(RuleOutput.encounter_id.in_(ids), RuleOutput.status == OutputStatus.ACTIVE,
               RuleOutput.kind.in_((OutputKind.FLAG, OutputKind.SCORE)))
        .order_by(RuleOutput.encounter_id, RuleOutput.id))
    for enc_id, kind, code, title, value, detail in rows:
        if kind == OutputKind.FLAG:
            flags.setdefault(enc_id, []).append(display.finding(kind, code, title, None, detail))
        elif value is not None:
            high = bool((detail or {}).get("high"))
            scores.setdefault(enc_id, []).append(
                Score(display.finding(kind, code, title, value, detail), high))
    return flags, scores


def _location(item: Item) -> str:
    bed = "-".join(p for p in (item.room, item.bed) if p)
    return " ".join(p for p in (item.unit or "", bed) if p) or "unknown"


def rows(session: Session, worklist: Worklist, zone: ZoneInfo) -> list[Row]:
    """One display row per task of the page, in the worklist's order."""
    ids = sorted({i.encounter_id for i in worklist.items})
    if not ids:
        return []
    stays = _stays(session, ids)
    flags, scores = _findings(session, ids)
    now = worklist.now
    today = now.astimezone(zone).date()
    out = []
    for n, item in enumerate(worklist.items):
        stay = stays.get(item.encounter_id, _Stay(None, None, None))
        end = stay.discharge or now
        out.append(Row(
            task_id=item.task_id, version=item.version, encounter_id=item.encounter_id,
            patient=display.person_name(item.family, item.given), mrn=item.mrn,
            age=display.age(stay.birth, today), location=_location(item),
            unit=item.unit or "", care_status=item.care_status,
            los=display.length_of_stay(stay.admit, end),
            los_hours=(end - stay.admit).total_seconds() / 3600 if stay.admit else -1,
            midnights=display.midnights(stay.admit, end, zone), payer=item.payer_class,
            flags=flags.get(item.encounter_id, []), scores=scores.get(item.encounter_id, []),
            title=item.title or display.words(item.code), task_type=item.code,
            rule_id=item.rule_id, priority=item.priority or "routine", due_at=item.due_at,
            due_text=display.due_text(item.due_at, now, zone),
            due_local=display.local(item.due_at, zone), overdue=item.overdue,
            status=item.task_status or TaskStatus.READY, owner=item.owner, queue=item.queue,
            escalated=item.escalated_at is not None, escalated_to=item.escalated_to,
            position=n))
    return out


SORTS = {
    "patient": lambda r: r.patient,
    "location": lambda r: (r.location, r.position),
    "los": lambda r: (r.los_hours, r.position),
    "payer": lambda r: (r.payer or "", r.position),
    "risk": lambda r: (r.risk, r.position),
    "task": lambda r: (r.title, r.position),
    "due": lambda r: (r.due_at is None, r.due_at.timestamp() if r.due_at else 0, r.position),
    "priority": lambda r: (PRIORITY_RANK.get(r.priority, 9), r.position),
    "status": lambda r: (r.status, r.position),
}


def sort(table: list[Row], key: str | None, descending: bool) -> list[Row]:
    """Reorder by a column; no key keeps the worklist's own order."""
    if key not in SORTS:
        return table
    return sorted(table, key=SORTS[key], reverse=descending)
