"""Code systems and the code maps between FHIR and the engine's (HL7 v2 flavoured) vocabulary.

Stored values stay in one vocabulary whichever door they came through (HL7 table codes,
`M`/`F` sex, care statuses), so rules never ask where a fact came from; this module is the
only place that knows both spellings.
"""

from __future__ import annotations

from engine.core import identity
from engine.core.vocabulary import EncounterStatus

# -- code systems ---------------------------------------------------------------------------
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/v2-0023"
V2_HOSPITAL_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0069"
LOINC = "http://loinc.org"
ADMIT_SOURCE = "http://terminology.hl7.org/CodeSystem/admit-source"
DISCHARGE_DISPOSITION = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
NUBC_DISCHARGE = "https://www.nubc.org/CodeSystem/PatDischargeStatus"
DIAGNOSIS_ROLE = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD9CM = "http://hl7.org/fhir/sid/icd-9-cm"

# Identifier systems (engine.core.identity): an OID authority is `urn:oid:<OID>`; an HL7
# namespace `GENHOSP` is published as the URN `urn:engine:id:GENHOSP` (FHIR wants an
# absolute URI; the namespace stays readable in `assigner.display`). Inbound, the URN, the
# bare namespace and `assigner.display` all work, and so do `urn:oid:` and a bare OID.
ID_PREFIX = identity.NAMESPACE_PREFIX
# A location reference carries the HL7 PL components `unit^room^bed^facility` here, so a
# client can send back exactly what it read; the display is for people.
LOCATION_SYSTEM = "urn:engine:location"
# A Patient or Encounter sent with no identifier is keyed by its logical id under
# `urn:engine:fhir-id:Patient` / `urn:engine:fhir-id:Encounter` (engine.fhir.inbound).
FHIR_ID_PREFIX = "urn:engine:fhir-id:"


def identifier_system(stored: str) -> str:
    """The FHIR Identifier.system of a stored system."""
    return identity.published_system(stored)


def authority_of(system: str | None, assigner: str | None = None) -> str | None:
    """The stored system an inbound identifier names without a site profile's authorities
    (None when it names none)."""
    return identity.fhir_system(system, assigner)


# -- Encounter.class <-> care status --------------------------------------------------------
CLASS_BY_CARE_STATUS = {
    "inpatient": ("IMP", "inpatient encounter"),
    "observation": ("OBSENC", "observation encounter"),
    "emergency": ("EMER", "emergency"),
    "outpatient": ("AMB", "ambulatory"),
    "preadmit": ("PRENC", "pre-admission"),
}
CARE_STATUS_BY_CLASS = {code: status for status, (code, _) in CLASS_BY_CARE_STATUS.items()}
CARE_STATUS_BY_CLASS["ACUTE"] = "inpatient"

# -- Encounter.status -----------------------------------------------------------------------
# The engine keeps five statuses (EncounterStatus); FHIR's finer arrival states fold into
# in-progress and an entered-in-error encounter is treated as cancelled (A11 semantics).
STATUS_IN = {
    "planned": EncounterStatus.PLANNED,
    "arrived": EncounterStatus.IN_PROGRESS,
    "triaged": EncounterStatus.IN_PROGRESS,
    "in-progress": EncounterStatus.IN_PROGRESS,
    "onleave": EncounterStatus.ONLEAVE,
    "finished": EncounterStatus.FINISHED,
    "cancelled": EncounterStatus.CANCELLED,
    "entered-in-error": EncounterStatus.CANCELLED,
}
FHIR_ENCOUNTER_STATUSES = (*STATUS_IN, "unknown")
# Observation.status (R4, required binding)
OBSERVATION_STATUSES = ("registered", "preliminary", "final", "amended", "corrected",
                        "cancelled", "entered-in-error", "unknown")

# -- Patient.gender <-> HL7 administrative sex ----------------------------------------------
GENDER_BY_SEX = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown",
                 "N": "unknown"}
SEX_BY_GENDER = {"male": "M", "female": "F", "other": "O", "unknown": "U"}

# -- admit source: HL7 table 0023 <-> FHIR admit-source -------------------------------------
ADMIT_SOURCE_BY_V2 = {"1": "gp", "2": "outp", "4": "hosp-trans", "5": "nursing", "7": "emd"}
V2_BY_ADMIT_SOURCE = {fhir: v2 for v2, fhir in ADMIT_SOURCE_BY_V2.items()}

# -- discharge disposition: NUBC patient status (PV1-36) <-> FHIR discharge-disposition ------
DISPOSITION_BY_NUBC = {
    "01": "home",
    "02": "hosp",
    "03": "snf",
    "07": "aadvice",
    "20": "exp",
    "62": "rehab",
    "63": "long",
    "65": "psy",
}
NUBC_BY_DISPOSITION = {fhir: nubc for nubc, fhir in DISPOSITION_BY_NUBC.items()}

# -- diagnosis type (DG1-6) <-> Encounter.diagnosis.use ---------------------------------------
ROLE_BY_DIAGNOSIS_TYPE = {"A": ("AD", "Admission diagnosis"), "F": ("DD", "Discharge diagnosis")}
DIAGNOSIS_TYPE_BY_ROLE = {code: t for t, (code, _) in ROLE_BY_DIAGNOSIS_TYPE.items()}
DIAGNOSIS_TYPE_TEXT = {"W": "working"}
DIAGNOSIS_SYSTEM_URI = {"I10": ICD10CM, "I9": ICD9CM, "I9C": ICD9CM}


def coding(system: str | None, code: str, display: str | None = None) -> dict:
    out: dict = {}
    if system:
        out["system"] = system
    out["code"] = code
    if display:
        out["display"] = display
    return out
