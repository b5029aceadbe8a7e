"""FHIR R4 endpoints under /fhir: metadata, Patient and Encounter read, vread and search,
Encounter create and update (If-Match, If-None-Exist), Observation create and read,
transaction Bundles, and what the rules raised: Task (read, search, update, patch), Flag,
RiskAssessment and ServiceRequest (read, search).

Writes honour `Prefer: return=minimal | representation | OperationOutcome` (prefer.py).

Handlers that touch the database are plain `def` (FastAPI runs them in its threadpool);
only body reading is async. Every answer is application/fhir+json; every error an
OperationOutcome (engine.api.outcomes).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import selectinload

from engine.api.auth import require, require_token
from engine.api.deps import RuntimeDep
from engine.api.fhir import (
    audit_event,
    clinical_params,
    flags,
    includes,
    prefer,
    resources,
    rule_outputs,
    search,
    task_update,
    ur_params,
    ur_routes,
    ur_writes,
)
from engine.api.fhir.body import Submitted, fhir_body
from engine.api.fhir.capability import OUTPUTS, capability_statement
from engine.api.fhir.search import SearchRegistry
from engine.api.fhir.submission import (
    ENCOUNTER_LOAD,
    Answer,
    Conditions,
    lab_encounter_id,
    submit,
)
from engine.api.outcomes import FhirError
from engine.api.security import audit
from engine.core.errors import EngineError, NotFound
from engine.core.roles import Permission
from engine.fhir.outcome import FHIR_JSON
from engine.storage.models import AuditRecord, Encounter, LabResult, Patient

# Query parameters of a write that shape the answer rather than name a condition.
_FORMAT_PARAMS = frozenset({"_format", "_pretty", "_summary", "_elements"})
SUPPORTED = ("Patient", "Encounter", "Observation", *(r.name for r in OUTPUTS), "ClaimResponse",
             "Communication")
Body = Annotated[Submitted, Depends(fhir_body)]
Asked = Annotated[search.Asked, Depends(search.asked)]


def _json(body: dict, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _versioned(body: dict, version: int, updated: datetime) -> JSONResponse:
    return _json(body, headers={"ETag": resources.etag(version),
                                "Last-Modified": resources.http_date(updated)})


def _answer(answer: Answer, request: Request) -> Response:
    body = prefer.shaped(answer.body, answer.resource, answer.note,
                         request.headers.get("prefer"))
    if body is None:  # return=minimal: the status and headers say it all
        return Response(status_code=answer.status, headers=answer.headers)
    return _json(body, answer.status, answer.headers)


def _conditions(request: Request) -> Conditions:
    """If-Match and If-None-Exist; a create's query string (`POST Encounter?identifier=..`,
    as fhirpy's `create(**search)` sends) is its If-None-Exist when the header is absent."""
    none_exist = request.headers.get("if-none-exist")
    if none_exist is None and request.method == "POST":
        search_part = [(k, v) for k, v in request.query_params.multi_items()
                       if k not in _FORMAT_PARAMS]
        none_exist = urlencode(search_part) if search_part else None
    return Conditions(request.headers.get("if-match"), none_exist)


def _written(request: Request, interaction: str, target: str | None, run,
             resource: str = "Encounter") -> Response:
    """Submit a write and note what it created or changed (or tried to, when refused)."""
    try:
        answer: Answer = run()
    except (EngineError, FhirError):  # refused: noted with what it was aimed at
        kind, _, rid = (target or ("Bundle" if interaction == "transaction" else resource)
                        ).partition("/")
        audit.note(request, interaction, kind, rid or None)
        raise
    if interaction == "transaction":
        for entry in answer.body.get("entry", ()):
            kind, _, rid = entry.get("fullUrl", "").rpartition("/")
            kind = kind.rpartition("/")[2]
            if kind and rid:
                created = entry["response"]["status"].startswith("201")
                audit.note(request, "create" if created else "update", kind, rid,
                           int(rid) if kind == "Patient" and rid.isdigit() else None)
        return _json(answer.body, answer.status, answer.headers)
    shown = answer.resource or answer.body
    subject = shown.get("subject", {}).get("reference", "")
    patient = subject.removeprefix("Patient/")
    done = answer.action or ("create" if answer.status == 201 else "update")
    audit.note(request, done, resource, shown.get("id"),
               int(patient) if patient.isdigit() else None)
    return _answer(answer, request)


def _searched(request: Request, kind: str, rows: list, patient_of) -> None:
    """One note for the search and one per resource on the page, with its patient."""
    audit.note(request, "search", kind)
    for row in rows:
        audit.note(request, "search", kind, str(row.id), patient_of(row))


def _base(request: Request) -> str:
    return str(request.url_for("metadata")).removesuffix("/metadata")


def _row_id(kind: str, text: str) -> int:
    row = search.row_id(text)
    if row is None:
        raise NotFound(f"{kind}/{text} is not known here")
    return row


def _version(kind: str, rid: str, vid: str, current: int) -> None:
    """vread: only the current version is kept (versioning without history)."""
    if vid != str(current):
        raise NotFound(f"{kind}/{rid}/_history/{vid} is not kept: this server keeps only the "
                       f"current version of a resource, and the current version is {current} "
                       f"(read {kind}/{rid})")


def search_registry() -> SearchRegistry:
    """Every type this server searches, with its parameters, sort keys and includes: the
    registry the endpoints and the CapabilityStatement share."""
    registry = SearchRegistry()
    registry.add("Patient", Patient, clinical_params.PATIENT_PARAMS)
    registry.add("Encounter", Encounter, clinical_params.ENCOUNTER_PARAMS)
    registry.add("AuditEvent", AuditRecord, audit_event.PARAMS, updated=AuditRecord.at)
    for output in OUTPUTS:
        output.add_search(registry)
    ur_params.add_searches(registry)
    return registry


def build_router() -> APIRouter:
    router = APIRouter()
    registry = search_registry()
    authed = [Depends(require_token)]
    reads = [Depends(require(Permission.PATIENT_READ))]
    writes = [Depends(require(Permission.ENCOUNTER_WRITE))]
    published: list[datetime] = []  # when this instance first described itself

    @router.get("/metadata", name="metadata")
    def metadata(request: Request, runtime: RuntimeDep) -> JSONResponse:
        """The CapabilityStatement (public, as FHIR clients expect to read it first)."""
        if not published:
            published.append(runtime.clock.now())
        return _json(capability_statement(published[0], _base(request), registry))

    @router.get("/Patient", dependencies=reads)
    @router.post("/Patient/_search", dependencies=reads)
    def search_patients(request: Request, runtime: RuntimeDep, asked: Asked) -> Response:
        query = search.parse(registry, "Patient", asked.items, runtime.site.zone,
                             strict=asked.strict)
        with runtime.readers() as session:
            page = search.run(session, query, selectinload(Patient.identifiers))
            merged = includes.replaced(session, [p.id for p in page.rows])
            entries = [resources.patient(p, merged.get(p.id)) for p in page.rows]
        _searched(request, "Patient", page.rows, lambda p: p.id)
        return search.respond(query, search.bundle(query, page, _base(request), entries))

    @router.get("/Patient/{pid}", dependencies=reads)
    def read_patient(pid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        return patient_version(pid, request, runtime, None)

    def patient_version(pid: str, request: Request, runtime,
                         vid: str | None) -> JSONResponse:
        with runtime.readers() as session:
            row = session.get(Patient, _row_id("Patient", pid),
                              options=[selectinload(Patient.identifiers)])
            if row is None:
                audit.note(request, "read", "Patient", pid)
                raise NotFound(f"Patient/{pid} is not known here")
            if vid is not None:
                _version("Patient", pid, vid, row.version)
            body = resources.patient(row, includes.replaced(session, [row.id]).get(row.id))
        audit.note(request, "read", "Patient", pid, row.id)
        return _versioned(body, row.version, row.updated_at)

    @router.get("/Patient/{pid}/_history/{vid}", dependencies=reads)
    def vread_patient(pid: str, vid: str, request: Request, runtime: RuntimeDep
                      ) -> JSONResponse:
        return patient_version(pid, request, runtime, vid)

    @router.get("/Encounter", dependencies=reads)
    @router.post("/Encounter/_search", dependencies=reads)
    def search_encounters(request: Request, runtime: RuntimeDep, asked: Asked) -> Response:
        query = search.parse(registry, "Encounter", asked.items, runtime.site.zone,
                             strict=asked.strict)
        with runtime.readers() as session:
            page = search.run(session, query, *ENCOUNTER_LOAD)
            entries = [resources.encounter(e) for e in page.rows]
        _searched(request, "Encounter", page.rows, lambda e: e.patient_id)
        return search.respond(query, search.bundle(query, page, _base(request), entries))

    @router.get("/Encounter/{eid}", dependencies=reads)
    def read_encounter(eid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        return encounter_version(eid, request, runtime, None)

    def encounter_version(eid: str, request: Request, runtime,
                           vid: str | None) -> JSONResponse:
        with runtime.readers() as session:
            row = session.get(Encounter, _row_id("Encounter", eid), options=list(ENCOUNTER_LOAD))
            if row is None:
                audit.note(request, "read", "Encounter", eid)
                raise NotFound(f"Encounter/{eid} is not known here")
            if vid is not None:
                _version("Encounter", eid, vid, row.version)
            body = resources.encounter(row)
        audit.note(request, "read", "Encounter", eid, row.patient_id)
        return _versioned(body, row.version, row.updated_at)

    @router.get("/Encounter/{eid}/_history/{vid}", dependencies=reads)
    def vread_encounter(eid: str, vid: str, request: Request, runtime: RuntimeDep
                        ) -> JSONResponse:
        return encounter_version(eid, request, runtime, vid)

    @router.get("/Observation/{oid}", dependencies=reads)
    def read_observation(oid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        """A kept lab result (where an Observation create's Location points), or a review
        or an avoidable day of the UR record (prefixed ids)."""
        if oid.startswith(ur_routes.UR_OBSERVATION_PREFIXES):
            return ur_routes.read_ur_observation(request, runtime, oid)
        with runtime.readers() as session:
            row = session.get(LabResult, _row_id("Observation", oid))
            if row is None:
                audit.note(request, "read", "Observation", oid)
                raise NotFound(f"Observation/{oid} is not known here (a withdrawn result is "
                               "not kept)")
            body = resources.observation(row, lab_encounter_id(session, row))
        audit.note(request, "read", "Observation", oid, row.patient_id)
        return _json(body, headers={"Last-Modified": resources.http_date(row.recorded_at)})

    @router.post("/Encounter", dependencies=writes)
    def create_encounter(request: Request, runtime: RuntimeDep, body: Body) -> Response:
        return _written(request, "create", None,
                        lambda: submit(runtime, body, "create", _base(request),
                                       conditions=_conditions(request), registry=registry))

    @router.post("/Observation", dependencies=writes)
    def create_observation(request: Request, runtime: RuntimeDep, body: Body) -> Response:
        return _written(request, "create", None,
                        lambda: submit(runtime, body, "create", _base(request),
                                       resource="Observation",
                                       conditions=_conditions(request)), "Observation")

    @router.put("/Encounter/{eid}", dependencies=writes)
    def update_encounter(eid: str, request: Request, runtime: RuntimeDep,
                         body: Body) -> Response:
        target = f"Encounter/{eid}"
        return _written(request, "update", target,
                        lambda: submit(runtime, body, "update", _base(request), target,
                                       conditions=_conditions(request)))

    @router.post("", dependencies=writes)
    @router.post("/", include_in_schema=False, dependencies=writes)
    def transaction(request: Request, runtime: RuntimeDep, body: Body) -> Response:
        return _written(request, "transaction", None,
                        lambda: submit(runtime, body, "transaction", _base(request)))

    router.include_router(audit_event.build_router(_json, _base, registry))

    ur_routes.add_routes(router, registry)  # Flag: the rules' flags and the barriers
    ur_writes.add_routes(router)
    for output in OUTPUTS:
        if output is not flags.FLAG:
            rule_outputs.add_routes(router, output, registry)
    task_update.add_routes(router)

    @router.api_route("/{resource_type}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      dependencies=authed, include_in_schema=False)
    @router.api_route("/{resource_type}/{rest:path}",
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      dependencies=authed, include_in_schema=False)
    def unsupported(resource_type: str, request: Request) -> JSONResponse:
        if resource_type not in SUPPORTED:
            raise NotFound(f"resource type {resource_type} is not served here "
                           f"(supported: {', '.join(SUPPORTED)}; see /fhir/metadata)")
        raise FhirError(405, f"{request.method} {request.url.path} is not supported; see "
                             "/fhir/metadata for the interactions this server offers")

    return router

