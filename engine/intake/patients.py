"""Who the patient is: resolution by MRN, demographics in event time, and A40 merges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, tuple_
from sqlalchemy.orm import Session

from engine.core.events import EventError, Identifier, PatientData
from engine.storage.models import Encounter, Patient, PatientIdentifier, PatientMerge

_DEMOGRAPHICS = ("family", "given", "middle", "birth_date", "sex", "address")
# Built once: every input asks it (statement building costs more than the query).
_HOLDERS = (select(PatientIdentifier.system, PatientIdentifier.value, Patient,
                   PatientIdentifier.is_mrn)
            .join(Patient, Patient.id == PatientIdentifier.patient_id)
            .where(tuple_(PatientIdentifier.system, PatientIdentifier.value)
                   .in_(bindparam("ids", expanding=True))))


def _owners(session: Session, ids: list[Identifier],
            mrns: set[tuple[str, str]] | None = None) -> dict[tuple[str, str], Patient]:
    """(system, value) -> holder, for identifiers already on file: one query, patients loaded.
    `mrns` collects those that are their holder's MRN."""
    if not ids:
        return {}
    rows = session.execute(_HOLDERS, {"ids": [(i.system, i.value) for i in ids]})
    out = {}
    for s, v, p, is_mrn in rows:
        out[(s, v)] = p
        if is_mrn and mrns is not None:
            mrns.add((s, v))
    return out


def survivor(session: Session, patient: Patient) -> Patient:
    seen = set()
    while patient.merged_into_id is not None and patient.id not in seen:
        seen.add(patient.id)
        patient = session.get(Patient, patient.merged_into_id)  # type: ignore[assignment]
    return patient


def find(session: Session, ident: Identifier) -> Patient | None:
    """The patient holding this identifier, following merges to the survivor."""
    owner = _owners(session, [ident]).get((ident.system, ident.value))
    return None if owner is None else survivor(session, owner)


def _add_identifiers(session: Session, patient: Patient, ids: list[Identifier],
                     mrn: Identifier | None, known: dict[tuple[str, str], Patient]) -> bool:
    added = False
    for ident in ids:
        key = (ident.system, ident.value)
        if key in known:
            continue  # never steal an identifier another patient holds
        known[key] = patient
        session.add(PatientIdentifier(
            patient=patient, system=ident.system, value=ident.value,
            type_code=ident.type_code, is_mrn=mrn is not None and ident == mrn,
            namespace=ident.namespace,
        ))
        added = True
    return added


def upsert(session: Session, data: PatientData, when: datetime, now: datetime) -> Patient:
    """Create or update the patient; demographics older than what we hold only fill gaps."""
    assert data.mrn is not None
    held_as_mrn: set[tuple[str, str]] = set()
    known = _owners(session, [*data.identifiers, *data.alternates], held_as_mrn)
    # The MRN, else another of the site's MRNs (a merged system's), else an identifier that
    # is some patient's MRN (one taken by fallback before the site's own MRN was sent).
    keys = [(i.system, i.value) for i in (data.mrn, *data.alternates)]
    keys += [(i.system, i.value) for i in data.identifiers if (i.system, i.value) in held_as_mrn]
    owner = next((known[k] for k in keys if k in known), None)
    if owner is None:
        patient = Patient(as_of=when, updated_at=now, version=1)
        for name in _DEMOGRAPHICS:
            setattr(patient, name, getattr(data, name))
        _birth_precision(patient, data)
        session.add(patient)
        _add_identifiers(session, patient, data.identifiers, data.mrn, known)
        return patient
    patient = survivor(session, owner)
    late = patient.as_of is not None and when < patient.as_of
    new_mrn = (data.mrn.system, data.mrn.value) not in known
    changed = _add_identifiers(session, patient, data.identifiers, data.mrn, known)
    if new_mrn and known.get((data.mrn.system, data.mrn.value)) is patient:
        # A more preferred MRN arrived (a merged system's): it is the one MRN from now on.
        for row in patient.identifiers:
            row.is_mrn = (row.system, row.value) == (data.mrn.system, data.mrn.value)
    for name in _DEMOGRAPHICS:
        value = getattr(data, name)
        if value is None:
            continue
        current = getattr(patient, name)
        if current != value and (not late or current is None):
            setattr(patient, name, value)
            changed = True
    changed = _birth_precision(patient, data) or changed
    if not late and patient.as_of != when:
        patient.as_of = when
    if changed:
        patient.version += 1
        patient.updated_at = now
    return patient


def _birth_precision(patient: Patient, data: PatientData) -> bool:
    """How much of the birth date on file was sent, from the message that sent that date
    (a full date from FHIR or an older feed is a day); whether it changed."""
    if data.birth_date is None or patient.birth_date != data.birth_date:
        return False
    precision = data.birth_precision or "day"
    if (patient.birth_precision or "day") == precision:
        return False
    patient.birth_precision = precision
    return True


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
    if not prior:
        raise EventError("A40 names no prior patient (MRG-1 is empty)")
    session.flush()
    merged: list[Patient] = []
    added: dict[tuple[str, str], Patient] = {}  # unknown prior ids given to the survivor
    for ident in prior:
        other = find(session, ident)
        if other is None:
            _add_identifiers(session, survivor, [ident], None, added)
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
    return merged
