"""The audit trail as FHIR R4 AuditEvent: read and search, for admins only.

Each AuditRecord row is one AuditEvent: a RESTful interaction (type rest, subtype the
interaction) or a sign-in (DICOM 110114 user authentication, 110122 login / 110123 logout),
the agent who asked (name, role, address), the outcome, and the resource and patient it
touched. Searching it is itself audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement, and_, false, func, or_

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.fhir import search
from engine.api.fhir.resources import instant
from engine.api.security import audit
from engine.core.errors import NotFound
from engine.core.roles import Permission
from engine.storage.models import AuditRecord

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENGINE_OPERATION = "urn:engine:operation"
SIGN_IN = {"login": ("110122", "Login"), "logout": ("110123", "Logout")}
INTERACTIONS = {"read": "read", "vread": "vread", "search": "search-type", "create": "create",
                "update": "update", "patch": "patch", "delete": "delete",
                "transaction": "transaction"}
ACTIONS = ("C", "R", "U", "D", "E")
OUTCOMES = ("0", "4", "8", "12")


def _type_and_subtype(operation: str) -> tuple[dict, dict]:
    if operation in SIGN_IN:
        code, display = SIGN_IN[operation]
        return ({"system": DCM, "code": "110114", "display": "User Authentication"},
                {"system": DCM, "code": code, "display": display})
    kind = {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
    if operation in INTERACTIONS:
        return kind, {"system": RESTFUL, "code": INTERACTIONS[operation]}
    return kind, {"system": ENGINE_OPERATION, "code": operation}


def _agent(row: AuditRecord) -> dict:
    person = row.actor_kind == "user"
    agent: dict = {
        "type": {"coding": [{"system": AGENT_TYPE, "code": "humanuser" if person else
                             "dataprocessor", "display": "human user" if person else
                             "data processor"}]},
        "who": ({"identifier": {"system": f"urn:engine:{row.actor_kind}", "value": row.actor},
                 "display": row.actor} if row.actor_kind in ("user", "client")
                else {"display": row.actor}),
        "requestor": True,
    }
    if row.role:
        agent["role"] = [{"text": row.role}]
    if row.source:
        agent["network"] = {"address": row.source, "type": "2"}
    return agent


def _entities(row: AuditRecord) -> list[dict]:
    out = []
    if row.resource_type:
        entity: dict = {"type": {"system": RESOURCE_TYPES, "code": row.resource_type}}
        if row.resource_id:
            entity["what"] = {"reference": f"{row.resource_type}/{row.resource_id}"}
        if row.resource_type == "Patient" and row.resource_id:
            entity["role"] = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
        out.append(entity)
    own = row.resource_type == "Patient" and row.resource_id == str(row.patient_id)
    if row.patient_id is not None and not own:
        out.append({"what": {"reference": f"Patient/{row.patient_id}"},
                    "type": {"system": RESOURCE_TYPES, "code": "Patient"},
                    "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    return out


def audit_event(row: AuditRecord) -> dict:
    kind, subtype = _type_and_subtype(row.operation)
    event: dict = {
        "resourceType": "AuditEvent",
        "id": str(row.id),
        "meta": {"lastUpdated": instant(row.at)},  # recorded once, never changed
        "type": kind,
        "subtype": [subtype],
        "action": row.action if row.action in ACTIONS else "E",
        "recorded": instant(row.at),
        "outcome": row.outcome if row.outcome in OUTCOMES else "8",
    }
    if row.status_code is not None:
        event["outcomeDesc"] = f"HTTP {row.status_code}" + (f" {row.path}" if row.path else "")
    event["agent"] = [_agent(row)]
    event["source"] = {"observer": {"display": "engine"},
                       "type": [{"system": SOURCE_TYPE, "code": "4",
                                 "display": "Application Server"}]}
    entities = _entities(row)
    if entities:
        event["entity"] = entities
    return event


# -- search ------------------------------------------------------------------------------------
def _agent_param(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    return func.lower(AuditRecord.actor) == text.rpartition("/")[2].lower()


def _patient_param(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    ident = search.row_id(text.rpartition("Patient/")[2] if "/" in text else text)
    if ident is None:
        return false()
    return or_(AuditRecord.patient_id == ident,
               and_(AuditRecord.resource_type == "Patient",
                    AuditRecord.resource_id == str(ident)))


def _entity_type(text: str, _m: str | None, _z: ZoneInfo) -> ColumnElement[bool]:
    return AuditRecord.resource_type == text.rpartition("|")[2]


PARAMS: dict[str, search.Param] = {p.name: p for p in (
    search.Param("_id", "token", "Logical id of the audit event",
                 search.by_id(AuditRecord, "AuditEvent")),
    search.Param("date", "date", "When it was recorded, with prefixes eq ne gt ge lt le sa eb",
                 search.instant(AuditRecord.at, "date")),
    search.Param("agent", "reference", "Who: the user or client name", _agent_param),
    search.Param("patient", "reference", "The patient whose data was read or changed: "
                 "Patient/<id> or <id>", _patient_param),
    search.Param("entity-type", "token", "The resource type touched (Patient, Encounter, "
                 "...)", _entity_type),
    search.Param("action", "token", "C create, R read, U update, D delete, E execute "
                 "(search, sign-in)", search.choice("action", AuditRecord.action, ACTIONS)),
    search.Param("outcome", "token", "0 success, 4 minor failure (refused), 8 serious failure",
                 search.choice("outcome", AuditRecord.outcome, OUTCOMES)),
)}


def build_router(answer: Callable[..., JSONResponse], base: Callable[[Request], str],
                 registry: search.SearchRegistry) -> APIRouter:
    router = APIRouter(dependencies=[Depends(require(Permission.AUDIT_READ))])

    @router.get("/AuditEvent")
    @router.post("/AuditEvent/_search")
    def search_audit(request: Request, runtime: RuntimeDep,
                     asked: Annotated[search.Asked, Depends(search.asked)]) -> Response:
        query = search.parse(registry, "AuditEvent", asked.items, runtime.site.zone,
                             strict=asked.strict)
        with runtime.readers() as session:
            page = search.run(session, query)
            entries = [audit_event(r) for r in page.rows]
        audit.note(request, "search", "AuditEvent")
        return search.respond(query, search.bundle(query, page, base(request), entries))

    @router.get("/AuditEvent/{aid}")
    def read_audit(aid: str, request: Request, runtime: RuntimeDep) -> JSONResponse:
        row_id = search.row_id(aid)
        with runtime.readers() as session:
            row = session.get(AuditRecord, row_id) if row_id is not None else None
        audit.note(request, "read", "AuditEvent", aid)
        if row is None:
            raise NotFound(f"AuditEvent/{aid} is not known here")
        return answer(audit_event(row))

    return router
