"""FHIR R4 endpoints under /fhir: metadata, Patient and Encounter read and search,
Encounter create and update, and transaction Bundles.

Handlers that touch the database are plain `def` (FastAPI runs them in its threadpool);
only body reading is async. Every answer is application/fhir+json; every error an
OperationOutcome (engine.fhir.outcome).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.auth import require_token
from engine.fhir import resources, search
from engine.fhir.body import Submitted, fhir_body
from engine.fhir.capability import capability_statement
from engine.fhir.outcome import FHIR_JSON, FhirError
from engine.fhir.submission import ENCOUNTER_LOAD, Answer, submit
from engine.storage.models import Encounter, Patient

SUPPORTED = ("Patient", "Encounter", "Observation")
Body = Annotated[Submitted, Depends(fhir_body)]


def _json(body: dict, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _versioned(body: dict, version: int, updated: datetime) -> JSONResponse:
    return _json(body, headers={"ETag": resources.etag(version),
                                "Last-Modified": resources.http_date(updated)})


def _answer(answer: Answer) -> JSONResponse:
    return _json(answer.body, answer.status, answer.headers)


def _base(request: Request) -> str:
    return str(request.url_for("metadata")).removesuffix("/metadata")


def _row_id(kind: str, text: str) -> int:
    row = search.row_id(text)
    if row is None:
        raise FhirError(404, f"{kind}/{text} is not known here")
    return row


def build_router() -> APIRouter:
    router = APIRouter()
    authed = [Depends(require_token)]
    published: list[datetime] = []  # when this instance first described itself

    @router.get("/metadata", name="metadata")
    def metadata(request: Request) -> JSONResponse:
        """The CapabilityStatement (public, as FHIR clients expect to read it first)."""
        if not published:
            published.append(request.app.state.runtime.clock.now())
        return _json(capability_statement(published[0], _base(request)))

    @router.get("/Patient", dependencies=authed)
    def search_patients(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        query = search.parse("Patient", request.query_params.multi_items(), runtime.site.zone)
        with runtime.readers() as session:
            page = search.run(session, query, selectinload(Patient.identifiers))
            merged = _replaced(session, [p.id for p in page.rows])
            entries = [resources.patient(p, merged.get(p.id)) for p in page.rows]
        return _json(search.bundle(query, page, _base(request), entries))

    @router.get("/Patient/{pid}", dependencies=authed)
    def read_patient(pid: str, request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        with runtime.readers() as session:
            row = session.get(Patient, _row_id("Patient", pid),
                              options=[selectinload(Patient.identifiers)])
            if row is None:
                raise FhirError(404, f"Patient/{pid} is not known here")
            body = resources.patient(row, _replaced(session, [row.id]).get(row.id))
        return _versioned(body, row.version, row.updated_at)

    @router.get("/Encounter", dependencies=authed)
    def search_encounters(request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        query = search.parse("Encounter", request.query_params.multi_items(),
                             runtime.site.zone)
        with runtime.readers() as session:
            page = search.run(session, query, *ENCOUNTER_LOAD)
            entries = [resources.encounter(e) for e in page.rows]
        return _json(search.bundle(query, page, _base(request), entries))

    @router.get("/Encounter/{eid}", dependencies=authed)
    def read_encounter(eid: str, request: Request) -> JSONResponse:
        runtime = request.app.state.runtime
        with runtime.readers() as session:
            row = session.get(Encounter, _row_id("Encounter", eid), options=list(ENCOUNTER_LOAD))
            if row is None:
                raise FhirError(404, f"Encounter/{eid} is not known here")
            body = resources.encounter(row)
        return _versioned(body, row.version, row.updated_at)

    @router.post("/Encounter")
    def create_encounter(request: Request,
                         body: Body) -> JSONResponse:
        runtime = request.app.state.runtime
        return _answer(submit(runtime, body, "create", _base(request)))

    @router.post("/Observation")
    def create_observation(request: Request, body: Body) -> JSONResponse:
        runtime = request.app.state.runtime
        return _answer(submit(runtime, body, "create", _base(request), resource="Observation"))

    @router.put("/Encounter/{eid}")
    def update_encounter(eid: str, request: Request,
                         body: Body) -> JSONResponse:
        runtime = request.app.state.runtime
        return _answer(submit(runtime, body, "update", _base(request), f"Encounter/{eid}"))

    @router.post("")
    @router.post("/", include_in_schema=False)
    def transaction(request: Request, body: Body) -> JSONResponse:
        runtime = request.app.state.runtime
        return _answer(submit(runtime, body, "transaction", _base(request)))

    @router.api_route("/{resource_type}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      dependencies=authed, include_in_schema=False)
    @router.api_route("/{resource_type}/{rest:path}",
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      dependencies=authed, include_in_schema=False)
    def unsupported(resource_type: str, request: Request) -> JSONResponse:
        if resource_type not in SUPPORTED:
            raise FhirError(404, f"resource type {resource_type} is not served here "
                                 f"(supported: {', '.join(SUPPORTED)}; see /fhir/metadata)")
        raise FhirError(405, f"{request.method} {request.url.path} is not supported; see "
                             "/fhir/metadata for the interactions this server offers")

    return router


def _replaced(session, ids: list[int]) -> dict[int, list[int]]:
    """survivor id -> ids of patients merged into it (for Patient.link type replaces)."""
    if not ids:
        return {}
    out: dict[int, list[int]] = {}
    rows = session.execute(select(Patient.merged_into_id, Patient.id)
                           .where(Patient.merged_into_id.in_(ids)).order_by(Patient.id))
    for survivor, merged in rows:
        out.setdefault(survivor, []).append(merged)
    return out
