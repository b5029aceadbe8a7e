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

SEARCH_DOC = (
    "Search (GET [type]?... or POST [type]/_search with a form-encoded body) is lenient, as "
    "FHIR asks: unknown or unsupported parameters are ignored and the Bundle's self link "
    "shows only those used; send Prefer: handling=strict to have them refused (400). A "
    "value a parameter cannot read, a code outside its FHIR value set and an unsupported "
    "modifier are always refused (400); a code of the value set that is never kept here "
    "matches nothing. Every type takes _lastUpdated (poll with _lastUpdated=gt<instant>"
    "&_sort=_lastUpdated), _count (default 50, at most 500; pages link to next/previous), "
    "_total, _summary=count, _elements (SUBSETTED) and _pretty.")

_INTERACTIONS = {
    "Patient": ("read", "vread", "search-type"),
    "Encounter": ("read", "vread", "search-type", "create", "update"),
    "AuditEvent": ("read", "search-type"),
    "Observation": ("create", "read", "search-type"),
    "Flag": ("read", "search-type"),
    "ClaimResponse": ("read", "vread", "search-type", "create", "update"),
    "Communication": ("read", "vread", "search-type", "create"),
}
# Only the current version of a resource is kept: vread answers it, older versions are 404.
# Updates check If-Match where the server offers them (versioned-update).
_VERSIONING = {"Observation": "no-version"}
_CONDITIONAL_CREATE = frozenset({"Encounter"})
_DOCS = {
    "Patient": "Patients known from ADT feeds and FHIR transactions. Merged patients "
               "(A40) stay readable with active=false and a replaced-by link.",
    "Encounter": "Hospital encounters. Create and update enter the same path as HL7 ADT: "
                 "the visit number (identifier) is required and identifies the encounter; "
                 "updates merge (absent elements keep their value); diagnoses are contained "
                 "Conditions. PUT honours If-Match (W/\"n\" or \"n\"; 412 when stale); "
                 "POST honours If-None-Exist (0 matches: create, 1: that Encounter "
                 "unchanged, 200; more: 412). vread answers the current version only. "
                 "Writes honour Prefer: return=minimal|representation|OperationOutcome.",
    "AuditEvent": "The audit trail: every read, search and change of patient data, every "
                  "refused request and every sign-in, with who, what, when and the outcome. "
                  "Administrators only.",
    "Observation": "Lab results for the readmission scores: LOINC 718-7 hemoglobin (g/dL or "
                   "g/L) and 2951-2 sodium (mmol/L or mEq/L) as valueQuantity, with "
                   "effective[x]; other codes are acknowledged (200, an OperationOutcome "
                   "of severity information) and not kept. The same path as HL7 ORU^R01; "
                   "entered-in-error withdraws a result. Read answers a kept result (where "
                   "the create's Location points); no versions, no conditional create. "
                   "Prefer: return=representation answers the kept result. "
                   "The UR record reads (and searches) as Observation too: a utilization "
                   "review (id review-<n>, code urn:engine:ur-record|utilization-review, "
                   "valueCodeableConcept the determination, components level of care, "
                   "criteria set, next review, physician advisor, condition code 44; status "
                   "final, amended once corrected, entered-in-error when voided) and an "
                   "avoidable day or run (id avoidable-day-<n>, code "
                   "urn:engine:ur-record|avoidable-day, effectivePeriod, valueCodeableConcept "
                   "the delay reason urn:engine:delay-reason; status preliminary proposed, "
                   "final confirmed, cancelled rejected, entered-in-error voided). Search "
                   "serves all three (lab results keep their numeric ids).",
    "Flag": "Flags the rules raise on a stay (complex patient, readmission risk...): active "
            "while the rule holds, inactive (with period.end) once it stopped holding; and "
            "the stay's discharge barriers (id barrier-<n>, category urn:engine:flag-category"
            "|discharge-barrier, code the delay reason urn:engine:delay-reason; active while "
            "open, inactive once resolved, entered-in-error when voided; period opened.."
            "resolved; author who opened it), in one search paged together.",
    "ClaimResponse": "Payer authorizations of a stay (use preauthorization): identifier "
                     "(urn:engine:payer-authorization) and preAuthRef the payer's number (the "
                     "identifier search matches it), preAuthPeriod the approved days whatever "
                     "the status, outcome queued (pending), complete (approved or denied), "
                     "partial; the stay in the extension urn:engine:fhir:StructureDefinition:"
                     "encounter; the engine's values (status, level of care, denial, "
                     "peer-to-peer, appeal) as sub-extensions of urn:engine:fhir:"
                     "StructureDefinition:authorization. A denial is only the status "
                     "sub-extension denied (complete without a period, approved days or that "
                     "status is a 422). POST is keyed by the stay and preAuthRef: a number on "
                     "file is merged (200; only what is sent changes, the payer is kept "
                     "without insurer). PUT replaces status, preAuthRef, insurer and "
                     "preAuthPeriod (with approved days), and the engine's values only when the "
                     "authorization extension is sent; it honours If-Match (412 when stale); "
                     "status entered-in-error voids. Writes need ur:write; a value the record "
                     "refuses is a 422 whose OperationOutcome expression names the element.",
    "Communication": "Exchanges with the payer about an authorization (about ClaimResponse/"
                     "<id>) or a stay: category urn:engine:payer-communication|outbound or "
                     "inbound, medium the channel (urn:engine:payer-channel, v3 "
                     "ParticipationMode), sent or received, payload the summary. POST (ur:"
                     "write) logs one.",
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
        "versioning": _VERSIONING.get(name, "versioned-update" if "update" in interactions
                                      else "versioned"),
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": name in _CONDITIONAL_CREATE,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [_search_param(p) for p in registry.params(name).values()],
    }


def capability_statement(published: datetime, base_url: str, registry: SearchRegistry) -> dict:
    """The statement; `registry` is the one the server's searches run on."""
    resources = [_resource(registry, name, _DOCS[name], interactions)
                 for name, interactions in _INTERACTIONS.items()]
    for output in OUTPUTS:
        if output.name in _INTERACTIONS:  # Flag: served with the barriers (above)
            continue
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
            "documentation": SEARCH_DOC + " Transaction Bundles may carry Patient, "
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
