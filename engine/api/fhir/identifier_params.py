"""Search by a patient's identifier, as liberal as the systems senders write.

`identifier=[system|]value` on Patient, and the chain `patient.identifier` (also
`subject.identifier`, `subject:Patient.identifier`) on Encounter and the rule outputs.
The system may be the published form (`urn:oid:<OID>`, `urn:engine:id:<namespace>`),
the stored form (a bare OID or namespace) or the namespace the sender wrote beside an OID
(CX-4.1): each finds the same identifier (engine.core.identity.search_systems).
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, or_

from engine.api.fhir.search import Build, Param, reference, token
from engine.core.identity import search_systems
from engine.storage.models import PatientIdentifier

IDENTIFIER_DOC = ("An identifier, [system|]value; the system as urn:oid:<OID>, "
                  "urn:engine:id:<namespace>, or the namespace or OID as sent")


def held_by(patient_id: Any) -> Build:
    """Rows whose patient (column `patient_id`) holds the identifier searched."""
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        system, value = token(text)
        conds = [PatientIdentifier.patient_id == patient_id, PatientIdentifier.value == value]
        if system is not None:
            conds.append(or_(PatientIdentifier.system.in_(sorted(search_systems(system))),
                             PatientIdentifier.namespace == system))
        return exists().where(*conds)

    return build


def chained(patient_id: Any) -> dict[str, Param]:
    """`patient.identifier` and `subject.identifier` on a type that references a patient."""
    doc = "The patient's identifier (chained): " + IDENTIFIER_DOC
    return {name: Param(name, "token", doc, held_by(patient_id))
            for name in ("patient.identifier", "subject.identifier")}


CHAIN = "Patient.identifier"  # the modifier of `subject:Patient.identifier`


def patient_reference(name: str, doc: str, patient_id: Any) -> Param:
    """A `patient`/`subject` reference parameter that also takes `:Patient.identifier`."""
    by_reference, by_identifier = reference(patient_id, "Patient"), held_by(patient_id)

    def build(text: str, modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
        if modifier == CHAIN:
            return by_identifier(text, None, zone)
        return by_reference(text, modifier, zone)

    return Param(name, "reference", doc, build, (CHAIN,))
