"""Scores (LACE, HOSPITAL, Charlson) as FHIR RiskAssessment: the value, its published tier
(qualitativeRisk), and the components it was computed from, in words."""

from __future__ import annotations

from typing import Any

from engine.api.fhir import resources
from engine.api.fhir import rule_outputs as ro
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.fhir import value_sets
from engine.rules import score_detail
from engine.storage.models import RuleOutput

SCORE_SYSTEM = "urn:engine:score"
SCORE_VALUE_EXTENSION = "urn:engine:fhir:StructureDefinition:score-value"
RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
STATUS = {"final": (OutputStatus.ACTIVE,),
          "cancelled": (OutputStatus.CANCELLED, OutputStatus.COMPLETED)}


# A published tier's word -> the risk-probability code it is (HOSPITAL's "intermediate" and
# LACE's "moderate" are both the middle band).
TIER_CODES = {"negligible": "negligible", "low": "low", "intermediate": "moderate",
              "moderate": "moderate", "high": "high", "certain": "certain"}
RISK_DISPLAY = {"negligible": "Negligible likelihood", "low": "Low likelihood",
                "moderate": "Moderate likelihood", "high": "High likelihood",
                "certain": "Certain"}


def _qualitative(tier: str) -> dict:
    code = TIER_CODES.get(tier)
    coded: dict[str, Any] = {"text": tier}
    if code is not None:
        coded["coding"] = [{"system": RISK_PROBABILITY, "code": code,
                            "display": RISK_DISPLAY[code]}]
    return coded


def _prediction(row: RuleOutput) -> dict:
    detail = row.detail or {}
    out: dict = {}
    if row.value is None:
        return out
    out["extension"] = [{"url": SCORE_VALUE_EXTENSION, "valueDecimal": row.value}]
    high_at = detail.get("high_at")
    tier = detail.get("tier")
    out["rationale"] = score_detail.score_text(row.code, row.value, detail)
    if tier:
        out["qualitativeRisk"] = _qualitative(tier)
        out["rationale"] += f"; tiers {score_detail.tier_ranges(detail.get('tiers'))}"
    elif high_at is not None:
        level = "high" if detail.get("high") else "low"
        out["qualitativeRisk"] = {"coding": [{"system": RISK_PROBABILITY, "code": level}]}
        out["rationale"] += f"; high risk at {high_at:g} or more"
    return out


def risk_assessment(row: RuleOutput) -> dict:
    parts = score_detail.component_texts(row.detail or {})
    out = ro.head(row, "RiskAssessment", ro.fhir_status(STATUS, row.status),
                  {"method": ro.coded(SCORE_SYSTEM, row.code, row.title)})
    out["occurrenceDateTime"] = resources.instant(row.updated_at)
    if parts:
        out["basis"] = [{"display": text} for text in parts]
    if prediction := _prediction(row):
        out["prediction"] = [prediction]
    return out


RISK = ro.OutputResource(
    name="RiskAssessment", kind=OutputKind.SCORE,
    doc="Scores the rules compute (LACE, HOSPITAL, Charlson): the value (extension "
        "score-value), qualitativeRisk the score's published tier (text: the tier's word; "
        "coding: risk-probability low, moderate or high), basis its components in words. "
        "Search `method` by score name (lace, hospital).",
    params=ro.output_params(STATUS, value_sets.OBSERVATION_STATUS, "method",
                            f"The score ({SCORE_SYSTEM})"),
    render=ro.per_row(risk_assessment),
)
