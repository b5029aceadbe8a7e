"""What the rules raised, as FHIR: the parts Task, Flag, RiskAssessment and ServiceRequest
share (references, the rule that raised it, search parameters) and their read and search
endpoints, built from one description per resource type.

Every output carries the rule extension: rule id, ruleset, ruleset version and the facts
that fired it, so the EHR can show why it is there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.fhir import identifier_params, includes, resources, search
from engine.api.fhir.search import Param
from engine.api.security import audit
from engine.core.errors import NotFound
from engine.core.roles import Permission, Principal
from engine.fhir.outcome import FHIR_JSON
from engine.storage.models import RuleOutput
from engine.work.staffing import Staffing

RULE_EXTENSION = "urn:engine:fhir:StructureDefinition:rule"
RULE_SYSTEM = "urn:engine:rule"
# (session, rows, the engine's staffing: Task.owner names people) -> resources
Render = Callable[[Session, list[RuleOutput], Staffing], list[dict]]


def patient_ref(row: RuleOutput) -> dict:
    return {"reference": f"Patient/{row.patient_id}"}


def encounter_ref(row: RuleOutput) -> dict:
    return {"reference": f"Encounter/{row.encounter_id}"}


def rule_extension(row: RuleOutput, with_facts: bool = True) -> dict:
    """The rule, ruleset and version that raised this output, and the facts it compared
    (a Task lists its facts as inputs instead)."""
    parts = [{"url": "rule", "valueString": row.rule_id},
             {"url": "ruleset", "valueString": row.ruleset},
             {"url": "version", "valueString": row.ruleset_version}]
    if row.detail and row.detail.get("citation"):
        parts.append({"url": "citation", "valueString": row.detail["citation"]})
    if with_facts and row.facts:
        parts.append({"url": "facts", "valueString": json.dumps(row.facts, sort_keys=True)})
    return {"url": RULE_EXTENSION, "extension": parts}


def head(row: RuleOutput, resource_type: str, status: str, code: dict) -> dict:
    """The elements every output resource starts with, in FHIR's element order for the
    subject-bearing ones (Flag, RiskAssessment, ServiceRequest)."""
    return {"resourceType": resource_type, "id": str(row.id),
            "meta": resources.meta(row.version, row.updated_at),
            "extension": [rule_extension(row)], "status": status, **code,
            "subject": patient_ref(row), "encounter": encounter_ref(row)}


def per_row(build: Callable[[RuleOutput], dict]) -> Render:
    """A page renderer for resources that need nothing beyond their own row."""
    return lambda _session, rows, _staffing: [build(r) for r in rows]


def reason_code(row: RuleOutput) -> dict:
    citation = (row.detail or {}).get("citation")
    out: dict = {"coding": [{"system": RULE_SYSTEM, "code": row.rule_id}]}
    out["text"] = citation or row.rule_id
    return out


def coded(system: str, code: str, display: str | None) -> dict:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], "text": display or code}


def token_param(column: Any, what: str, doc: str) -> Param:
    """A token parameter on a code column (`[system|]code`; the system is not checked)."""

    def build(text: str, _m: str | None, _z: Any) -> ColumnElement[bool]:
        return column == text.rpartition("|")[2]

    return Param(what, "token", doc, build)


def status_param(by_status: Mapping[str, tuple[str, ...]], value_set: tuple[str, ...]) -> Param:
    """The FHIR status of an output resource, from the rule engine's view of it; the other
    codes of its FHIR `value_set` match nothing."""

    def build(text: str, _m: str | None, _z: Any) -> ColumnElement[bool]:
        code = text.rpartition("|")[2]
        if code not in by_status:
            return search.unused_code("status", code, by_status, value_set)
        return RuleOutput.status.in_(by_status[code])

    return Param("status", "token", " | ".join(by_status), build)


def fhir_status(by_status: Mapping[str, tuple[str, ...]], stored: str) -> str:
    return next(name for name, values in by_status.items() if stored in values)


def common_params() -> dict[str, Param]:
    """_id, patient, subject and encounter: shared by every output resource."""
    return {**{p.name: p for p in (
        Param("_id", "token", "Logical id", search.reference(RuleOutput.id, "")),
        identifier_params.patient_reference("patient", "The patient: Patient/<id> or <id>",
                                            RuleOutput.patient_id),
        identifier_params.patient_reference("subject", "Same as patient",
                                            RuleOutput.patient_id),
        Param("encounter", "reference", "The encounter: Encounter/<id> or <id>",
              search.reference(RuleOutput.encounter_id, "Encounter")),
    )}, **identifier_params.chained(RuleOutput.patient_id)}


def output_params(by_status: Mapping[str, tuple[str, ...]], value_set: tuple[str, ...],
                  code_name: str, code_doc: str) -> dict[str, Param]:
    """The search parameters of a flag, score or proposal resource."""
    return {**common_params(), "status": status_param(by_status, value_set),
            code_name: token_param(RuleOutput.code, code_name, code_doc)}


@dataclass(frozen=True)
class OutputResource:
    """One FHIR resource type served from rule outputs of one kind."""

    name: str
    kind: str
    doc: str
    params: dict[str, Param]
    render: Render
    interactions: tuple[str, ...] = ("read", "search-type")
    sorts: dict[str, Any] = field(default_factory=dict)
    includes: dict[str, str] = field(default_factory=dict)  # _include value -> target type

    def add_search(self, registry: search.SearchRegistry) -> None:
        """Make this type searchable in `registry`: its rows, parameters, sorts, includes."""
        registry.add(self.name, RuleOutput, self.params, base=RuleOutput.kind == self.kind,
                     sorts=self.sorts, includes=tuple(self.includes))


def json_response(body: dict, status: int = 200, row: RuleOutput | None = None) -> JSONResponse:
    headers = None
    if row is not None:
        headers = {"ETag": resources.etag(row.version),
                   "Last-Modified": resources.http_date(row.updated_at)}
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def base_url(request: Request) -> str:
    return str(request.url_for("metadata")).removesuffix("/metadata")


def get_output(session: Session, resource: OutputResource, text: str) -> RuleOutput:
    ident = search.row_id(text)
    row = session.get(RuleOutput, ident) if ident is not None else None
    if row is None or row.kind != resource.kind:
        raise NotFound(f"{resource.name}/{text} is not known here")
    return row


def _included(session: Session, resource: OutputResource, query: search.Query,
              rows: list[RuleOutput]) -> list[dict]:
    targets = {resource.includes[name] for name in query.include}
    out: list[dict] = []
    if "Patient" in targets:
        out += includes.patients(session, (r.patient_id for r in rows))
    if "Encounter" in targets:
        out += includes.encounters(session, (r.encounter_id for r in rows))
    return out


def _patient_of(body: dict) -> int | None:
    if body["resourceType"] == "Patient":
        return int(body["id"])
    ref = body.get("subject", {}).get("reference", "")
    return search.row_id(ref.rpartition("/")[2]) if ref.startswith("Patient/") else None


def add_routes(router: APIRouter, resource: OutputResource,
               registry: search.SearchRegistry) -> None:
    """GET /<Type> (search) and GET /<Type>/<id> (read) for one output resource."""
    reader = Depends(require(Permission.PATIENT_READ))

    def search_outputs(request: Request, runtime: RuntimeDep,
                       asked: Annotated[search.Asked, Depends(search.asked)],
                       _caller: Principal = reader) -> Response:
        query = search.parse(registry, resource.name, asked.items, runtime.site.zone,
                             strict=asked.strict)
        with runtime.readers() as session:
            page = search.run(session, query)
            entries = resource.render(session, page.rows, runtime.staffing)
            included = _included(session, resource, query, page.rows)
        for row in page.rows:
            audit.note(request, "search", resource.name, str(row.id), row.patient_id)
        for body in included:
            audit.note(request, "search", body["resourceType"], body["id"], _patient_of(body))
        return search.respond(query, search.bundle(query, page, base_url(request), entries,
                                                   included))

    def read_output(oid: str, request: Request, runtime: RuntimeDep,
                    _caller: Principal = reader) -> JSONResponse:
        with runtime.readers() as session:
            row = get_output(session, resource, oid)
            body = resource.render(session, [row], runtime.staffing)[0]
        audit.note(request, "read", resource.name, str(row.id), row.patient_id)
        return json_response(body, row=row)

    router.add_api_route(f"/{resource.name}", search_outputs, methods=["GET"],
                         name=f"search_{resource.name}")
    router.add_api_route(f"/{resource.name}/_search", search_outputs, methods=["POST"],
                         name=f"post_search_{resource.name}")
    router.add_api_route(f"/{resource.name}/{{oid}}", read_output, methods=["GET"],
                         name=f"read_{resource.name}")
