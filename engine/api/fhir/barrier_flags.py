"""Discharge barriers as FHIR Flag, served in the same Flag search as the rules' flags.

Category urn:engine:flag-category|discharge-barrier; code the delay reason
(urn:engine:delay-reason) with the site's words, and the person's own text; status active
while open, inactive once resolved, entered-in-error when voided; period opened..resolved;
author the person who opened it. Ids are `barrier-<n>` (the rules' flags keep numeric ids).
"""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir.ur_observations import DELAY_SYSTEM, person
from engine.rules.reference import DelayReason
from engine.storage.models import Barrier

FLAG_CATEGORY = "urn:engine:flag-category"
BARRIER_PREFIX = "barrier-"
OWNER_EXTENSION = "urn:engine:fhir:StructureDefinition:barrier-owner"


def barrier_status(row: Barrier) -> str:
    if row.voided_at is not None:
        return "entered-in-error"
    return "inactive" if row.resolved_at is not None else "active"


def barrier_flag(row: Barrier, patient_id: int, reasons: dict[str, DelayReason]) -> dict:
    known = reasons.get(row.reason_code)
    coding = {"system": DELAY_SYSTEM, "code": row.reason_code}
    if known:
        coding["display"] = known.text
    out: dict = {"resourceType": "Flag", "id": f"{BARRIER_PREFIX}{row.id}",
                 "meta": resources.meta(row.version, row.updated_at)}
    if row.owner:
        out["extension"] = [{"url": OWNER_EXTENSION, "valueReference": person(row.owner)}]
    out["status"] = barrier_status(row)
    out["category"] = [{"coding": [{"system": FLAG_CATEGORY, "code": "discharge-barrier",
                                    "display": "Discharge barrier"}]}]
    out["code"] = {"coding": [coding],
                   "text": row.text or (known.text if known else row.reason_code)}
    out["subject"] = {"reference": f"Patient/{patient_id}"}
    out["period"] = {"start": resources.instant(row.opened_at)}
    if row.resolved_at is not None:
        out["period"]["end"] = resources.instant(row.resolved_at)
    out["encounter"] = {"reference": f"Encounter/{row.encounter_id}"}
    out["author"] = person(row.opened_by)
    return out
