"""Applying ADT events to encounter state, in event time, with cancels that undo.

Here: locking, finding or creating the encounter, the fields every visit message carries
and the event's history row. What each trigger means is in triggers.py.

Order tolerance: a message older than the state it would overwrite only fills gaps and
adds its history at the right place; cancels (A11, A12, A13, A25) always apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from engine.core.events import (
    PATIENT_ONLY,
    RESULTS,
    AdtEvent,
    CoverageData,
    DiagnosisData,
    DuplicateKey,
    Identifier,
    VisitData,
)
from engine.core.vocabulary import OPEN_ENCOUNTER_STATUSES, EncounterStatus
from engine.hl7.ack import AckIssue
from engine.hl7.adt import Hl7Refusal
from engine.intake import identity, labs, patients, triggers
from engine.storage import locks
from engine.storage.models import (
    Diagnosis,
    Encounter,
    EncounterEvent,
    InboundMessage,
    Patient,
)
from engine.work.ur_record import authorizations

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


@dataclass
class Applied:
    patient: Patient
    encounter: Encounter | None
    summary: str
    warning: str | None = None  # applied, but to a stay the message did not name


def lock_names(event: AdtEvent) -> list[str]:
    """The MRNs and the visit an event touches: what must not change under it concurrently."""
    mrns = [event.patient.mrn] if event.patient.mrn else []
    names = [f"id:{i.system}|{i.value}" for i in (mrns + event.prior_patient)]
    visits = [event.prior_visit] if event.prior_visit else []
    if event.visit and event.visit.visit_number:
        visits.append(event.visit.visit_number)
    names += [locks.visit_lock_key(vn.system, vn.value) for vn in visits]
    return names


def apply(
    session: Session, event: AdtEvent, now: datetime, message: InboundMessage | None
) -> Applied:
    """Apply one event inside the caller's transaction; raise EventError to refuse it."""
    locks.lock(session, *lock_names(event))
    handler = _PATIENT_EVENTS.get(event.trigger)
    if handler is not None:
        return handler(session, event, now, message)
    patient = _upsert(session, event, now, message)
    if event.trigger in PATIENT_ONLY or event.visit is None:
        return Applied(patient, None, "patient updated")
    return _apply_to_visit(session, patient, event, now, message)


def _upsert(session: Session, event: AdtEvent, now: datetime,
            message: InboundMessage | None) -> Patient:
    """The PID patient, created or updated; a registration brings an A29'd person back."""
    patient = patients.upsert(session, event.patient, event.event_time, now)
    identity.reactivate(session, patient, event, now, _id(message))
    return patient


def _id(message: InboundMessage | None) -> int | None:
    return message.id if message is not None else None


def _record_results(session: Session, event: AdtEvent, now: datetime,
                    message: InboundMessage | None) -> Applied:
    patient = _upsert(session, event, now, message)
    found, summary = labs.record(session, patient, event, now, message)
    return Applied(patient, found, summary)


def _merge_patients(session: Session, event: AdtEvent, now: datetime,
                    message: InboundMessage | None) -> Applied:
    patient = _upsert(session, event, now, message)
    merged = patients.merge(session, patient, event.prior_patient, event.event_time, now,
                            _id(message))
    return Applied(patient, None, f"merged {len(merged)} patient record(s)")


def _change_identifier(session: Session, event: AdtEvent, now: datetime,
                       message: InboundMessage | None) -> Applied:
    # Before the upsert: the PID identifier is the new one, not yet on file.
    summary = identity.change_identifier(session, event, now, _id(message))
    return Applied(_upsert(session, event, now, message), None, summary)


def _inactivate(session: Session, event: AdtEvent, now: datetime,
                message: InboundMessage | None) -> Applied:
    return Applied(identity.inactivate(session, event, now, _id(message)), None,
                   "person inactivated")


def _change_visit_number(session: Session, event: AdtEvent, now: datetime,
                         message: InboundMessage | None) -> Applied:
    patient = _upsert(session, event, now, message)
    note = identity.change_visit_number(session, patient, event, now, _id(message))
    return _apply_to_visit(session, patient, event, now, message, note)


def _move_visit(session: Session, event: AdtEvent, now: datetime,
                message: InboundMessage | None) -> Applied:
    patient = _upsert(session, event, now, message)
    note = identity.move_visit(session, patient, event, now, _id(message))
    return _apply_to_visit(session, patient, event, now, message, note)


PatientEvent = Callable[[Session, AdtEvent, datetime, InboundMessage | None], Applied]
# Events about the patient or a key (the identity events, with MRG) rather than one visit's
# state, each resolving its patient itself; visit events go to the per-trigger handlers of
# triggers.py. The rules re-evaluate what each returns (its stay, or the patient's stays).
_PATIENT_EVENTS: dict[str, PatientEvent] = {
    RESULTS: _record_results,
    "A29": _inactivate,  # delete person information: the person is kept, inactive
    "A40": _merge_patients,  # merge patient (MRG-1 into PID-3)
    "A45": _move_visit,  # move visit (MRG-5 from the MRG-1 patient to the PID patient)
    "A47": _change_identifier,  # change patient identifier (MRG-1 to PID-3)
    "A50": _change_visit_number,  # change visit number (MRG-5 to PV1-19)
}


def _apply_to_visit(session: Session, patient: Patient, event: AdtEvent, now: datetime,
                    message: InboundMessage | None, note: str | None = None) -> Applied:
    """A visit event: find or create its encounter, apply the trigger, record its history."""
    assert event.visit is not None
    encounter, warning = _resolve(session, patient, event.visit, event, now)
    late = bool(encounter.as_of and event.event_time < encounter.as_of)
    number = encounter.authorization
    summary = _apply_visit(session, encounter, event)
    if encounter.authorization and encounter.authorization != number:
        _seed_authorization(session, encounter, now)
    if note:
        summary = f"{note}; {summary}"
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
    return Applied(patient, encounter, summary, warning)


def _seed_authorization(session: Session, encounter: Encounter, now: datetime) -> None:
    """A new authorization number from the feed (IN1-14) opens the stay's authorization in
    the UR record (pending until UR records the payer's determination), once per number."""
    if encounter.id is None:
        session.flush()  # a new stay: the record needs its id
    authorizations.seed_from_feed(session, encounter, encounter.authorization, now)


# Built once: every visit message asks it.
_BY_VISIT = select(Encounter).where(Encounter.visit_system == bindparam("system"),
                                    Encounter.visit_number == bindparam("value"))


# The visit system of a stay the sender gave no visit number for (docs/hl7.md).
SYNTHETIC_VISIT_SYSTEM = "urn:engine:visit-key"
# Triggers that may start a stay: with no visit number, a new stay under a synthetic key
# unless the patient has exactly one open stay (an A01 after an A05 or A14).
_STARTS_STAY = frozenset({"A01", "A04", "A05", "A14", "A06", "A07"})
_REOPENS = frozenset({"A13"})  # cancel discharge: its stay is a finished one
_NO_NUMBER = "no visit number (PV1-19, PID-18)"


def _resolve(session: Session, patient: Patient, visit: VisitData, event: AdtEvent,
             now: datetime) -> tuple[Encounter, str | None]:
    """The stay a visit event is for, and a warning when the message did not name it.

    Without a visit number (senders of samples and small systems omit it) the stay is the
    patient's one open stay (for A13, its one finished stay); an admission, registration,
    pre-admit or class change with none or several gets a new stay under a synthetic key
    that a resend maps to again; any other event is refused (AE 101) when none or several."""
    if visit.visit_number is not None:
        return _find_or_create(session, patient, visit.visit_number, visit, event, now), None
    trigger = event.trigger
    key = synthetic_visit_number(event) if trigger in _STARTS_STAY else None
    if key is not None and session.scalars(
            _BY_VISIT, {"system": key.system, "value": key.value}).first() is not None:
        return (_find_or_create(session, patient, key, visit, event, now),
                f"{_NO_NUMBER}: {trigger} applied to the stay kept under visit number "
                f"{key.value} of {key.system}")
    wanted = (EncounterStatus.FINISHED,) if trigger in _REOPENS else OPEN_ENCOUNTER_STATUSES
    found = list(session.scalars(select(Encounter).where(
        Encounter.patient_id == patient.id, Encounter.status.in_(wanted)).limit(2))) \
        if patient.id is not None else []
    if len(found) == 1:
        kind = "finished" if trigger in _REOPENS else "open"
        return found[0], (f"{_NO_NUMBER}: {trigger} applied to the patient's one {kind} "
                          f"stay {found[0].visit_number}")
    if key is not None:
        return (_find_or_create(session, patient, key, visit, event, now),
                f"{_NO_NUMBER}: the stay is kept under visit number {key.value} of "
                f"{key.system}")
    kind = "finished" if trigger in _REOPENS else "open"
    why = (f"no {kind} stay to apply it to" if not found
           else f"{len(found)} {kind} stays: send the visit number")
    raise Hl7Refusal("AE", AckIssue(
        101, f"{trigger} names no visit (PV1-19 and PID-18 are empty) and the patient has "
             f"{why}", "PV1", 19))


def synthetic_visit_number(event: AdtEvent) -> Identifier | None:
    """A stable key for a stay sent with no visit number: the admit time (PV1-44), else the
    event time, in UTC to the minute, and a digest of the MRN; so a resend maps to the same
    stay, and two patients never share one."""
    mrn = event.patient.mrn
    if mrn is None:
        return None
    visit = event.visit
    when = ((visit.admit_time if visit is not None else None) or event.event_time)
    digest = hashlib.blake2b(f"{mrn.system}|{mrn.value}".encode(), digest_size=8).hexdigest()
    return Identifier(system=SYNTHETIC_VISIT_SYSTEM,
                      value=f"{when.astimezone(UTC):%Y%m%d%H%M}-{digest}", type_code="VN")


def _find_or_create(
    session: Session, patient: Patient, vn: Identifier, visit: VisitData, event: AdtEvent,
    now: datetime,
) -> Encounter:
    enc = session.scalars(_BY_VISIT, {"system": vn.system, "value": vn.value}).first()
    if enc is None:
        enc = Encounter(
            patient=patient,
            visit_system=vn.system,
            visit_number=vn.value,
            status=triggers.STATUS_BY_TRIGGER.get(event.trigger,
                                                  visit.status or EncounterStatus.IN_PROGRESS),
            version=0,
            updated_at=now,
        )
        session.add(enc)
        return enc
    if patient.id is None or enc.patient_id != patient.id:
        owner = session.get(Patient, enc.patient_id)
        if owner is None or patient.id is None or owner.merged_into_id != patient.id:
            raise DuplicateKey(
                f"visit {vn.value} belongs to another patient; send A40/A45 to move it first"
            )
        enc.patient_id = patient.id
    return enc


def _apply_visit(session: Session, enc: Encounter, event: AdtEvent) -> str:
    """The fields every visit message carries, then what its trigger means."""
    step = triggers.Step.begin(session, enc, event)
    _apply_fields(step)
    if event.coverage is not None:
        _apply_coverage(step, event.coverage)
    if event.drg is not None:
        step.put("working_drg", event.drg[0])
        step.put("working_drg_text", event.drg[1])
    if event.diagnoses is not None:
        _apply_diagnoses(step, event.diagnoses)
    return triggers.handle(step)


def _apply_fields(step: triggers.Step) -> None:
    """The PV1/PV2 snapshot: sent values, and those the sender explicitly emptied."""
    visit = step.visit
    for name in _VISIT_FIELDS:
        step.put(name, getattr(visit, name))
    if not step.late:
        for name in visit.cleared & _CLEARABLE:
            setattr(step.enc, name, None)
    step.put("admit_time", visit.admit_time)


def _apply_coverage(step: triggers.Step, coverage: CoverageData) -> None:
    step.put("payer_plan", coverage.plan_code)
    step.put("payer_name", coverage.payer_name)
    step.put("payer_class", coverage.payer_class)
    step.put("authorization", coverage.authorization)


def _apply_diagnoses(step: triggers.Step, diagnoses: list[DiagnosisData]) -> None:
    enc = step.enc
    digest = _digest(diagnoses)
    if digest != enc.diagnoses_digest and (not step.late or enc.diagnoses_digest is None):
        _replace_diagnoses(step.session, enc, diagnoses)
        enc.diagnoses_digest = digest


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
