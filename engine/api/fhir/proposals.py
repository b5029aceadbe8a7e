"""Proposed next levels of care (IRF, SNF, home health...) as FHIR ServiceRequest with
intent=proposal: the transition, the reasons, the rules' confidence, and the proposal's
place in the stay's discharge plan as a category (urn:engine:discharge-plan: primary,
alternative, or chosen once a case manager chose it; completed). Alternatives closed by
that choice are revoked, with the reason in a note."""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir import rule_outputs as ro
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.fhir import value_sets
from engine.storage.models import RuleOutput

TRANSITION_SYSTEM = "urn:engine:transition"
PLAN_SYSTEM = "urn:engine:discharge-plan"
PLAN_TEXT = {"primary": "Primary recommendation", "alternative": "Alternative",
             "chosen": "Chosen disposition"}
STATUS = {"active": (OutputStatus.ACTIVE,), "revoked": (OutputStatus.CANCELLED,),
          "completed": (OutputStatus.COMPLETED,)}


def service_request(row: RuleOutput) -> dict:
    detail = row.detail or {}
    code: dict = {"intent": "proposal"}
    place = "chosen" if detail.get("chosen") else detail.get("plan")
    if place in PLAN_TEXT:
        code["category"] = [ro.coded(PLAN_SYSTEM, place, PLAN_TEXT[place])]
    code["code"] = ro.coded(TRANSITION_SYSTEM, row.code, row.title)
    out = ro.head(row, "ServiceRequest", ro.fhir_status(STATUS, row.status), code)
    out["authoredOn"] = resources.instant(row.fired_at)
    if reasons := detail.get("reasons"):
        out["reasonCode"] = [{"text": str(r)} for r in reasons]
    notes = []
    if detail.get("confidence"):
        notes.append({"text": f"confidence: {detail['confidence']}"})
    if row.status == OutputStatus.CANCELLED and row.end_reason:
        notes.append({"text": f"revoked: {row.end_reason}"})
    if notes:
        out["note"] = notes
    return out


PROPOSAL = ro.OutputResource(
    name="ServiceRequest", kind=OutputKind.PROPOSAL,
    doc="Proposed transitions of care (intent=proposal): code the transition (irf, snf, "
        "home_health, outpatient_followup, home, hospice, ltach), category the place in the "
        f"discharge plan ({PLAN_SYSTEM}: primary, alternative, chosen), reasonCode the "
        "reasons, note the confidence. Completed when chosen as the disposition; revoked "
        "when the rules stop proposing it or another disposition was chosen.",
    params=ro.output_params(STATUS, value_sets.REQUEST_STATUS, "code",
                            f"The transition ({TRANSITION_SYSTEM})"),
    render=ro.per_row(service_request),
)
