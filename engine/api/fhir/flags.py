"""Flags raised by the rules (complex patient, readmission risk, social risk) as FHIR Flag."""

from __future__ import annotations

from engine.api.fhir import resources
from engine.api.fhir import rule_outputs as ro
from engine.core.vocabulary import OutputKind, OutputStatus
from engine.fhir import value_sets
from engine.storage.models import RuleOutput

FLAG_SYSTEM = "urn:engine:flag"
SEVERITY_EXTENSION = "urn:engine:fhir:StructureDefinition:flag-severity"
STATUS = {"active": (OutputStatus.ACTIVE,),
          "inactive": (OutputStatus.CANCELLED, OutputStatus.COMPLETED)}


def flag(row: RuleOutput) -> dict:
    out = ro.head(row, "Flag", ro.fhir_status(STATUS, row.status),
                  {"code": ro.coded(FLAG_SYSTEM, row.code, row.title)})
    out["period"] = {"start": resources.instant(row.fired_at)}
    if row.ended_at is not None:
        out["period"]["end"] = resources.instant(row.ended_at)
    if row.severity:
        out["extension"].append({"url": SEVERITY_EXTENSION, "valueCode": row.severity})
    return out


FLAG = ro.OutputResource(
    name="Flag", kind=OutputKind.FLAG,
    doc="Flags the rules raise on a stay (complex patient, readmission risk...): active "
        "while the rule holds, inactive (with period.end) once it stopped holding.",
    params=ro.output_params(STATUS, value_sets.FLAG_STATUS, "code", f"The flag ({FLAG_SYSTEM})"),
    render=ro.per_row(flag),
)
