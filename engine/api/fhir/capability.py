"""The CapabilityStatement: what this server does, generated from the same search registry
the search code runs on, so the statement cannot drift from the behaviour."""

from __future__ import annotations

from datetime import datetime

from engine import __version__
from engine.api.fhir import flags, proposals, risk, tasks
from engine.api.fhir.rule_outputs import OutputResource
from engine.api.fhir.search import Param, SearchRegistry

# The rule-output resources this server serves (the router adds their routes from it).
OUTPUTS: tuple[OutputResource, ...] = (tasks.TASK, flags.FLAG, risk.RISK, proposals.PROPOSAL)

_INTERACTIONS = {
    "Patient": ("read", "search-type"),
    "Encounter": ("read", "search-type", "create", "update"),
    "AuditEvent": ("read", "search-type"),
    "Observation": ("create",),
}
_DOCS = {
    "Patient": "Patients known from ADT feeds and FHIR transactions. Merged patients "
               "(A40) stay readable with active=false and a replaced-by link.",
    "Encounter": "Hospital encounters. Create and update enter the same path as HL7 ADT: "
                 "the visit number (identifier) is required and identifies the encounter; "
                 "updates merge (absent elements keep their value); diagnoses are contained "
                 "Conditions.",
    "AuditEvent": "The audit trail: every read, search and change of patient data, every "
                  "refused request and every sign-in, with who, what, when and the outcome. "
                  "Administrators only.",
    "Observation": "Lab results for the readmission scores: LOINC 718-7 hemoglobin (g/dL or "
                   "g/L) and 2951-2 sodium (mmol/L or mEq/L) as valueQuantity, with "
                   "effective[x]; other codes are acknowledged and not kept. The same path "
                   "as HL7 ORU^R01; entered-in-error withdraws a result.",
}


def _search_param(param: Param) -> dict:
    return {"name": param.name, "type": param.type, "documentation": param.doc}


def _resource(registry: SearchRegistry, name: str, doc: str,
              interactions: tuple[str, ...]) -> dict:
    return {
        "type": name,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
        "documentation": doc,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [_search_param(p) for p in registry.params(name).values()],
    }


def capability_statement(published: datetime, base_url: str, registry: SearchRegistry) -> dict:
    """The statement; `registry` is the one the server's searches run on."""
    resources = [_resource(registry, name, _DOCS[name], interactions)
                 for name, interactions in _INTERACTIONS.items()]
    for output in OUTPUTS:
        entry = _resource(registry, output.name, output.doc, output.interactions)
        if output.includes:
            entry["searchInclude"] = list(output.includes)
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published.date().isoformat(),
        "publisher": "Discharge-planning engine",
        "kind": "instance",
        "software": {"name": "engine", "version": __version__},
        "implementation": {
            "description": "Discharge-planning and utilization-review engine: FHIR R4 API",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search is strict: unknown parameters are refused (400). Pages "
                             "default to 50 entries (_count, at most 500) and link to the "
                             "next/previous page. Transaction Bundles may carry Patient, "
                             "Encounter, Condition, Coverage and Observation entries.",
            "security": {
                "cors": False,
                "service": [{"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                    "code": "OAuth", "display": "OAuth"}]}],
                "description": "Every interaction except this statement needs "
                               "Authorization: Bearer <token>, from POST /auth/token "
                               "(OAuth2 client credentials for systems, password for "
                               "people). What a token may do follows its role and scope.",
            },
            "resource": resources,
            "interaction": [
                {"code": "transaction",
                 "documentation": "Entries of any type, linked by fullUrl (urn:uuid or "
                                  "absolute), Type/id or identifier. Patient, Encounter, "
                                  "Condition, Coverage and Observation are applied; the "
                                  "attending, location and payer are read from Practitioner, "
                                  "Location and Organization entries; every other entry is "
                                  "acknowledged as not kept. Applied all or nothing."},
                {"code": "batch",
                 "documentation": "As transaction, but each entry is answered on its own in "
                                  "the batch-response: one refused entry leaves the others "
                                  "applied."}],
        }],
    }
