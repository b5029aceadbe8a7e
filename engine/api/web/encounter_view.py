"""Everything the encounter page shows, read in one session: header, work, timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.web import display
from engine.api.web.explanation import Explanation, explain_output, raised_by
from engine.core.vocabulary import (
    OPEN_TASK_STATUSES,
    OutputKind,
    OutputStatus,
    TaskEventAction,
    TaskStatus,
)
from engine.rules.compile import Book
from engine.rules.reconsider import covers, holds_while
from engine.storage.models import (
    CaseAssignment,
    Decision,
    Encounter,
    EncounterEvent,
    PatientIdentifier,
    RuleOutput,
    TaskEvent,
)
from engine.work import decisions

OPEN_TASK = (*OPEN_TASK_STATUSES, None)


@dataclass
class Header:
    encounter_id: int
    patient_id: int
    name: str
    mrn: str
    visit: str
    age: int | None
    sex: str
    location: str
    status: str
    care_status: str
    admitted: str
    length_of_stay: str
    midnights: int | None
    payer: str
    attending: str
    drg: str
    expected_discharge: str
    assigned: list[tuple[str, str]]  # (role, user name)


@dataclass
class OutputView:
    output: RuleOutput
    explanation: Explanation
    due: str = ""
    overdue: bool = False
    history: list[TaskEvent] = field(default_factory=list)

    @property
    def is_open_task(self) -> bool:
        o = self.output
        return (o.kind == OutputKind.TASK and o.status == OutputStatus.ACTIVE
                and o.task_status in OPEN_TASK)


@dataclass(frozen=True)
class Moment:
    """One line of the timeline."""

    at: datetime
    when: str
    kind: str  # adt | flag | score | proposal | task | work
    text: str
    anchor: str | None = None  # the output card this line belongs to


@dataclass
class EncounterPage:
    header: Header
    tasks: list[OutputView]
    findings: list[OutputView]  # flags, scores, proposals
    timeline: list[Moment]


def _location(enc: Encounter) -> str:
    place = enc.unit or ""
    bed = "-".join(p for p in (enc.room, enc.bed) if p)
    return f"{place} {bed}".strip() or "unknown"


def _header(session: Session, enc: Encounter, now: datetime, zone: ZoneInfo) -> Header:
    patient = enc.patient
    mrn = session.scalar(select(PatientIdentifier.value).where(
        PatientIdentifier.patient_id == patient.id, PatientIdentifier.is_mrn.is_(True)))
    end = enc.discharge_time or now
    assigned = [(display.words(a.role), a.user_name) for a in session.scalars(
        select(CaseAssignment).where(CaseAssignment.encounter_id == enc.id)
        .order_by(CaseAssignment.role))]
    payer = " ".join(p for p in (enc.payer_name or enc.payer_plan or "",
                                 f"({display.words(enc.payer_class)})"
                                 if enc.payer_class else "") if p)
    return Header(
        encounter_id=enc.id, patient_id=patient.id,
        name=display.person_name(patient.family, patient.given), mrn=mrn or "",
        visit=enc.visit_number, age=display.age(patient.birth_date, now.astimezone(zone).date()),
        sex=patient.sex or "", location=_location(enc), status=enc.status,
        care_status=display.words(enc.care_status) or "unknown",
        admitted=display.local(enc.admit_time, zone),
        length_of_stay=display.length_of_stay(enc.admit_time, end),
        midnights=display.midnights(enc.admit_time, end, zone),
        payer=payer or "none on file", attending=enc.attending_name or "",
        drg=" ".join(p for p in (enc.working_drg or "", enc.working_drg_text or "") if p),
        expected_discharge=enc.expected_discharge_date.strftime("%a %d %b")
        if enc.expected_discharge_date else "", assigned=assigned,
    )


def load(session: Session, encounter_id: int, book: Book | None, now: datetime,
         zone: ZoneInfo, name: Callable[[str], str] = str) -> EncounterPage | None:
    """The page's content; `name` turns a login into the name people know (the timeline)."""
    enc = session.get(Encounter, encounter_id)
    if enc is None:
        return None
    outputs = list(session.scalars(select(RuleOutput).where(
        RuleOutput.encounter_id == enc.id).order_by(RuleOutput.fired_at, RuleOutput.id)))
    history: dict[int, list[TaskEvent]] = {}
    if outputs:
        for ev in session.scalars(select(TaskEvent).where(
                TaskEvent.output_id.in_([o.id for o in outputs]))
                .order_by(TaskEvent.at, TaskEvent.id)):
            history.setdefault(ev.output_id, []).append(ev)
    diagnoses = [(d.code, d.diagnosis_type) for d in enc.diagnoses]
    raised = raised_by(outputs)
    decided = list(session.scalars(select(Decision).where(Decision.encounter_id == enc.id)
                                   .order_by(Decision.id)))
    views = []
    for o in outputs:
        view = OutputView(o, explain_output(o, book, diagnoses, raised,
                                            _decision(o, decided, book, zone)),
                          history=history.get(o.id, []))
        if o.kind == OutputKind.TASK and o.due_at is not None:
            if view.is_open_task:
                view.due = display.due_text(o.due_at, now, zone)
                view.overdue = o.due_at <= now
            else:
                view.due = f"was due {display.local(o.due_at, zone)}"
        views.append(view)
    tasks = [v for v in views if v.output.kind == OutputKind.TASK]
    tasks.sort(key=lambda v: (not v.is_open_task, v.output.priority != "stat", not v.overdue,
                              v.output.due_at or now))
    findings = [v for v in views if v.output.kind != OutputKind.TASK and (
        v.output.status == OutputStatus.ACTIVE or _chosen(v.output))]
    # the discharge plan in its order: the chosen or primary disposition first
    findings.sort(key=lambda v: (v.output.kind == OutputKind.PROPOSAL,
                                 0 if _chosen(v.output) else 1,
                                 (v.output.detail or {}).get("plan_rank") or 1000))
    return EncounterPage(_header(session, enc, now, zone), tasks, findings,
                         _timeline(session, enc, views, zone, name))


def _decision(o: RuleOutput, decided: list[Decision], book: Book | None,
              zone: ZoneInfo) -> str | None:
    """The latest decision about this output's work, as its explanation says it."""
    rule = None
    if book is not None:
        rule = next((r for r in book.rules if r.id == o.rule_id), None)
    base = o.key.partition("#")[0]
    for d in reversed(decided):
        declined = d.output_key.partition("#")[0]
        if d.rule_id != o.rule_id or not (
                declined == base if rule is None else covers(rule, declined, base)):
            continue
        return decisions.describe(d, zone, holds_while(rule) if rule is not None else ())
    return None


def actor(step: TaskEvent, name: Callable[[str], str]) -> str:
    """Who took a step, by the name the history recorded for them (a decline keeps the
    person's display name), else the staffing file's name for the user."""
    return str((step.detail or {}).get("by") or name(step.actor))


def _chosen(o: RuleOutput) -> bool:
    """A proposal a case manager chose as the disposition (engine.work.disposition)."""
    return (o.kind == OutputKind.PROPOSAL and o.status == OutputStatus.COMPLETED
            and bool((o.detail or {}).get("chosen")))


def _timeline(session: Session, enc: Encounter, views: list[OutputView],
              zone: ZoneInfo, name: Callable[[str], str]) -> list[Moment]:
    moments: list[Moment] = []

    def add(at: datetime, kind: str, text: str, anchor: str | None = None) -> None:
        moments.append(Moment(at, display.local(at, zone), kind, text, anchor))

    for ev in session.scalars(select(EncounterEvent).where(
            EncounterEvent.encounter_id == enc.id).order_by(EncounterEvent.event_time)):
        late = " (arrived late)" if ev.late else ""
        add(ev.event_time, "adt", f"{ev.trigger} {ev.summary or ''}".strip() + late)
    for v in views:
        o = v.output
        anchor = f"output-{o.id}"
        add(o.fired_at, o.kind, f"{display.words(o.kind)} raised: {o.title or o.code} "
                                f"(rule {o.rule_id})", anchor)
        for step in v.history:
            if step.action == TaskEventAction.CREATED:
                continue
            said = f": {display.localized(step.text, zone)}" if step.text else ""
            add(step.at, "work", f"{o.title or o.code}: {step.action} by {actor(step, name)}{said}",
                anchor)
        if _chosen(o) and o.ended_at is not None:
            add(o.ended_at, o.kind, f"disposition chosen: {o.title or o.code}", anchor)
        if o.task_status == TaskStatus.REJECTED:
            continue  # its "declined by" step says it
        if o.status == OutputStatus.CANCELLED and o.ended_at is not None:
            verb = "declined" if (o.detail or {}).get("decline") else "withdrawn"
            add(o.ended_at, o.kind, f"{display.words(o.kind)} {verb}: {o.title or o.code}"
                                    f" ({o.end_reason or 'no reason'})", anchor)
    moments.sort(key=lambda m: m.at)
    return moments
