"""The source-neutral ADT event: HL7 messages and FHIR resources both become one of these.

A field left as None means "not sent, keep what we have"; that is how partial updates
(A08 without DG1, FHIR without Coverage) avoid erasing state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from engine.core.errors import NotApplicable

# Triggers whose only subject is the person, not a visit (a PV1 they carry is not read).
PATIENT_ONLY = frozenset({"A28", "A29", "A31", "A40", "A47"})
# Triggers the engine applies. Every other trigger is either HARMLESS (acknowledged AA and
# recorded as ignored, with why) or refused AR with ERR 201 and kept for replay: nothing is
# acknowledged and dropped.
SUPPORTED = frozenset(
    "A01 A02 A03 A04 A05 A06 A07 A08 A11 A12 A13 A14 A16 A21 A22 A25 A27 A28 A29 A31 A38 "
    "A40 A45 A47 A50 A52 A53 A54 A55 R01".split()
)
# Triggers that change nothing the engine keeps, by definition: the one table of what is
# acknowledged without being applied (docs/hl7.md lists it). A trigger in neither table is
# refused (AR, ERR 201 unsupported event code) and kept, so a new one is never lost.
HARMLESS: dict[str, str] = {
    "A09": "patient departing (tracking): the engine keeps the census location from A02 only",
    "A10": "patient arriving (tracking): the engine keeps the census location from A02 only",
    "A15": "pending transfer: the engine keeps no planned transfers",
    "A20": "bed status update: the engine keeps no bed board",
    "A24": "link patient information: the engine keeps no links between records",
    "A26": "cancel pending transfer: the engine keeps no planned transfers",
    "A32": "cancel patient arriving (tracking): the engine keeps no tracking moves",
    "A33": "cancel patient departing (tracking): the engine keeps no tracking moves",
    "A35": "merge account (deprecated): the engine keeps no account numbers",
    "A37": "unlink patient information: the engine keeps no links between records",
    "A41": "merge account: the engine keeps no account numbers (PID-18)",
    "A48": "change alternate patient id (PID-4): the engine keeps only PID-3 identifiers",
    "A49": "change patient account number: the engine keeps no account numbers (PID-18)",
    "A51": "change alternate visit id (PV1-50): the engine keys stays on PV1-19 only",
    "A60": "update allergy information: the engine keeps no allergies",
    "A61": "change consulting doctor: the engine keeps no consulting doctors (PV1-9)",
    "A62": "cancel change consulting doctor: the engine keeps no consulting doctors (PV1-9)",
}
# Harmless only while the field named here keys the record; when it is empty the identity
# fallbacks key the record by what the trigger changes (PID-18 for a stay with no PV1-19,
# PID-2/PID-4 for a patient with no PID-3), so the change would be dropped: refused instead.
HARMLESS_WHILE_SENT = {"A35": ("PV1", 19), "A41": ("PV1", 19), "A49": ("PV1", 19),
                       "A48": ("PID", 3)}
# Why the triggers that would change state but are not applied are refused (AR, ERR 201).
REFUSED_WHY: dict[str, str] = {
    "A17": "swap patients is not applied: send an A02 for each patient",
    "A18": "merge patient information (deprecated) is not applied: send A40",
    "A23": "delete a patient record is not applied: send A11 to cancel the visit",
    "A30": "merge person information (deprecated) is not applied: send A40",
    "A34": "merge patient information, patient id only (deprecated), is not applied: send A40",
    "A36": "merge patient information (deprecated) is not applied: send A40",
    "A39": "merge person, patient id, is not applied: send A40",
    "A42": "merge visit is not applied: send A11 for the visit merged away",
    "A43": "move patient information, identifier list, is not applied: send A47 or A40",
    "A44": "move account is not applied: the engine keeps no account numbers, so it cannot "
           "tell which stays move; send A45 for each visit",
    "A46": "change patient id (deprecated) is not applied: send A47",
}
# Lab results (ORU^R01, FHIR Observation): they change no visit state, only add results.
RESULTS = "R01"


@dataclass(slots=True)
class Identifier:
    system: str  # canonical (engine.core.identity): `urn:oid:<OID>`, a URI or a namespace
    value: str
    type_code: str | None = None
    namespace: str | None = None  # CX-4.1 as sent, when the system is another spelling


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
    # Other identifiers under the site's MRN authorities, most preferred first: the patient
    # is found by them when the MRN is new (a merged system's second MRN).
    alternates: list[Identifier] = field(default_factory=list)


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
    prior_visit: Identifier | None = None  # MRG-5 prior visit number
    labs: list[LabData] | None = None


class EventError(NotApplicable, ValueError):
    """The input parsed but cannot be applied (answered AE / 422 and quarantined)."""


class UnknownKey(EventError):
    """The record an event names (a prior identifier, a prior visit) is not on file (ERR 204)."""


class DuplicateKey(EventError):
    """The identifier or visit number an event gives is already another record's (ERR 205)."""
