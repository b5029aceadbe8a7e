"""Identity events with an MRG segment, and the person's active flag (HL7 v2.5.1 ch. 3).

A47 changes a patient identifier, A50 a visit number, A45 moves a visit to another patient,
A29 inactivates the person. Each keeps what it replaced as an IdentityChange row (the old
value, the message, the event time), so no history is lost. What cannot be applied as sent
is refused: a prior key not on file is UnknownKey (ERR 204), a new key already another
record's is DuplicateKey (ERR 205); the whole message then rolls back and is kept.
A resend under a new MSH-10 of a change already applied is accepted and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.core.events import AdtEvent, DuplicateKey, Identifier, UnknownKey
from engine.intake import patients
from engine.storage.models import (
    Encounter,
    IdentityChange,
    LabResult,
    Patient,
    PatientIdentifier,
    RuleOutput,
)

# Triggers that (re)register a person: after an A29 they make the person active again.
REACTIVATING = frozenset({"A01", "A04", "A05", "A14", "A28"})


def _record(session: Session, event: AdtEvent, kind: str, patient: Patient, now: datetime,
            message_id: int | None, *, system: str | None = None, old: str | None = None,
            new: str | None = None, encounter: Encounter | None = None,
            from_patient: Patient | None = None) -> None:
    session.add(IdentityChange(
        trigger=event.trigger, kind=kind, patient_id=patient.id, system=system,
        old_value=old, new_value=new, encounter_id=encounter.id if encounter else None,
        from_patient_id=from_patient.id if from_patient else None, message_id=message_id,
        event_time=event.event_time, recorded_at=now,
    ))


def _changed_before(session: Session, kind: str, old: Identifier, new: Identifier) -> bool:
    """Whether this change is already on file (a resend of an applied A47 or A50)."""
    return session.scalar(select(IdentityChange.id).where(
        IdentityChange.kind == kind, IdentityChange.system == old.system,
        IdentityChange.old_value == old.value, IdentityChange.new_value == new.value)
        .limit(1)) is not None


def _touch(row: Patient | Encounter, now: datetime) -> None:
    row.version += 1
    row.updated_at = now


# -- A47 change patient identifier ------------------------------------------------------

def _replacement(prior: Identifier, row: PatientIdentifier,
                 event: AdtEvent) -> Identifier | None:
    """The PID-3 identifier that replaces `prior`: same authority and type, else same
    authority, else the MRN when the prior one was the MRN."""
    candidates = [i for i in event.patient.identifiers
                  if (i.system, i.value) != (prior.system, prior.value)]
    for ident in candidates:
        if ident.system == prior.system and ident.type_code == row.type_code:
            return ident
    for ident in candidates:
        if ident.system == prior.system:
            return ident
    mrn = event.patient.mrn
    if row.is_mrn and mrn is not None and (mrn.system, mrn.value) != (prior.system, prior.value):
        return mrn
    return None


def change_identifier(session: Session, event: AdtEvent, now: datetime,
                      message_id: int | None) -> str:
    """A47: the MRG-1 identifier was wrong; PID-3 holds the right one. The record keeps its
    stays and work; later messages find it by the new identifier only."""
    mrn = event.patient.mrn
    assert mrn is not None
    holder = next((p for p in (patients.find(session, i) for i in event.prior_patient) if p),
                  None)
    if holder is None:
        target = patients.find(session, mrn)
        if target is not None and any(_changed_before(session, "identifier", i, mrn)
                                      for i in event.prior_patient):
            return "identifier already changed"
        raise UnknownKey(f"A47: the prior patient identifier {_names(event.prior_patient)} "
                         "(MRG-1) is not on file")
    changes = 0
    for prior in event.prior_patient:
        row = session.scalars(select(PatientIdentifier).where(
            PatientIdentifier.system == prior.system,
            PatientIdentifier.value == prior.value)).first()
        if row is None or row.patient_id != holder.id:
            continue
        new = _replacement(prior, row, event)
        if new is None:
            continue
        other = patients.find(session, new)
        if other is not None and other.id != holder.id:
            raise DuplicateKey(f"A47: identifier {new.value} (PID-3) already belongs to "
                               "another patient; send A40 to merge the two records")
        held = next((i for i in holder.identifiers
                     if (i.system, i.value) == (new.system, new.value)), None)
        if held is not None:
            held.is_mrn = held.is_mrn or row.is_mrn
            holder.identifiers.remove(row)
        else:
            row.system, row.value = new.system, new.value
            row.type_code = new.type_code or row.type_code
        _record(session, event, "identifier", holder, now, message_id, system=prior.system,
                old=prior.value, new=new.value)
        changes += 1
    if not changes:
        raise UnknownKey("A47: PID-3 gives no identifier to replace "
                         f"{_names(event.prior_patient)} (MRG-1) with")
    _touch(holder, now)
    session.flush()
    return f"{changes} patient identifier(s) changed"


def _names(ids: list[Identifier]) -> str:
    return ", ".join(i.value for i in ids) or "(empty)"


# -- A50 change visit number ----------------------------------------------------------------

def _by_visit(session: Session, ident: Identifier) -> Encounter | None:
    return session.scalars(select(Encounter).where(
        Encounter.visit_system == ident.system, Encounter.visit_number == ident.value)).first()


def _owned_by(session: Session, enc: Encounter, patient: Patient) -> bool:
    owner = session.get(Patient, enc.patient_id)
    return owner is not None and patient.id is not None and (
        patients.survivor(session, owner).id == patient.id)


def change_visit_number(session: Session, patient: Patient, event: AdtEvent, now: datetime,
                        message_id: int | None) -> str:
    """A50: the stay known by MRG-5 is known by PV1-19 from now on (same stay, same work)."""
    prior, visit = event.prior_visit, event.visit
    assert prior is not None and visit is not None and visit.visit_number is not None
    new = visit.visit_number
    session.flush()
    enc = _by_visit(session, prior)
    current = _by_visit(session, new)
    if enc is None:
        if current is not None and _changed_before(session, "visit_number", prior, new):
            return "visit number already changed"
        raise UnknownKey(f"A50: the prior visit number {prior.value} (MRG-5) is not on file")
    if not _owned_by(session, enc, patient):
        raise UnknownKey(f"A50: visit {prior.value} (MRG-5) belongs to another patient than "
                         "PID-3 names; send A45 to move it first")
    if current is not None and current.id != enc.id:
        raise DuplicateKey(f"A50: visit number {new.value} (PV1-19) is already another stay's")
    if (enc.visit_system, enc.visit_number) != (new.system, new.value):
        enc.visit_system, enc.visit_number = new.system, new.value
        _record(session, event, "visit_number", patient, now, message_id, system=prior.system,
                old=prior.value, new=new.value, encounter=enc)
        session.flush()
    return f"visit number {prior.value} changed to {new.value}"


# -- A45 move visit ---------------------------------------------------------------------------

def move_visit(session: Session, patient: Patient, event: AdtEvent, now: datetime,
               message_id: int | None) -> str:
    """A45: the visit (MRG-5, else PV1-19) was filed under the wrong patient (MRG-1); it
    moves to the PID patient with its history, rule outputs, tasks and lab results."""
    assert event.visit is not None and event.visit.visit_number is not None
    number = event.prior_visit or event.visit.visit_number
    session.flush()
    enc = _by_visit(session, number)
    if enc is None:
        raise UnknownKey(f"A45: visit {number.value} (MRG-5/PV1-19) is not on file")
    if _owned_by(session, enc, patient):
        return f"visit {number.value} already with this patient"
    source = next((p for p in (patients.find(session, i) for i in event.prior_patient) if p),
                  None)
    if source is None:
        raise UnknownKey(f"A45: the prior patient {_names(event.prior_patient)} (MRG-1) is "
                         "not on file")
    if not _owned_by(session, enc, source):
        raise UnknownKey(f"A45: visit {number.value} does not belong to the patient MRG-1 "
                         "names")
    previous = session.get(Patient, enc.patient_id)
    assert previous is not None
    enc.patient_id = patient.id
    enc.patient = patient
    session.execute(update(RuleOutput).where(RuleOutput.encounter_id == enc.id)
                    .values(patient_id=patient.id))
    session.execute(update(LabResult).where(
        LabResult.patient_id == previous.id, LabResult.visit_system == enc.visit_system,
        LabResult.visit_number == enc.visit_number).values(patient_id=patient.id))
    _touch(enc, now)
    _touch(previous, now)
    _record(session, event, "visit_moved", patient, now, message_id, system=enc.visit_system,
            old=enc.visit_number, new=enc.visit_number, encounter=enc, from_patient=previous)
    session.flush()
    return f"visit {number.value} moved from another patient"


# -- A29 delete person information, and a person registered again ---------------------------

def inactivate(session: Session, event: AdtEvent, now: datetime,
               message_id: int | None) -> Patient:
    """A29: the person's information is withdrawn. The record is kept (its history and the
    stays' audit trail), shown inactive, and the rules raise no work for it any more."""
    mrn = event.patient.mrn
    assert mrn is not None
    patient = patients.find(session, mrn)
    if patient is None:
        raise UnknownKey(f"A29: patient {mrn.value} (PID-3) is not on file")
    if patient.active:
        patient.active = False
        _touch(patient, now)
        _record(session, event, "inactivated", patient, now, message_id)
    return patient


def reactivate(session: Session, patient: Patient, event: AdtEvent, now: datetime,
               message_id: int | None) -> None:
    """A person inactivated by A29 and registered or admitted again is active again."""
    if patient.id is not None and not patient.active and event.trigger in REACTIVATING:
        patient.active = True
        _touch(patient, now)
        _record(session, event, "reactivated", patient, now, message_id)
