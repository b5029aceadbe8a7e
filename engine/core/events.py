"""The source-neutral ADT event: HL7 messages and FHIR resources both become one of these.

A field left as None means "not sent, keep what we have"; that is how partial updates
(A08 without DG1, FHIR without Coverage) avoid erasing state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from engine.core.errors import NotApplicable

# Triggers whose only subject is the person, not a visit.
PATIENT_ONLY = frozenset({"A28", "A31", "A40"})
# Triggers the engine applies; others are acknowledged and recorded as ignored.
SUPPORTED = frozenset(
    "A01 A02 A03 A04 A05 A06 A07 A08 A11 A12 A13 A14 A16 A21 A22 A25 A28 A31 A40 R01".split()
)
# Lab results (ORU^R01, FHIR Observation): they change no visit state, only add results.
RESULTS = "R01"


@dataclass(slots=True)
class Identifier:
    system: str
    value: str
    type_code: str | None = None


@dataclass(slots=True)
class PatientData:
    identifiers: list[Identifier]
    mrn: Identifier | None
    family: str | None = None
    given: str | None = None
    middle: str | None = None
    birth_date: date | None = None
    # How much of birth_date was sent: "year" (PID-7 `1950`), "month" (`195003`) or "day";
    # a partial date is stored as its first day and given back as sent (FHIR `1950`).
    birth_precision: str | None = None
    sex: str | None = None
    address: dict[str, str] | None = None


@dataclass(slots=True)
class Location:
    unit: str | None
    room: str | None = None
    bed: str | None = None
    facility: str | None = None

    def is_empty(self) -> bool:
        return not (self.unit or self.room or self.bed)


@dataclass(slots=True)
class DiagnosisData:
    code: str
    system: str | None
    display: str | None
    diagnosis_type: str | None
    sequence: int


@dataclass(slots=True)
class VisitData:
    visit_number: Identifier | None
    patient_class: str | None = None
    patient_type: str | None = None
    care_status: str | None = None
    location: Location | None = None
    prior_location: Location | None = None
    attending_id: str | None = None
    attending_name: str | None = None
    hospital_service: str | None = None
    admission_type: str | None = None
    admit_source: str | None = None
    admit_time: datetime | None = None
    discharge_time: datetime | None = None
    discharge_disposition: str | None = None
    expected_discharge_date: date | None = None
    # FHIR states the encounter status outright; HL7 implies it by trigger.
    status: str | None = None
    # Fields the sender explicitly emptied (HL7 '""'): erase them, unlike "not sent".
    cleared: frozenset[str] = frozenset()


@dataclass(slots=True)
class CoverageData:
    plan_code: str | None
    payer_name: str | None
    payer_class: str | None
    authorization: str | None


@dataclass(slots=True)
class LabData:
    """One result the engine uses, already in its unit (see engine.core.lab_codes)."""

    name: str  # hemoglobin | sodium
    code: str  # LOINC
    value: float
    unit: str
    effective_at: datetime
    status: str | None = None


@dataclass(slots=True)
class AdtEvent:
    trigger: str
    event_time: datetime
    patient: PatientData
    visit: VisitData | None = None
    diagnoses: list[DiagnosisData] | None = None
    drg: tuple[str, str | None] | None = None
    coverage: CoverageData | None = None
    prior_patient: list[Identifier] = field(default_factory=list)
    prior_visit: Identifier | None = None
    labs: list[LabData] | None = None


class EventError(NotApplicable, ValueError):
    """The input parsed but cannot be applied (answered AE / 422 and quarantined)."""


class KeyTaken(EventError):
    """A key the input names (a visit number) is on file for another patient: the HL7
    "duplicate key identifier" (table 0357 code 205), not an internal error."""
