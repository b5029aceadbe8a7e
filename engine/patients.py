"""Who the patient is: resolution by MRN, demographics in event time, and A40 merges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.events import EventError, Identifier, PatientData
from engine.storage.models import Encounter, Patient, PatientIdentifier, PatientMerge

_DEMOGRAPHICS = ("family", "given", "middle", "birth_date", "sex", "address")


def find(session: Session, ident: Identifier) -> Patient | None:
    """The patient holding this identifier, following merges to the survivor."""
    row = session.scalars(
        select(PatientIdentifier).where(
            PatientIdentifier.system == ident.system, PatientIdentifier.value == ident.value
        )
    ).first()
    if row is None:
        return None
    patient = row.patient
    seen = set()
    while patient.merged_into_id is not None and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into_id)  # type: ignore[assignment]
    return patient


def _attach(session: Session, patient: Patient, ids: list[Identifier], mrn: Identifier | None):
    for ident in ids:
        existing = session.scalars(
            select(PatientIdentifier).where(
                PatientIdentifier.system == ident.system, PatientIdentifier.value == ident.value
            )
        ).first()
        if existing is None:
            patient.identifiers.append(
                PatientIdentifier(
                    system=ident.system,
                    value=ident.value,
                    type_code=ident.type_code,
                    is_mrn=mrn is not None and ident == mrn,
                )
            )


def upsert(session: Session, data: PatientData, when: datetime, now: datetime) -> Patient:
    """Create or update the patient; demographics older than what we hold only fill gaps."""
    assert data.mrn is not None
    patient = find(session, data.mrn)
    if patient is None:
        patient = Patient(as_of=when, updated_at=now, version=1)
        session.add(patient)
        _attach(session, patient, data.identifiers, data.mrn)
        for name in _DEMOGRAPHICS:
            setattr(patient, name, getattr(data, name))
        return patient
    late = patient.as_of is not None and when < patient.as_of
    changed = False
    for name in _DEMOGRAPHICS:
        value = getattr(data, name)
        if value is None:
            continue
        current = getattr(patient, name)
        if current != value and (not late or current is None):
            setattr(patient, name, value)
            changed = True
    known = {(i.system, i.value) for i in patient.identifiers}
    if any((i.system, i.value) not in known for i in data.identifiers):
        _attach(session, patient, data.identifiers, data.mrn)
        changed = True
    if not late:
        patient.as_of = when
    if changed:
        patient.version += 1
        patient.updated_at = now
    return patient


def merge(
    session: Session,
    survivor: Patient,
    prior: list[Identifier],
    when: datetime,
    now: datetime,
    message_id: int | None,
) -> list[Patient]:
    """Fold the patients known by `prior` identifiers into `survivor`; return the merged ones.

    Their encounters and identifiers move to the survivor; their rows stay, marked merged.
    """
    merged: list[Patient] = []
    for ident in prior:
        other = find(session, ident)
        if other is None:
            _attach(session, survivor, [ident], None)
            continue
        if other.id == survivor.id:
            continue
        snapshot = {
            "identifiers": [
                {"system": i.system, "value": i.value, "type": i.type_code}
                for i in other.identifiers
            ]
        }
        for enc in session.scalars(select(Encounter).where(Encounter.patient_id == other.id)):
            enc.patient_id = survivor.id
            enc.version += 1
            enc.updated_at = now
        for ident_row in list(other.identifiers):
            ident_row.is_mrn = False
            ident_row.patient = survivor
        for name in _DEMOGRAPHICS:
            if getattr(survivor, name) is None and getattr(other, name) is not None:
                setattr(survivor, name, getattr(other, name))
        other.merged_into_id = survivor.id
        other.version += 1
        other.updated_at = now
        survivor.version += 1
        survivor.updated_at = now
        session.add(
            PatientMerge(
                survivor_id=survivor.id,
                merged_id=other.id,
                message_id=message_id,
                event_time=when,
                prior_identifiers=snapshot,
            )
        )
        merged.append(other)
    if not merged and not prior:
        raise EventError("A40 names no prior patient")
    return merged
