"""Proposed next levels of care (IRF, SNF, home health...) as FHIR ServiceRequest with
intent=proposal: the transition, the reasons, and the rules' confidence."""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir import rule_outputs as ro
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.fhir import value_sets
from engine.storage.models import RuleOutput

TRANSITION_SYSTEM = "urn:engine:transition"
STATUS = {"active": (OutputStatus.ACTIVE,), "revoked": (OutputStatus.CANCELLED,),
          "completed": (OutputStatus.COMPLETED,)}


def service_request(row: RuleOutput) -> dict:
    detail = row.detail or {}
    out = ro.head(row, "ServiceRequest", ro.fhir_status(STATUS, row.status),
                  {"intent": "proposal",
                   "code": ro.coded(TRANSITION_SYSTEM, row.code, row.title)})
    out["authoredOn"] = resources.instant(row.fired_at)
    if reasons := detail.get("reasons"):
        out["reasonCode"] = [{"text": str(r)} for r in reasons]
    if detail.get("confidence"):
        out["note"] = [{"text": f"confidence: {detail['confidence']}"}]
    return out


PROPOSAL = ro.OutputResource(
    name="ServiceRequest", kind=OutputKind.PROPOSAL,
    doc="Proposed transitions of care (intent=proposal): code the transition (irf, snf, "
        "home_health, outpatient_followup, home, hospice, ltach), reasonCode the reasons, "
        "note the confidence. Revoked when the rules stop proposing it.",
    params=ro.output_params(STATUS, value_sets.REQUEST_STATUS, "code",
                            f"The transition ({TRANSITION_SYSTEM})"),
    render=ro.per_row(service_request),
)
