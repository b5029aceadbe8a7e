"""The CapabilityStatement: what this server does, generated from the same parameter table
the search code runs on, so the statement cannot drift from the behaviour."""

from __future__ import annotations

from datetime import datetime

from engine import __version__
from engine.fhir import audit_event  # noqa: F401 - registers the AuditEvent search parameters
from engine.fhir.search import PARAMS, Param

_INTERACTIONS = {
    "Patient": ("read", "search-type"),
    "Encounter": ("read", "search-type", "create", "update"),
    "AuditEvent": ("read", "search-type"),
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
}


def _search_param(param: Param) -> dict:
    return {"name": param.name, "type": param.type, "documentation": param.doc}


def capability_statement(published: datetime, base_url: str) -> dict:
    resources = []
    for name, interactions in _INTERACTIONS.items():
        resources.append({
            "type": name,
            "profile": f"http://hl7.org/fhir/StructureDefinition/{name}",
            "documentation": _DOCS[name],
            "interaction": [{"code": code} for code in interactions],
            "versioning": "versioned",
            "readHistory": False,
            "updateCreate": False,
            "conditionalCreate": False,
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
            "searchParam": [_search_param(p) for p in PARAMS[name].values()],
        })
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
                             "Encounter, Condition and Coverage entries.",
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
            "interaction": [{"code": "transaction",
                             "documentation": "Patient, Encounter, Condition and Coverage "
                                              "entries, linked by urn:uuid fullUrls; applied "
                                              "all or nothing."}],
        }],
    }
