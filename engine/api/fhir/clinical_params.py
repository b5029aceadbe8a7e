"""The search parameters of Patient and Encounter (the router makes them searchable)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, false, or_

from engine.api.fhir.search import (
    Param,
    by_id,
    date_range,
    period,
    reference,
    string,
    token,
    unused_code,
)
from engine.core.errors import InvalidInput, Malformed
from engine.fhir import value_sets
from engine.fhir import vocabulary as v
from engine.storage.models import Encounter, LocationStay, Patient, PatientIdentifier


# -- Patient -----------------------------------------------------------------------------------
def _patient_identifier(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, value = token(text)
    conds = [PatientIdentifier.patient_id == Patient.id, PatientIdentifier.value == value]
    if system is not None:
        conds.append(PatientIdentifier.system == (v.authority_of(system) or ""))
    return exists().where(*conds)


def _gender(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    codes = [sex for sex, gender in v.GENDER_BY_SEX.items() if gender == text]
    if not codes:
        raise InvalidInput(f"gender={text!r}: use male, female, other or unknown")
    return Patient.sex.in_(codes)


def _birthdate(text: str, _modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
    if "T" in text:
        raise Malformed("birthdate is a date: use [prefix]YYYY[-MM[-DD]]")
    prefix, low_dt, high_dt = date_range("birthdate", text, zone)
    low, high, born = low_dt.date(), high_dt.date(), Patient.birth_date
    return {
        "eq": and_(born >= low, born < high),
        "ne": or_(born < low, born >= high),
        "gt": born >= high,
        "sa": born >= high,
        "ge": born >= low,
        "lt": born < low,
        "eb": born < low,
        "le": born < high,
    }[prefix]


PATIENT_PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("_id", "token", "Logical id of the patient", by_id(Patient, "Patient")),
    Param("identifier", "token", "An identifier, [system|]value; the MRN system is "
          "urn:engine:id:<assigning authority>", _patient_identifier),
    Param("name", "string", "Family, given or middle name (starts with, any case)",
          string(Patient.family, Patient.given, Patient.middle), ("exact", "contains")),
    Param("family", "string", "Family name (starts with, any case)", string(Patient.family),
          ("exact", "contains")),
    Param("given", "string", "Given or middle name (starts with, any case)",
          string(Patient.given, Patient.middle), ("exact", "contains")),
    Param("birthdate", "date", "Date of birth, with prefixes eq ne gt ge lt le sa eb",
          _birthdate),
    Param("gender", "token", "male | female | other | unknown", _gender),
)}


# -- Encounter ---------------------------------------------------------------------------------
def _encounter_identifier(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, value = token(text)
    cond = Encounter.visit_number == value
    if system is not None:
        cond = and_(cond, Encounter.visit_system == (v.authority_of(system) or ""))
    return cond


_patient_ref = reference(Encounter.patient_id, "Patient")


def _status(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    code = token(text)[1]
    stored = v.STATUS_IN.get(code)  # FHIR's finer states fold the way input folds them
    if stored is None:
        return unused_code("status", code, v.STATUS_IN, value_sets.ENCOUNTER_STATUS)
    return Encounter.status == stored


def _class(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    system, code = token(text)
    if system not in (None, "", v.V3_ACT_CODE):
        return false()  # the binding is extensible; no class of another system is kept
    care_status = v.CARE_STATUS_BY_CLASS.get(code)
    if care_status is None:
        return unused_code("class", code, sorted(v.CARE_STATUS_BY_CLASS),
                           value_sets.ENCOUNTER_CLASS)
    return Encounter.care_status == care_status


def _location(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    unit = text.removeprefix("Location/")
    return exists().where(LocationStay.encounter_id == Encounter.id,
                          LocationStay.cancelled.is_(False), LocationStay.unit == unit)


ENCOUNTER_PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("_id", "token", "Logical id of the encounter", by_id(Encounter, "Encounter")),
    Param("identifier", "token", "Visit number, [system|]value (system "
          "urn:engine:id:<assigning authority>)", _encounter_identifier),
    Param("patient", "reference", "The patient: Patient/<id> or <id>", _patient_ref),
    Param("subject", "reference", "Same as patient", _patient_ref),
    Param("status", "token", "planned | in-progress | onleave | finished | cancelled",
          _status),
    Param("class", "token", "v3-ActCode: IMP inpatient, OBSENC observation, EMER emergency, "
          "AMB outpatient, PRENC pre-admission", _class),
    Param("location", "reference", "A unit (nursing unit name, e.g. 4WEST) the patient was "
          "in at any time during the encounter", _location),
    Param("date", "date", "The period (admission to discharge), with prefixes eq ne gt ge lt "
          "le sa eb; open-ended while in hospital",
          period(Encounter.admit_time, Encounter.discharge_time)),
)}
