"""The UR nurse's record as FHIR Observation: a utilization review and an avoidable day (or
run of days).

A review: status final (amended once corrected, entered-in-error when voided); code
urn:engine:ur-record|utilization-review; category survey; effectiveDateTime the review
day; performer the reviewer; valueCodeableConcept the determination (urn:engine:
criteria-result); components the review type, level of care, criteria set, next review
date, physician advisor referral and outcome and condition code 44; note the clinical
summary.

An avoidable day: code urn:engine:ur-record|avoidable-day; status preliminary (proposed by
the engine), final (confirmed), cancelled (rejected), entered-in-error (voided);
effectivePeriod its days; valueCodeableConcept the delay reason (urn:engine:delay-reason)
with its words; components the category and the responsible party.

Lab results keep their numeric ids; these carry prefixed ones (`review-<n>`,
`avoidable-day-<n>`), so the two never collide under one type.
"""

from __future__ import annotations

from datetime import date

from engine.api.fhir import resources
from engine.core import ur_record as codes
from engine.rules.reference import DelayReason
from engine.storage.models import AvoidableDay, UtilizationReview

UR_SYSTEM = "urn:engine:ur-record"
REVIEW_CODE, AVOIDABLE_CODE = "utilization-review", "avoidable-day"
REVIEW_PREFIX, AVOIDABLE_PREFIX = "review-", "avoidable-day-"
COMPONENT_SYSTEM = "urn:engine:ur-component"
CRITERIA_SYSTEM = "urn:engine:criteria-result"
REVIEW_TYPE_SYSTEM = "urn:engine:review-type"
LEVEL_SYSTEM = "urn:engine:level-of-care"
ADVISOR_SYSTEM = "urn:engine:advisor-outcome"
DELAY_SYSTEM = "urn:engine:delay-reason"
CATEGORY_SYSTEM = "urn:engine:delay-category"
PARTY_SYSTEM = "urn:engine:responsible-party"
USER_SYSTEM = "urn:engine:user"
OBSERVATION_CATEGORY = resources.OBSERVATION_CATEGORY
AVOIDABLE_STATUS = {"proposed": "preliminary", "confirmed": "final", "rejected": "cancelled"}


def concept(system: str, code: str, display: str | None = None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def _component(name: str, words: str, **value) -> dict:
    return {"code": concept(COMPONENT_SYSTEM, name, words), **value}


def _day(value: date) -> str:
    return value.isoformat()


def person(name: str, display: str | None = None) -> dict:
    """A logical reference to a user of the engine (as Task.owner names people)."""
    return {"identifier": {"system": USER_SYSTEM, "value": name}, "display": display or name}


def _head(kind: str, rid: str, row: UtilizationReview | AvoidableDay, status: str,
          patient_id: int) -> dict:
    return {"resourceType": "Observation", "id": rid,
            "meta": resources.meta(row.version, row.updated_at), "status": status,
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey",
                                      "display": "Survey"}]}],
            "code": concept(UR_SYSTEM, kind, "Utilization review" if kind == REVIEW_CODE
                            else "Avoidable day"),
            "subject": {"reference": f"Patient/{patient_id}"},
            "encounter": {"reference": f"Encounter/{row.encounter_id}"}}


def review_status(row: UtilizationReview) -> str:
    if row.voided_at is not None:
        return "entered-in-error"
    return "amended" if row.version > 1 else "final"


def review(row: UtilizationReview, patient_id: int) -> dict:
    out = _head(REVIEW_CODE, f"{REVIEW_PREFIX}{row.id}", row, review_status(row), patient_id)
    out["effectiveDateTime"] = _day(row.reviewed_on)
    out["issued"] = resources.instant(row.entered_at)
    out["performer"] = [person(row.reviewer, row.reviewer_display)]
    out["valueCodeableConcept"] = concept(CRITERIA_SYSTEM, row.criteria_result,
                                          codes.words(codes.CRITERIA_RESULTS,
                                                      row.criteria_result))
    if row.clinical_summary:
        out["note"] = [{"text": row.clinical_summary}]
    parts = [
        _component("review-type", "Review type", valueCodeableConcept=concept(
            REVIEW_TYPE_SYSTEM, row.review_type, codes.words(codes.REVIEW_TYPES,
                                                             row.review_type))),
        _component("level-of-care", "Level of care", valueCodeableConcept=concept(
            LEVEL_SYSTEM, row.level_of_care, codes.words(codes.LEVELS_OF_CARE,
                                                         row.level_of_care))),
    ]
    if row.criteria_set:
        parts.append(_component("criteria-set", "Criteria set", valueString=row.criteria_set))
    if row.next_review_on:
        parts.append(_component("next-review", "Next review date",
                                valueDateTime=_day(row.next_review_on)))
    parts.append(_component("advisor-referral", "Physician advisor referral",
                            valueBoolean=bool(row.advisor_referred)))
    if row.advisor_outcome:
        parts.append(_component("advisor-outcome", "Physician advisor outcome",
                                valueCodeableConcept=concept(
                                    ADVISOR_SYSTEM, row.advisor_outcome,
                                    codes.words(codes.ADVISOR_OUTCOMES, row.advisor_outcome))))
    if row.advisor_name:
        parts.append(_component("advisor", "Physician advisor", valueString=row.advisor_name))
    parts.append(_component("condition-code-44", "Condition code 44",
                            valueBoolean=bool(row.condition_code_44)))
    out["component"] = parts
    if row.voided_at is not None and row.void_reason:
        out.setdefault("note", []).append({"text": f"Entered in error: {row.void_reason}"})
    return out


def avoidable_status(row: AvoidableDay) -> str:
    if row.voided_at is not None:
        return "entered-in-error"
    return AVOIDABLE_STATUS.get(row.status, "final")


def avoidable_day(row: AvoidableDay, patient_id: int,
                  reasons: dict[str, DelayReason]) -> dict:
    out = _head(AVOIDABLE_CODE, f"{AVOIDABLE_PREFIX}{row.id}", row, avoidable_status(row),
                patient_id)
    out["effectivePeriod"] = {"start": _day(row.first_day), "end": _day(row.last_day)}
    out["issued"] = resources.instant(row.entered_at)
    if row.decided_by:
        out["performer"] = [person(row.decided_by)]
    known = reasons.get(row.reason_code)
    out["valueCodeableConcept"] = concept(DELAY_SYSTEM, row.reason_code,
                                          known.text if known else None)
    notes = [{"text": row.note}] if row.note else []
    if row.voided_at is not None and row.void_reason:
        notes.append({"text": f"Entered in error: {row.void_reason}"})
    if notes:
        out["note"] = notes
    out["component"] = [
        _component("delay-category", "Delay category", valueCodeableConcept=concept(
            CATEGORY_SYSTEM, row.category, codes.words(codes.DELAY_CATEGORIES, row.category))),
        _component("responsible-party", "Responsible party", valueCodeableConcept=concept(
            PARTY_SYSTEM, row.responsible_party,
            codes.words(codes.RESPONSIBLE_PARTIES, row.responsible_party))),
    ]
    return out
