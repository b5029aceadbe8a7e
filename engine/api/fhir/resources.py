"""Engine state as FHIR R4 Patient and Encounter JSON, built as plain dicts.

Lab results read back as Observations (the row the engine keeps: code, value in the
engine's unit, effective time), so the Location of an Observation create resolves.

Search pages serialise dozens of these per request, so they are dicts (a few microseconds)
rather than fhir.resources models (hundreds); tests validate every shape against the R4B
models. Location references are display-only (we keep no Location resources) plus an
identifier with the HL7 location components; diagnoses are contained Conditions, because
the engine stores them as part of the encounter, not as resources of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from engine.core.vocabulary import EncounterStatus
from engine.fhir import vocabulary as v
from engine.storage.models import (
    Diagnosis,
    Encounter,
    LabResult,
    LocationStay,
    Patient,
    StatusPeriod,
)

UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# A result's status as sent (HL7 OBX-11 or the Observation's own) -> FHIR Observation.status
RESULT_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary",
                  "A": "amended", "S": "preliminary", "I": "registered"}

_DATE_WIDTH = {"year": 4, "month": 7, "day": 10}  # characters of an ISO date at each precision


def instant(when: datetime) -> str:
    """A FHIR instant in UTC with milliseconds (`2026-03-02T16:15:00.000Z`)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def etag(version: int) -> str:
    return f'W/"{version}"'


def meta(version: int, updated_at: datetime) -> dict:
    return {"versionId": str(version), "lastUpdated": instant(updated_at)}


def _identifier(system: str, value: str, type_code: str | None, use: str | None = None,
                namespace: str | None = None) -> dict:
    out: dict = {}
    if use:
        out["use"] = use
    if type_code:
        out["type"] = {"coding": [v.coding(v.V2_IDENTIFIER_TYPE, type_code)]}
    if system:
        out["system"] = v.identifier_system(system)
    out["value"] = value
    assigner = namespace or (system if system and ":" not in system else None)
    if assigner:
        out["assigner"] = {"display": assigner}
    return out


def _address(address: dict) -> dict | None:
    lines = [address[k] for k in ("line", "line2") if address.get(k)]
    out: dict = {"line": lines} if lines else {}
    for key, name in (("city", "city"), ("state", "state"), ("postal_code", "postalCode"),
                      ("country", "country")):
        if address.get(key):
            out[name] = address[key]
    return out or None


def patient(row: Patient, replaces: list[int] | None = None) -> dict:
    """Patient JSON; `replaces` lists patients merged into this one (A40)."""
    out: dict = {"resourceType": "Patient", "id": str(row.id), "meta": meta(row.version,
                                                                            row.updated_at)}
    idents = [_identifier(i.system, i.value, i.type_code, "usual" if i.is_mrn else None,
                          i.namespace)
              for i in sorted(row.identifiers, key=lambda i: (not i.is_mrn, i.id or 0))]
    if idents:
        out["identifier"] = idents
    out["active"] = row.merged_into_id is None and row.active is not False  # A40, A29
    given = [g for g in (row.given, row.middle) if g]
    if row.family or given:
        name: dict = {"use": "official"}
        if row.family:
            name["family"] = row.family
        if given:
            name["given"] = given
        out["name"] = [name]
    if row.sex:
        out["gender"] = v.GENDER_BY_SEX.get(row.sex, "unknown")
    if row.birth_date:
        # As precise as it was sent: `1950`, `1950-03` or `1950-03-12`.
        out["birthDate"] = row.birth_date.isoformat()[:_DATE_WIDTH.get(
            row.birth_precision or "day", 10)]
    if row.address and (address := _address(row.address)):
        out["address"] = [address]
    links = []
    if row.merged_into_id is not None:
        links.append({"other": {"reference": f"Patient/{row.merged_into_id}"},
                      "type": "replaced-by"})
    links += [{"other": {"reference": f"Patient/{other}"}, "type": "replaces"}
              for other in replaces or ()]
    if links:
        out["link"] = links
    return out


def _period(start: datetime | None, end: datetime | None) -> dict | None:
    out = {}
    if start is not None:
        out["start"] = instant(start)
    if end is not None:
        out["end"] = instant(end)
    return out or None


def location_display(stay: LocationStay) -> str:
    place = "-".join(p for p in (stay.room, stay.bed) if p)
    return " ".join(p for p in (stay.unit, place) if p)


def location_components(stay: LocationStay) -> str:
    return "^".join(p or "" for p in (stay.unit, stay.room, stay.bed, stay.facility)).rstrip("^")


def _location(stay: LocationStay, closed: bool) -> dict:
    out: dict = {
        "location": {
            "identifier": {"system": v.LOCATION_SYSTEM, "value": location_components(stay)},
            "display": location_display(stay),
        },
        "status": "completed" if stay.end is not None or closed else "active",
    }
    if period := _period(stay.start, stay.end):
        out["period"] = period
    return out


def _class(care_status: str | None) -> dict:
    if care_status in v.CLASS_BY_CARE_STATUS:
        code, display = v.CLASS_BY_CARE_STATUS[care_status]
        return v.coding(v.V3_ACT_CODE, code, display)
    return v.coding(v.V3_NULL_FLAVOR, "UNK", "unknown")


def _class_history(periods: list[StatusPeriod]) -> list[dict]:
    out = []
    for p in sorted((p for p in periods if not p.cancelled), key=lambda p: p.start):
        out.append({"class": _class(p.care_status), "period": _period(p.start, p.end)})
    return out


def _condition(dx: Diagnosis, local_id: str, patient_id: int) -> dict:
    code = v.coding(v.DIAGNOSIS_SYSTEM_URI.get(dx.system or ""), dx.code, dx.display)
    concept: dict = {"coding": [code]}
    if dx.display:
        concept["text"] = dx.display
    return {
        "resourceType": "Condition",
        "id": local_id,
        "category": [{"coding": [v.coding(v.CONDITION_CATEGORY, "encounter-diagnosis",
                                          "Encounter Diagnosis")]}],
        "code": concept,
        "subject": {"reference": f"Patient/{patient_id}"},
    }


def _diagnosis_use(diagnosis_type: str | None) -> dict | None:
    if diagnosis_type in v.ROLE_BY_DIAGNOSIS_TYPE:
        code, display = v.ROLE_BY_DIAGNOSIS_TYPE[diagnosis_type]
        return {"coding": [v.coding(v.DIAGNOSIS_ROLE, code, display)]}
    if diagnosis_type:
        return {"text": v.DIAGNOSIS_TYPE_TEXT.get(diagnosis_type, diagnosis_type)}
    return None


def _admit_source(code: str) -> dict:
    codings = [v.coding(v.V2_ADMIT_SOURCE, code)]
    if code in v.ADMIT_SOURCE_BY_V2:
        codings.append(v.coding(v.ADMIT_SOURCE, v.ADMIT_SOURCE_BY_V2[code]))
    return {"coding": codings}


def _disposition(code: str) -> dict:
    codings = []
    if code.isdigit():
        codings.append(v.coding(v.NUBC_DISCHARGE, code))
        if code in v.DISPOSITION_BY_NUBC:
            codings.append(v.coding(v.DISCHARGE_DISPOSITION, v.DISPOSITION_BY_NUBC[code]))
    elif code in v.NUBC_BY_DISPOSITION or code in ("oth", "alt-home", "other-hcf"):
        codings.append(v.coding(v.DISCHARGE_DISPOSITION, code))
    else:
        return {"text": code}
    return {"coding": codings}


def encounter(row: Encounter) -> dict:
    """Encounter JSON: status, class, period, location and class history, diagnoses."""
    out: dict = {
        "resourceType": "Encounter",
        "id": str(row.id),
        "meta": meta(row.version, row.updated_at),
    }
    conditions = [_condition(dx, f"dx{i}", row.patient_id)
                  for i, dx in enumerate(row.diagnoses, 1)]
    if conditions:
        out["contained"] = conditions
    out["identifier"] = [_identifier(row.visit_system, row.visit_number, "VN", "official")]
    out["status"] = row.status
    out["class"] = _class(row.care_status)
    if history := _class_history(row.status_periods):
        out["classHistory"] = history
    if row.hospital_service:
        out["serviceType"] = {"coding": [v.coding(v.V2_HOSPITAL_SERVICE, row.hospital_service)]}
    out["subject"] = {"reference": f"Patient/{row.patient_id}"}
    if row.attending_id or row.attending_name:
        individual: dict = {}
        if row.attending_id:
            individual["identifier"] = {"value": row.attending_id}
        if row.attending_name:
            individual["display"] = row.attending_name
        out["participant"] = [{
            "type": [{"coding": [v.coding(v.V3_PARTICIPATION, "ATND", "attender")]}],
            "individual": individual,
        }]
    if period := _period(row.admit_time, row.discharge_time):
        out["period"] = period
    if conditions:
        diagnoses = []
        for dx, cond in zip(row.diagnoses, conditions, strict=True):
            entry: dict = {"condition": {"reference": f"#{cond['id']}"}}
            if use := _diagnosis_use(dx.diagnosis_type):
                entry["use"] = use
            if dx.sequence and dx.sequence > 0:
                entry["rank"] = dx.sequence
            diagnoses.append(entry)
        out["diagnosis"] = diagnoses
    hospitalization = {}
    if row.admit_source:
        hospitalization["admitSource"] = _admit_source(row.admit_source)
    if row.discharge_disposition:
        hospitalization["dischargeDisposition"] = _disposition(row.discharge_disposition)
    if hospitalization:
        out["hospitalization"] = hospitalization
    closed = row.status in (EncounterStatus.FINISHED, EncounterStatus.CANCELLED)
    locations = [_location(s, closed) for s in sorted(row.locations, key=lambda s: s.start)
                 if not s.cancelled and (s.unit or s.room or s.bed)]
    if locations:
        out["location"] = locations
    return out


def observation(row: LabResult, encounter_id: int | None = None) -> dict:
    """A kept lab result as an Observation; it has no versions (meta.lastUpdated only)."""
    status = row.status if row.status in v.OBSERVATION_STATUSES else \
        RESULT_STATUS.get(row.status or "", "final")
    out: dict = {
        "resourceType": "Observation",
        "id": str(row.id),
        "meta": {"lastUpdated": instant(row.recorded_at)},
        "status": status,
        "category": [{"coding": [v.coding(OBSERVATION_CATEGORY, "laboratory", "Laboratory")]}],
        "code": {"coding": [v.coding(v.LOINC, row.code)], "text": row.name},
        "subject": {"reference": f"Patient/{row.patient_id}"},
    }
    if encounter_id is not None:
        out["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    out["effectiveDateTime"] = instant(row.effective_at)
    out["issued"] = instant(row.recorded_at)
    out["valueQuantity"] = {"value": row.value, "unit": row.unit, "system": UCUM,
                            "code": row.unit}
    return out
