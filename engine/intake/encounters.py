"""Applying ADT events to encounter state, in event time, with cancels that undo.

Order tolerance: a message older than the state it would overwrite only fills gaps and
adds its history at the right place; cancels (A11, A12, A13, A25) always apply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from engine.core.events import PATIENT_ONLY, RESULTS, AdtEvent, DiagnosisData, EventError, VisitData
from engine.core.vocabulary import EncounterStatus
from engine.intake import labs, patients, timeline
from engine.storage import locks
from engine.storage.models import (
    Diagnosis,
    Encounter,
    EncounterEvent,
    InboundMessage,
    LocationStay,
    Patient,
    StatusPeriod,
)

# Snapshot fields copied from the visit when sent (None means "not sent").
_VISIT_FIELDS = (
    "patient_class",
    "patient_type",
    "attending_id",
    "attending_name",
    "hospital_service",
    "admission_type",
    "admit_source",
    "expected_discharge_date",
)
_CLEARABLE = frozenset(_VISIT_FIELDS) | {"discharge_disposition"}
# Triggers that do not describe where the patient is now.
_NO_MOVE = frozenset({"A11", "A12", "A13", "A25", "A16", "A21"})
_STATUS_BY_TRIGGER = {
    "A01": EncounterStatus.IN_PROGRESS,
    "A02": EncounterStatus.IN_PROGRESS,
    "A04": EncounterStatus.IN_PROGRESS,
    "A06": EncounterStatus.IN_PROGRESS,
    "A07": EncounterStatus.IN_PROGRESS,
    "A22": EncounterStatus.IN_PROGRESS,
    "A05": EncounterStatus.PLANNED,
    "A14": EncounterStatus.PLANNED,
    "A21": EncounterStatus.ONLEAVE,
}


@dataclass
class Applied:
    patient: Patient
    encounter: Encounter | None
    summary: str


def _same_place(a: LocationStay, b: LocationStay) -> bool:
    return (a.unit, a.room, a.bed) == (b.unit, b.room, b.bed)


def _same_status(a: StatusPeriod, b: StatusPeriod) -> bool:
    return a.care_status == b.care_status


def lock_names(event: AdtEvent) -> list[str]:
    """The MRNs and the visit an event touches: what must not change under it concurrently."""
    mrns = [event.patient.mrn] if event.patient.mrn else []
    names = [f"id:{i.system}|{i.value}" for i in (mrns + event.prior_patient)]
    if event.visit and event.visit.visit_number:
        vn = event.visit.visit_number
        names.append(locks.visit_lock_key(vn.system, vn.value))
    return names


def apply(
    session: Session, event: AdtEvent, now: datetime, message: InboundMessage | None
) -> Applied:
    """Apply one event inside the caller's transaction; raise EventError to refuse it."""
    locks.lock(session, *lock_names(event))
    patient = patients.upsert(session, event.patient, event.event_time, now)
    if event.trigger == RESULTS:
        found, summary = labs.record(session, patient, event, now, message)
        return Applied(patient, found, summary)
    if event.trigger == "A40":
        merged = patients.merge(
            session, patient, event.prior_patient, event.event_time, now,
            message.id if message is not None else None,
        )
        return Applied(patient, None, f"merged {len(merged)} patient record(s)")
    if event.trigger in PATIENT_ONLY or event.visit is None:
        return Applied(patient, None, "patient updated")
    encounter = _find_or_create(session, patient, event.visit, event, now)
    late = bool(encounter.as_of and event.event_time < encounter.as_of)
    summary = _apply_visit(session, encounter, event, now)
    session.add(
        EncounterEvent(
            encounter=encounter,
            message=message,
            trigger=event.trigger,
            event_time=event.event_time,
            late=late,
            summary=summary[:300],
        )
    )
    if not late:
        encounter.as_of = event.event_time
    if event.labs:
        labs.record(session, patient, event, now, message, encounter)
    encounter.version += 1
    encounter.updated_at = now
    return Applied(patient, encounter, summary)


# Built once: every visit message asks it.
_BY_VISIT = select(Encounter).where(Encounter.visit_system == bindparam("system"),
                                    Encounter.visit_number == bindparam("value"))


def _find_or_create(
    session: Session, patient: Patient, visit: VisitData, event: AdtEvent, now: datetime
) -> Encounter:
    vn = visit.visit_number
    assert vn is not None
    enc = session.scalars(_BY_VISIT, {"system": vn.system, "value": vn.value}).first()
    if enc is None:
        enc = Encounter(
            patient=patient,
            visit_system=vn.system,
            visit_number=vn.value,
            status=_STATUS_BY_TRIGGER.get(event.trigger,
                                          visit.status or EncounterStatus.IN_PROGRESS),
            version=0,
            updated_at=now,
        )
        session.add(enc)
        return enc
    if patient.id is None or enc.patient_id != patient.id:
        owner = session.get(Patient, enc.patient_id)
        if owner is None or patient.id is None or owner.merged_into_id != patient.id:
            raise EventError(
                f"visit {vn.value} belongs to another patient; send A40/A45 to move it first"
            )
        enc.patient_id = patient.id
    return enc


def _apply_visit(session: Session, enc: Encounter, event: AdtEvent, now: datetime) -> str:
    visit = event.visit
    assert visit is not None
    trigger = event.trigger
    when = event.event_time
    late = enc.as_of is not None and when < enc.as_of
    notes: list[str] = []

    def put(name: str, value) -> None:
        if value is None:
            return
        current = getattr(enc, name)
        if current != value and (not late or current is None):
            setattr(enc, name, value)

    for name in _VISIT_FIELDS:
        put(name, getattr(visit, name))
    if not late:
        for name in visit.cleared & _CLEARABLE:
            setattr(enc, name, None)
    put("admit_time", visit.admit_time)
    if enc.admit_time is None and trigger in ("A01", "A04", "A06"):
        enc.admit_time = when
    if event.coverage is not None:
        put("payer_plan", event.coverage.plan_code)
        put("payer_name", event.coverage.payer_name)
        put("payer_class", event.coverage.payer_class)
        put("authorization", event.coverage.authorization)
    if event.drg is not None:
        put("working_drg", event.drg[0])
        put("working_drg_text", event.drg[1])
    if event.diagnoses is not None:
        digest = _digest(event.diagnoses)
        if digest != enc.diagnoses_digest and (not late or enc.diagnoses_digest is None):
            _replace_diagnoses(session, enc, event.diagnoses)
            enc.diagnoses_digest = digest

    if trigger == "A11":
        enc.status = EncounterStatus.CANCELLED
        notes.append("admission/visit cancelled")
    elif trigger == "A12":
        notes.append(_cancel_transfer(enc))
    elif trigger == "A13":
        if enc.status == EncounterStatus.FINISHED:
            timeline.reopen(enc.locations, enc.discharge_time)
            timeline.reopen(enc.status_periods, enc.discharge_time)
            enc.status = EncounterStatus.IN_PROGRESS
            enc.discharge_time = None
            enc.discharge_disposition = None
            notes.append("discharge cancelled")
        else:
            notes.append("discharge cancel: no discharge on file")
    elif trigger == "A25":
        enc.pending_discharge_time = None
        notes.append("pending discharge cancelled")
    elif trigger == "A16":
        put("pending_discharge_time", when)
        notes.append("pending discharge")
    elif not late:
        status = (EncounterStatus.FINISHED if trigger == "A03"
                  else visit.status or _STATUS_BY_TRIGGER.get(trigger))
        if status:
            enc.status = status

    touched = trigger in ("A12", "A13")
    if trigger not in _NO_MOVE:
        start = visit.admit_time if trigger in ("A01", "A04") and visit.admit_time else when
        if enc.id is None and enc.admit_time:
            start = min(start, enc.admit_time)
        loc = visit.location
        if loc is not None and (late or (loc.unit, loc.room, loc.bed) != (enc.unit, enc.room,
                                                                           enc.bed)):
            stay = LocationStay(unit=loc.unit, room=loc.room, bed=loc.bed,
                                facility=loc.facility, start=start, cancelled=False)
            touched = True
            if timeline.place(enc.locations, stay, _same_place):
                enc.locations.append(stay)
                if trigger == "A02":
                    notes.append(f"transfer to {loc.unit or '?'}")
        if visit.care_status is not None and (late or visit.care_status != enc.care_status):
            period = StatusPeriod(care_status=visit.care_status, start=start, cancelled=False)
            touched = True
            if timeline.place(enc.status_periods, period, _same_status):
                enc.status_periods.append(period)
                notes.append(f"status {visit.care_status}")

    if trigger == "A03" or (visit.status == EncounterStatus.FINISHED):
        discharge = visit.discharge_time or when
        if enc.discharge_time is None or not late:
            enc.discharge_time = discharge
            put("discharge_disposition", visit.discharge_disposition)
            timeline.close(enc.locations, discharge)
            timeline.close(enc.status_periods, discharge)
            enc.pending_discharge_time = None
            touched = True
        notes.append("discharged")

    if touched:
        _refresh_current(enc)
    return "; ".join(notes) or f"{trigger} applied"


def _digest(diagnoses: list[DiagnosisData]) -> str:
    """A fingerprint of the diagnosis list: most A08s repeat it, so compare before rewriting."""
    text = "|".join(f"{d.sequence}:{d.code}:{d.system}:{d.diagnosis_type}:{d.display}"
                    for d in diagnoses)
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _replace_diagnoses(session: Session, enc: Encounter, diagnoses: list[DiagnosisData]) -> None:
    if enc.id is not None:
        session.execute(delete(Diagnosis).where(Diagnosis.encounter_id == enc.id))
        session.expire(enc, ["diagnoses"])
    for d in diagnoses:
        session.add(Diagnosis(
            encounter=enc, sequence=d.sequence, code=d.code, system=d.system,
            display=d.display, diagnosis_type=d.diagnosis_type,
        ))


def _cancel_transfer(enc: Encounter) -> str:
    stays = timeline.active(enc.locations)
    if len(stays) < 2:
        raise EventError("A12 cancel transfer: this visit has no transfer to cancel")
    last, previous = stays[-1], stays[-2]
    last.cancelled = True
    previous.end = last.end
    return f"transfer to {last.unit or '?'} cancelled; back in {previous.unit or '?'}"


def _refresh_current(enc: Encounter) -> None:
    """Current location and care status are whatever the histories say last."""
    stay = timeline.current(enc.locations)
    if stay is not None:
        enc.facility, enc.unit, enc.room, enc.bed = stay.facility, stay.unit, stay.room, stay.bed
    period = timeline.current(enc.status_periods)
    if period is not None:
        enc.care_status = period.care_status
