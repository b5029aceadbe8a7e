"""The search parameters of the UR record's resources, and their parts in the registry.

The record's tables name the stay, not the patient: `patient` and `patient.identifier` go
through the stay (encounter_id IN the patient's encounters). Observation is two parts
(reviews, avoidable days) and Flag two (the rules' flags, barriers) with the same parameter
names, searched together (engine.api.fhir.search.mixed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from engine.api.fhir import identifier_params, search
from engine.api.fhir.barrier_flags import BARRIER_PREFIX
from engine.api.fhir.claim_responses import AUTH_NUMBER_SYSTEM, OUTCOME
from engine.api.fhir.resources import RESULT_STATUS
from engine.api.fhir.search import Param
from engine.api.fhir.search.mixed import Part
from engine.api.fhir.ur_observations import (
    AVOIDABLE_CODE,
    AVOIDABLE_PREFIX,
    AVOIDABLE_STATUS,
    REVIEW_CODE,
    REVIEW_PREFIX,
)
from engine.core.errors import InvalidInput
from engine.fhir import value_sets
from engine.fhir.vocabulary import LOINC
from engine.storage.models import (
    AvoidableDay,
    Barrier,
    Encounter,
    LabResult,
    PayerAuthorization,
    PayerCommunication,
    UtilizationReview,
)

OBSERVATION_PARTS = (Part("Observation"), Part("Observation/avoidable-day"),
                     Part("Observation/lab"))
FLAG_PARTS = (Part("Flag"), Part("Flag/barrier"))
CLAIM_STATUS = ("active", "cancelled", "draft", "entered-in-error")
COMMUNICATION_STATUS = ("preparation", "in-progress", "not-done", "on-hold", "stopped",
                        "completed", "entered-in-error", "unknown")
CLAIM_OUTCOME = ("queued", "complete", "error", "partial")
Condition = Callable[[str], ColumnElement[bool]]


def _prefixed_id(model: Any, prefix: str) -> Param:
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        rest = text.rpartition("/")[2]
        ident = search.row_id(rest.removeprefix(prefix)) if rest.startswith(prefix) or \
            not prefix else None
        return model.id == ident if ident is not None else false()

    return Param("_id", "token", f"Logical id ({prefix}<n>)" if prefix else "Logical id", build)


def _through_stay(stay: Any, build: search.Build) -> search.Build:
    """A condition on the patient, asked of the stay the record belongs to."""
    def on_stay(text: str, modifier: str | None, zone: ZoneInfo) -> ColumnElement[bool]:
        return stay.in_(select(Encounter.id).where(build(text, modifier, zone)))

    return on_stay


def stay_params(model: Any, prefix: str) -> dict[str, Param]:
    """_id, patient, subject (both with :Patient.identifier), patient.identifier,
    subject.identifier and encounter, for a record of a stay."""
    stay = model.encounter_id
    out = {"_id": _prefixed_id(model, prefix)}
    for name, doc in (("patient", "The patient: Patient/<id> or <id>"),
                      ("subject", "Same as patient")):
        param = identifier_params.patient_reference(name, doc, Encounter.patient_id)
        out[name] = Param(name, param.type, param.doc, _through_stay(stay, param.build),
                          param.modifiers)
    for name, param in identifier_params.chained(Encounter.patient_id).items():
        out[name] = Param(name, param.type, param.doc, _through_stay(stay, param.build))
    out["encounter"] = Param("encounter", "reference", "The stay: Encounter/<id> or <id>",
                             search.reference(stay, "Encounter"))
    return out


def status_param(doc: str, by_code: dict[str, Condition], value_set: tuple[str, ...]) -> Param:
    """A token parameter `status` whose codes are conditions; the value set's other codes
    match nothing, any other code is refused."""
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        code = search.token(text)[1]
        if code in by_code:
            return by_code[code](code)
        return search.unused_code("status", code, by_code, value_set)

    return Param("status", "token", doc, build)


def code_param(kind: str) -> Param:
    """Observation `code`: this part's local code (urn:engine:ur-record) or nothing."""
    def build(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        system, code = search.token(text)
        if system not in (None, "", "urn:engine:ur-record"):
            return false()
        return true() if code == kind else false()

    return Param("code", "token", f"urn:engine:ur-record|{REVIEW_CODE} or |{AVOIDABLE_CODE}, "
                 "or a lab result's LOINC code", build)


def _live(model: Any) -> ColumnElement[bool]:
    return model.voided_at.is_(None)


def _void(model: Any) -> Condition:
    return lambda _c: model.voided_at.isnot(None)


def review_params(model: Any) -> dict[str, Param]:
    status = status_param("final | amended (corrected) | entered-in-error (voided)", {
        "final": lambda _c: and_(_live(model), model.version == 1),
        "amended": lambda _c: and_(_live(model), model.version > 1),
        "entered-in-error": _void(model)}, value_sets.OBSERVATION_STATUS)
    return {**stay_params(model, REVIEW_PREFIX), "status": status,
            "code": code_param(REVIEW_CODE)}


def avoidable_params() -> dict[str, Param]:
    def kept_as(fhir: str) -> ColumnElement[bool]:
        kept = next(k for k, f in AVOIDABLE_STATUS.items() if f == fhir)
        return and_(_live(AvoidableDay), AvoidableDay.status == kept)

    by_code: dict[str, Condition] = dict.fromkeys(AVOIDABLE_STATUS.values(), kept_as)
    by_code["entered-in-error"] = _void(AvoidableDay)
    status = status_param("preliminary (proposed) | final (confirmed) | cancelled (rejected) | "
                          "entered-in-error (voided)", by_code, value_sets.OBSERVATION_STATUS)
    return {**stay_params(AvoidableDay, AVOIDABLE_PREFIX), "status": status,
            "code": code_param(AVOIDABLE_CODE)}


def lab_params() -> dict[str, Param]:
    """The lab results the EHR and the ORU feed send (numeric ids), by the same names."""
    def stay(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        ident = search.row_id(text.removeprefix("Encounter/"))
        if ident is None:
            return false()
        return exists().where(Encounter.id == ident,
                              Encounter.visit_system == LabResult.visit_system,
                              Encounter.visit_number == LabResult.visit_number)

    def code(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        system, value = search.token(text)
        if system not in (None, "", LOINC):
            return false()
        return LabResult.code == value

    def kept_as(fhir: str) -> ColumnElement[bool]:
        sent = [fhir, *(c for c, f in RESULT_STATUS.items() if f == fhir)]
        found = LabResult.status.in_(sent)
        return or_(found, LabResult.status.is_(None)) if fhir == "final" else found

    patient = identifier_params.patient_reference("patient", "The patient",
                                                  LabResult.patient_id)
    return {"_id": Param("_id", "token", "Logical id", search.by_id(LabResult, "")),
            "patient": patient,
            "subject": Param("subject", "reference", "Same as patient", patient.build,
                             patient.modifiers),
            **identifier_params.chained(LabResult.patient_id),
            "encounter": Param("encounter", "reference", "The stay", stay),
            "status": status_param("final | preliminary | amended | corrected | registered",
                                   dict.fromkeys(("final", "preliminary", "amended",
                                                  "corrected", "registered"), kept_as),
                                   value_sets.OBSERVATION_STATUS),
            "code": Param("code", "token", "LOINC", code)}


def barrier_params() -> dict[str, Param]:
    status = status_param("active (open) | inactive (resolved) | entered-in-error (voided)", {
        "active": lambda _c: and_(_live(Barrier), Barrier.resolved_at.is_(None)),
        "inactive": lambda _c: and_(_live(Barrier), Barrier.resolved_at.isnot(None)),
        "entered-in-error": _void(Barrier)}, value_sets.FLAG_STATUS)

    def code(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        system, value = search.token(text)
        if system not in (None, "", "urn:engine:delay-reason"):
            return false()
        return Barrier.reason_code == value

    params = stay_params(Barrier, BARRIER_PREFIX)
    return {**params, "status": status,
            "code": Param("code", "token", "The flag (urn:engine:flag) or the barrier's "
                          "delay reason (urn:engine:delay-reason)", code)}


def claim_params() -> dict[str, Param]:
    model = PayerAuthorization
    status = status_param("active | entered-in-error (voided)", {
        "active": lambda _c: _live(model), "entered-in-error": _void(model)}, CLAIM_STATUS)

    def outcome(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        code = search.token(text)[1]
        kept = [s for s, o in OUTCOME.items() if o == code]
        if kept:
            return model.status.in_(kept)
        if code in CLAIM_OUTCOME:
            return false()
        raise InvalidInput(f"outcome={code!r}: use queued, complete, partial or error")

    def identifier(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        system, value = search.token(text)
        if system is not None and system != AUTH_NUMBER_SYSTEM:
            return false()  # the number is rendered under AUTH_NUMBER_SYSTEM only
        return model.reference_number == value

    return {**stay_params(model, ""), "status": status,
            "outcome": Param("outcome", "token", "queued | complete | partial", outcome),
            "identifier": Param("identifier", "token", "The payer's reference number: "
                                f"identifier ({AUTH_NUMBER_SYSTEM}), the same as preAuthRef",
                                identifier)}


def communication_params() -> dict[str, Param]:
    model = PayerCommunication
    status = status_param("completed | entered-in-error (voided)", {
        "completed": lambda _c: _live(model), "entered-in-error": _void(model)},
        COMMUNICATION_STATUS)

    def about(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
        ident = search.row_id(text.rpartition("ClaimResponse/")[2])
        return model.authorization_id == ident if ident is not None else false()

    return {**stay_params(model, ""), "status": status,
            "about": Param("about", "reference", "The authorization: ClaimResponse/<id>",
                           about)}


def add_searches(registry: search.SearchRegistry) -> None:
    """The UR record's types and parts (the rules' Flag part is registered by its output)."""
    registry.add("Observation", UtilizationReview, review_params(UtilizationReview))
    registry.add("Observation/avoidable-day", AvoidableDay, avoidable_params())
    registry.add("Observation/lab", LabResult, lab_params(), updated=LabResult.recorded_at)
    registry.add("Flag/barrier", Barrier, barrier_params())
    registry.add("ClaimResponse", PayerAuthorization, claim_params())
    registry.add("Communication", PayerCommunication, communication_params())

