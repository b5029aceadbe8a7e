"""Reading the UR record over FHIR: Observation (reviews, avoidable days), Flag (the rules'
flags and the discharge barriers), ClaimResponse (authorizations) and Communication (the
exchanges with the payer): read and search, each served row audited with its patient.

Observation and Flag mix tables under one type (engine.api.fhir.search.mixed); the lab
Observations the EHR sends (POST Observation) stay readable by their numeric id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.fhir import (
    barrier_flags,
    claim_responses,
    flags,
    resources,
    search,
    ur_observations,
)
from engine.api.fhir import rule_outputs as ro
from engine.api.fhir.search import mixed
from engine.api.fhir.submission import lab_encounter_id
from engine.api.fhir.ur_params import FLAG_PARTS, OBSERVATION_PARTS
from engine.api.runtime import Runtime
from engine.api.security import audit
from engine.core.errors import NotFound
from engine.core.roles import Permission
from engine.fhir.outcome import FHIR_JSON
from engine.rules.reference import DelayReason
from engine.storage.models import (
    AvoidableDay,
    Barrier,
    Encounter,
    LabResult,
    PayerAuthorization,
    PayerCommunication,
    RuleOutput,
    UtilizationReview,
)

Asked = Annotated[search.Asked, Depends(search.asked)]
UR_OBSERVATION_PREFIXES = (ur_observations.REVIEW_PREFIX, ur_observations.AVOIDABLE_PREFIX)


def reasons(runtime: Runtime) -> dict[str, DelayReason]:
    """The site's delay reasons (their words), from the loaded rulesets."""
    book = runtime.rules.current
    return book.book.reference.delay_reasons if book is not None else {}


def patients_of(session: Session, stays: Iterable[int]) -> dict[int, int]:
    """stay id -> patient id, one query for a page."""
    wanted = sorted(set(stays))
    if not wanted:
        return {}
    rows = session.execute(select(Encounter.id, Encounter.patient_id)
                           .where(Encounter.id.in_(wanted))).tuples()
    return {stay_id: patient for stay_id, patient in rows}


def _payers(session: Session, rows: list[PayerCommunication]) -> dict[int, str | None]:
    ids = sorted({r.authorization_id for r in rows if r.authorization_id is not None})
    if not ids:
        return {}
    found = session.execute(select(PayerAuthorization.id, PayerAuthorization.payer)
                            .where(PayerAuthorization.id.in_(ids))).tuples()
    return {auth_id: payer for auth_id, payer in found}


def render(session: Session, runtime: Runtime, rows: list[Any]) -> list[dict]:
    """Any UR row (or rule flag) as its FHIR resource."""
    who = patients_of(session, [r.encounter_id for r in rows if not isinstance(r, LabResult)])
    payers = _payers(session, [r for r in rows if isinstance(r, PayerCommunication)])
    known = reasons(runtime)
    out = []
    for row in rows:
        if isinstance(row, RuleOutput):
            out.append(flags.flag(row))
        elif isinstance(row, LabResult):
            out.append(resources.observation(row, lab_encounter_id(session, row)))
        elif isinstance(row, UtilizationReview):
            out.append(ur_observations.review(row, who[row.encounter_id]))
        elif isinstance(row, AvoidableDay):
            out.append(ur_observations.avoidable_day(row, who[row.encounter_id], known))
        elif isinstance(row, Barrier):
            out.append(barrier_flags.barrier_flag(row, who[row.encounter_id], known))
        elif isinstance(row, PayerAuthorization):
            out.append(claim_responses.claim_response(row, who[row.encounter_id]))
        else:
            payer = payers.get(row.authorization_id) if row.authorization_id else None
            out.append(claim_responses.communication(row, who[row.encounter_id], payer))
    return out


def _noted(request: Request, kind: str, bodies: list[dict]) -> None:
    audit.note(request, "search", kind)
    for body in bodies:
        audit.note(request, "search", kind, body["id"], _patient(body))


def _patient(body: dict) -> int | None:
    ref = (body.get("subject") or body.get("patient") or {}).get("reference", "")
    return search.row_id(ref.removeprefix("Patient/"))


def _row(session: Session, model: Any, text: str, prefix: str, kind: str) -> Any:
    ident = search.row_id(text.removeprefix(prefix)) if text.startswith(prefix) else None
    row = session.get(model, ident) if ident is not None else None
    if row is None:
        raise NotFound(f"{kind}/{text} is not known here")
    return row


def read_ur_observation(request: Request, runtime: Runtime, oid: str) -> JSONResponse:
    """A review or an avoidable day (the router sends lab ids elsewhere)."""
    with runtime.readers() as session:
        try:
            if oid.startswith(ur_observations.AVOIDABLE_PREFIX):
                row = _row(session, AvoidableDay, oid, ur_observations.AVOIDABLE_PREFIX,
                           "Observation")
            else:
                row = _row(session, UtilizationReview, oid, ur_observations.REVIEW_PREFIX,
                           "Observation")
        except NotFound:
            audit.note(request, "read", "Observation", oid)
            raise
        body = render(session, runtime, [row])[0]
    return _read_answer(request, "Observation", body, row)


def _read_answer(request: Request, kind: str, body: dict, row: Any) -> JSONResponse:
    audit.note(request, "read", kind, body["id"], _patient(body))
    return versioned(body, row)


def stamp(row: Any) -> dict[str, str]:
    """ETag and Last-Modified of a record (If-Match on an update names the ETag)."""
    return {"ETag": resources.etag(row.version),
            "Last-Modified": resources.http_date(row.updated_at)}


def versioned(body: dict, row: Any, status: int = 200,
              headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON,
                        headers={**stamp(row), **(headers or {})})


def add_routes(router: APIRouter, registry: search.SearchRegistry) -> None:
    reader = [Depends(require(Permission.PATIENT_READ))]

    def mixed_search(kind: str, parts: tuple[mixed.Part, ...], request: Request,
                     runtime: Runtime, asked: search.Asked) -> Response:
        found = mixed.parse_mixed(registry, parts, asked.items, runtime.site.zone,
                                  strict=asked.strict)
        with runtime.readers() as session:
            page = mixed.run_mixed(session, found)
            bodies = render(session, runtime, [row for _, row in page.rows])
        _noted(request, kind, bodies)
        return search.respond(found.first, search.bundle(found.first, page,
                                                         ro.base_url(request), bodies))

    def plain_search(kind: str, request: Request, runtime: Runtime,
                     asked: search.Asked) -> Response:
        query = search.parse(registry, kind, asked.items, runtime.site.zone,
                             strict=asked.strict)
        with runtime.readers() as session:
            page = search.run(session, query)
            bodies = render(session, runtime, page.rows)
        _noted(request, kind, bodies)
        return search.respond(query, search.bundle(query, page, ro.base_url(request), bodies))

    @router.get("/Observation", dependencies=reader)
    @router.post("/Observation/_search", dependencies=reader)
    def search_observations(request: Request, runtime: RuntimeDep, asked: Asked) -> Response:
        return mixed_search("Observation", OBSERVATION_PARTS, request, runtime, asked)

    @router.get("/Flag", dependencies=reader)
    @router.post("/Flag/_search", dependencies=reader)
    def search_flags(request: Request, runtime: RuntimeDep, asked: Asked) -> Response:
        return mixed_search("Flag", FLAG_PARTS, request, runtime, asked)

    @router.get("/Flag/{fid}", dependencies=reader)
    def read_flag(fid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        with runtime.readers() as session:
            try:
                if fid.startswith(barrier_flags.BARRIER_PREFIX):
                    row = _row(session, Barrier, fid, barrier_flags.BARRIER_PREFIX, "Flag")
                else:
                    row = ro.get_output(session, flags.FLAG, fid)
            except NotFound:
                audit.note(request, "read", "Flag", fid)
                raise
            body = render(session, runtime, [row])[0]
        return _read_answer(request, "Flag", body, row)

    @router.get("/ClaimResponse", dependencies=reader)
    @router.post("/ClaimResponse/_search", dependencies=reader)
    def search_claim_responses(request: Request, runtime: RuntimeDep, asked: Asked
                               ) -> Response:
        return plain_search("ClaimResponse", request, runtime, asked)

    def read_record(kind: str, model: Any, rid: str, vid: str | None, request: Request,
                    runtime: Runtime) -> JSONResponse:
        """A record by id; with a version (vread) only the current one is kept."""
        with runtime.readers() as session:
            try:
                row = _row(session, model, rid, "", kind)
                if vid is not None and vid != str(row.version):
                    raise NotFound(f"{kind}/{rid}/_history/{vid} is not kept: this server "
                                   f"keeps only the current version, {row.version}")
            except NotFound:
                audit.note(request, "vread" if vid else "read", kind, rid)
                raise
            body = render(session, runtime, [row])[0]
        return _read_answer(request, kind, body, row)

    @router.get("/ClaimResponse/{cid}", dependencies=reader)
    def read_claim_response(cid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        return read_record("ClaimResponse", PayerAuthorization, cid, None, request, runtime)

    @router.get("/ClaimResponse/{cid}/_history/{vid}", dependencies=reader)
    def vread_claim_response(cid: str, vid: str, request: Request, runtime: RuntimeDep
                             ) -> JSONResponse:
        return read_record("ClaimResponse", PayerAuthorization, cid, vid, request, runtime)

    @router.get("/Communication", dependencies=reader)
    @router.post("/Communication/_search", dependencies=reader)
    def search_communications(request: Request, runtime: RuntimeDep, asked: Asked
                              ) -> Response:
        return plain_search("Communication", request, runtime, asked)

    @router.get("/Communication/{cid}", dependencies=reader)
    def read_communication(cid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        return read_record("Communication", PayerCommunication, cid, None, request, runtime)

    @router.get("/Communication/{cid}/_history/{vid}", dependencies=reader)
    def vread_communication(cid: str, vid: str, request: Request, runtime: RuntimeDep
                            ) -> JSONResponse:
        return read_record("Communication", PayerCommunication, cid, vid, request, runtime)
