"""Scores (LACE, HOSPITAL) as FHIR RiskAssessment: the value, whether it is high, and the
components it was computed from."""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir import rule_outputs as ro
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.fhir import value_sets
from engine.storage.models import RuleOutput

SCORE_SYSTEM = "urn:engine:score"
SCORE_VALUE_EXTENSION = "urn:engine:fhir:StructureDefinition:score-value"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
STATUS = {"final": (OutputStatus.ACTIVE,),
          "cancelled": (OutputStatus.CANCELLED, OutputStatus.COMPLETED)}


def _prediction(row: RuleOutput) -> dict:
    detail = row.detail or {}
    out: dict = {}
    if row.value is None:
        return out
    out["extension"] = [{"url": SCORE_VALUE_EXTENSION, "valueDecimal": row.value}]
    high_at = detail.get("high_at")
    out["rationale"] = f"{row.code} {row.value:g}"
    if high_at is not None:
        level = "high" if detail.get("high") else "low"
        out["qualitativeRisk"] = {"coding": [{"system": RISK_PROBABILITY, "code": level}]}
        out["rationale"] += f"; high risk at {high_at:g} or more"
    return out


def risk_assessment(row: RuleOutput) -> dict:
    components = (row.detail or {}).get("components") or {}
    out = ro.head(row, "RiskAssessment", ro.fhir_status(STATUS, row.status),
                  {"method": ro.coded(SCORE_SYSTEM, row.code, row.title)})
    out["occurrenceDateTime"] = resources.instant(row.updated_at)
    if components:
        out["basis"] = [{"display": f"{name}: {ro.fact_text(components[name])}"}
                        for name in sorted(components)]
    if prediction := _prediction(row):
        out["prediction"] = [prediction]
    return out


RISK = ro.OutputResource(
    name="RiskAssessment", kind=OutputKind.SCORE,
    doc="Scores the rules compute (LACE, HOSPITAL): the value (extension score-value), "
        "qualitativeRisk high or low against the score's threshold, basis its components. "
        "Search `method` by score name (lace, hospital).",
    params=ro.output_params(STATUS, value_sets.OBSERVATION_STATUS, "method",
                            f"The score ({SCORE_SYSTEM})"),
    render=ro.per_row(risk_assessment),
)
