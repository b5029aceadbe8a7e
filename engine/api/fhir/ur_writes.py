"""What an EHR sends to the UR record: the payer's authorization (POST and PUT
ClaimResponse) and an exchange with the payer (POST Communication), with ur:write.

POST ClaimResponse is keyed by the stay and the payer's number (preAuthRef): a number the
stay already has (a retry, or the one IN1-14 seeded) is merged (200): only the elements and
sub-extensions sent change, so a payer portal's short answer never wipes what the UR nurse
typed; a new one is created (201). PUT replaces what the resource maps (status, preAuthRef,
insurer, preAuthPeriod with the approved days) and the engine's own values only when it
carries the authorization extension; it honours If-Match (412 when stale); status
entered-in-error voids it. A denial is never inferred from outcome: only the status
sub-extension says denied. The stay
is the extension urn:engine:fhir:StructureDefinition:encounter (valueReference
Encounter/<id>, or the Encounter's identifier, the visit number). Each write runs in one
transaction with the visit locked, re-evaluates the stay (the rules read the approved
through-date and the appeal deadline), then commits.

A value the record refuses answers 422 with an OperationOutcome whose expression names the
element (engine.work.ur_record RecordInvalid.field, translated); not valid FHIR R4 is 400.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fhir.resources.R4B.claimresponse import ClaimResponse as FhirClaimResponse
from fhir.resources.R4B.communication import Communication as FhirCommunication
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.fhir import preconditions, prefer, search
from engine.api.fhir.claim_responses import (
    AUTH_EXTENSION,
    AUTH_VALUES,
    CHANNEL_BY_MODE,
    CHANNEL_SYSTEM,
    DIRECTION_SYSTEM,
    ENCOUNTER_EXTENSION,
    PARTICIPATION_MODE,
    UNNAMED_PAYER,
    claim_response,
    communication,
)
from engine.api.fhir.ur_routes import stamp, versioned
from engine.api.outcomes import FhirError
from engine.api.runtime import Runtime
from engine.api.security import audit
from engine.core import ur_record as codes
from engine.core.errors import EngineError, InputTooLarge, Malformed, NotFound
from engine.core.identity import search_systems
from engine.core.roles import Permission, Principal
from engine.fhir.outcome import FHIR_JSON
from engine.fhir.reading import describe, parse_json
from engine.planning import evaluation
from engine.storage.models import Encounter, PayerAuthorization
from engine.work.ur_record import authorizations, revisions, stay
from engine.work.ur_record.inputs import AuthorizationInput, CommunicationInput
from engine.work.ur_record.problems import RecordInvalid

JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
# RecordInvalid.field -> the element of the ClaimResponse it came from
CLAIM_ELEMENTS = {"approved_from": "ClaimResponse.preAuthPeriod.start",
                  "approved_through": "ClaimResponse.preAuthPeriod.end",
                  "reference_number": "ClaimResponse.preAuthRef",
                  "payer": "ClaimResponse.insurer", "patient": "ClaimResponse.patient",
                  "encounter": f"ClaimResponse.extension('{ENCOUNTER_EXTENSION}')",
                  "outcome": "ClaimResponse.outcome", "id": "ClaimResponse.id",
                  "fhir_status": "ClaimResponse.status", "record": "ClaimResponse"}
COMMUNICATION_ELEMENTS = {"direction": "Communication.category",
                          "channel": "Communication.medium",
                          "summary": "Communication.payload",
                          "at": "Communication.sent", "about": "Communication.about",
                          "encounter": "Communication.encounter",
                          "patient": "Communication.subject", "record": "Communication",
                          "authorization_id": "Communication.about"}
_COLUMN_NAMES = {column: name for name, (column, _) in AUTH_VALUES.items()}


def _element(resource: str, field: str) -> str:
    table = CLAIM_ELEMENTS if resource == "ClaimResponse" else COMMUNICATION_ELEMENTS
    if field in table:
        return table[field]
    name = _COLUMN_NAMES.get(field, field.replace("_", "-"))
    return f"{resource}.extension('{AUTH_EXTENSION}').extension('{name}')"


def refused(resource: str, problem: RecordInvalid) -> JSONResponse:
    """422: the OperationOutcome names the element at fault (expression) and why."""
    element = _element(resource, problem.field)
    body = {"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "processing",
        "details": {"coding": [{"system": "urn:engine:ur-record-field",
                                "code": problem.field}], "text": problem.message},
        "diagnostics": f"{element}: {problem.message}", "expression": [element]}]}
    return JSONResponse(body, status_code=422, media_type=FHIR_JSON)


async def _json(request: Request, limit: int) -> Any:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise FhirError(415, f"Content-Type {media or '(none)'} is not accepted: send "
                             "application/fhir+json")
    raw = await request.body()
    if len(raw) > limit:
        raise InputTooLarge("request body too large")
    return parse_json(raw)


def _valid(doc: Any, resource: str, model: Any) -> dict:
    if not isinstance(doc, dict) or doc.get("resourceType") != resource:
        raise Malformed(f"send a {resource} resource")
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        raise Malformed(describe(resource, exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed(f"{resource} is not valid FHIR R4: {exc}") from exc
    return doc


# -- reading the body --------------------------------------------------------------------------
def _day(field: str, text: Any) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        raise RecordInvalid(field, f"{text!r} is not a date") from None


def _moment(field: str, text: Any) -> datetime | None:
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(str(text))
    except ValueError:
        raise RecordInvalid(field, f"{text!r} is not a dateTime") from None
    if when.tzinfo is None:
        raise RecordInvalid(field, f"{text!r} needs a time and an offset (or Z)")
    return when


def _extensions(doc: dict, url: str) -> list[dict]:
    return [e for e in doc.get("extension") or () if e.get("url") == url]


def _engine_values(doc: dict) -> dict[str, Any]:
    """The engine's own values the EHR sent in the authorization extension."""
    out: dict[str, Any] = {}
    for ext in _extensions(doc, AUTH_EXTENSION):
        for part in ext.get("extension") or ():
            known = AUTH_VALUES.get(part.get("url", ""))
            if known is None:
                continue
            column, kind = known
            value = part.get(kind)
            if kind == "valueDateTime":
                value = _moment(column, value)
            elif kind == "valueDate":
                value = _day(column, value)
            out[column] = value
    return out


COMPLETE_NEEDS = ("complete needs the approved period (preAuthPeriod), the approved days, or "
                  "the status extension saying denied")
_STATUS_WORDS = frozenset(codes.AUTHORIZATION_STATUSES.values())
# what the resource maps (replaced by a PUT); the rest are the engine's own values
_MAPPED = ("status", "reference_number", "payer", "approved_from", "approved_through")
_FIELDS = tuple(f.name for f in fields(AuthorizationInput))
_ENGINE_OWN = tuple(f for f in _FIELDS if f not in _MAPPED)


def _status(doc: dict, sent: dict[str, Any], period: dict,
            kept: PayerAuthorization | None) -> str:
    """The status: the extension's, else from outcome. A denial is never inferred: only the
    status extension says denied. `kept` is the record a POST merges into (None on a PUT)."""
    if sent.get("status"):
        return str(sent["status"])
    outcome = doc.get("outcome")
    if outcome == "queued":
        return kept.status if kept is not None and kept.status in ("pending", "pended") \
            else "pending"
    if outcome == "partial":
        return "partially_approved"
    if outcome == "complete":
        if period.get("end") or sent.get("approved_days") is not None:
            return "approved"
        if kept is not None and kept.status == "approved":
            return "approved"  # the approval on file, its period kept
        raise RecordInvalid("outcome", COMPLETE_NEEDS)
    raise RecordInvalid("outcome", f"outcome {outcome!r}: an authorization is queued "
                                   "(pending), complete (approved, or denied with the status "
                                   "extension) or partial")


def _payer(doc: dict) -> str | None:
    display = (doc.get("insurer") or {}).get("display")
    return None if display == UNNAMED_PAYER else display


def _mapped(doc: dict, period: dict, stored: dict[str, Any], merging: bool) -> dict[str, Any]:
    """preAuthRef, insurer and preAuthPeriod: what the document carries, over the record on
    file (a merging POST) or alone (a create, a PUT). An insurer without a name does not
    restate the payer: the one on file is kept (none on file: the stay's payer)."""
    out = {f: stored[f] for f in _MAPPED if f != "status"} if merging else {}
    if not merging or "preAuthRef" in doc:
        out["reference_number"] = doc.get("preAuthRef")
    out["payer"] = _payer(doc) or stored.get("payer")
    if not merging or "start" in period:
        out["approved_from"] = _day("approved_from", period.get("start"))
    if not merging or "end" in period:
        out["approved_through"] = _day("approved_through", period.get("end"))
    return out


def authorization_input(doc: dict, current: PayerAuthorization | None = None, *,
                        replace: bool = False) -> AuthorizationInput:
    """The authorization the document says, on top of `current` when there is one.

    A POST matching a record on file merges (replace False): only the elements and
    sub-extensions sent change. A PUT (replace True) replaces what the resource maps
    (status/outcome, preAuthRef, insurer, preAuthPeriod with the approved days); the engine's
    own values are replaced only when the document carries the authorization extension
    (then absent sub-extensions are cleared), else kept. No current record: only the
    document."""
    sent = _engine_values(doc)
    period = doc.get("preAuthPeriod") or {}
    stored = {f: getattr(current, f) for f in _FIELDS} if current is not None else {}
    merging = current is not None and not replace
    carries = bool(_extensions(doc, AUTH_EXTENSION))
    keeps_own = current is not None and (merging or not carries)
    values = {f: stored[f] for f in _ENGINE_OWN} if keeps_own else {}
    values.update({k: v for k, v in sent.items() if k != "status"})
    # the approved days and the through-date are one fact: one sent without the other
    # replaces both (the service counts the through-date from the days)
    if "approved_days" not in sent and (replace or "end" in period):
        values["approved_days"] = None
    mapped = _mapped(doc, period, stored, merging)
    if merging and "approved_days" in sent and "end" not in period:
        mapped["approved_through"] = None
    status = _status(doc, sent, period, current if merging else None)
    disposition = (doc.get("disposition") or "").strip()
    if status == "denied" and "denial_reason" not in sent and disposition and \
            disposition not in _STATUS_WORDS:
        values["denial_reason"] = disposition
    return AuthorizationInput(status=status, **mapped, **values)


def _stay_of(session: Session, ref: Any, field: str) -> int:
    """The stay a reference names: Encounter/<id>, or the visit number (identifier)."""
    if not isinstance(ref, dict):
        raise RecordInvalid(field, "name the stay: Encounter/<id> or the Encounter's "
                                   "identifier (the visit number)")
    text = ref.get("reference")
    if isinstance(text, str) and text:
        ident = search.row_id(text.removeprefix("Encounter/")) if text.startswith(
            "Encounter/") else None
        if ident is None or session.get(Encounter, ident) is None:
            raise RecordInvalid(field, f"{text} is not known here")
        return ident
    ident_ref = ref.get("identifier") or {}
    value, system = ident_ref.get("value"), ident_ref.get("system")
    if not value:
        raise RecordInvalid(field, "name the stay: Encounter/<id> or its identifier")
    query = select(Encounter.id).where(Encounter.visit_number == value)
    if system:
        query = query.where(Encounter.visit_system.in_(sorted(search_systems(system))))
    found = list(session.scalars(query.limit(2)))
    if not found:
        raise RecordInvalid(field, f"visit {value} is not known here")
    if len(found) > 1:
        raise RecordInvalid(field, f"visit {value} is ambiguous: give its system")
    return found[0]


def _same_patient(ref: Any, encounter: Encounter, field: str) -> None:
    text = (ref or {}).get("reference") if isinstance(ref, dict) else None
    if isinstance(text, str) and text.startswith("Patient/") and \
            text != f"Patient/{encounter.patient_id}":
        raise RecordInvalid(field, f"{text} is not the patient of Encounter/{encounter.id} "
                                   f"(Patient/{encounter.patient_id})")


def _reevaluate(session: Session, runtime: Runtime, encounter: Encounter, now: datetime) -> None:
    """The rules read the record (approved days, appeal deadline): evaluate the stay again."""
    book = runtime.rules.current
    if book is None:
        return
    session.flush()
    evaluation.evaluate(session, book, encounter, now)


def _base(request: Request) -> str:
    return str(request.url_for("metadata")).removesuffix("/metadata")


def _shaped(request: Request, body: dict, row: Any, status: int,
            headers: dict[str, str] | None) -> Response:
    """The written resource, or what `Prefer: return=` asks for instead."""
    shown = prefer.shaped(body, body, f"{body['resourceType']}/{body['id']} written",
                          request.headers.get("prefer"))
    if shown is None:  # return=minimal: the status and headers say it all
        return Response(status_code=status, headers={**stamp(row), **(headers or {})})
    return versioned(shown, row, status, headers)


# -- the writes --------------------------------------------------------------------------------
def write_claim(request: Request, runtime: Runtime, actor: Principal, doc: Any,
                target: str | None, expected: int | None) -> Response:
    """POST (target None) or PUT ClaimResponse/<target>."""
    now = runtime.clock.now()
    try:
        doc = _valid(doc, "ClaimResponse", FhirClaimResponse)
        with runtime.sessions() as session, session.begin():
            current = None
            if target is not None:
                ident = search.row_id(target)
                current = session.get(PayerAuthorization, ident) if ident else None
                if current is None:
                    raise NotFound(f"ClaimResponse/{target} is not known here")
                if doc.get("id") not in (None, target):
                    raise RecordInvalid("id", f"the id must be {target}, the id in the URL")
            refs = _extensions(doc, ENCOUNTER_EXTENSION)
            if refs or current is None:
                stay_id = _stay_of(session, refs[0].get("valueReference") if refs else None,
                                   "encounter")
                if current is not None and stay_id != current.encounter_id:
                    raise RecordInvalid("encounter", "an authorization stays on its stay "
                                                     f"(Encounter/{current.encounter_id})")
            else:
                stay_id = current.encounter_id
            encounter = stay.locked(session, stay_id)
            _same_patient(doc.get("patient"), encounter, "patient")
            if current is None and doc.get("preAuthRef"):
                current = session.scalars(select(PayerAuthorization).where(
                    PayerAuthorization.encounter_id == encounter.id,
                    PayerAuthorization.voided_at.is_(None),
                    PayerAuthorization.reference_number == doc["preAuthRef"])).first()
            created = current is None
            if doc.get("status") == "entered-in-error":
                if current is None:
                    raise RecordInvalid("fhir_status", "there is nothing to void: create the "
                                                  "authorization as active")
                revisions.void(session, current, actor, now,
                               doc.get("disposition") or "entered in error (EHR)", expected,
                               permission=Permission.UR_WRITE)
                auth = current
            else:
                data = authorization_input(doc, current, replace=target is not None)
                if current is None:
                    auth = authorizations.record(session, encounter, data, actor, now,
                                                 runtime.site, source="fhir")
                else:
                    auth = current
                    authorizations.update(session, auth, encounter, data, actor, now,
                                          runtime.site, reason="from the EHR (FHIR)",
                                          expected_version=expected)
            _reevaluate(session, runtime, encounter, now)
            session.flush()
            body = claim_response(auth, encounter.patient_id)
            patient = encounter.patient_id
    except RecordInvalid as problem:
        audit.note(request, "create" if target is None else "update", "ClaimResponse", target)
        return refused("ClaimResponse", problem)
    except (EngineError, FhirError):
        audit.note(request, "create" if target is None else "update", "ClaimResponse", target)
        raise
    audit.note(request, "create" if created else "update", "ClaimResponse", body["id"],
               patient)
    location = f"{_base(request)}/ClaimResponse/{auth.id}/_history/{auth.version}"
    return _shaped(request, body, auth, 201 if created else 200,
                   {"Location": location} if created else None)


def _direction(doc: dict) -> str | None:
    for category in doc.get("category") or ():
        for coding in category.get("coding") or ():
            if coding.get("system") == DIRECTION_SYSTEM:
                return coding.get("code")
    if doc.get("sent") and not doc.get("received"):
        return "outbound"
    if doc.get("received") and not doc.get("sent"):
        return "inbound"
    return None


def _channel(doc: dict) -> str | None:
    codings = [c for m in doc.get("medium") or () for c in m.get("coding") or ()]
    for coding in codings:
        if coding.get("system") == CHANNEL_SYSTEM:
            return coding.get("code")
    for coding in codings:
        if coding.get("system") == PARTICIPATION_MODE and coding.get("code") in CHANNEL_BY_MODE:
            return CHANNEL_BY_MODE[coding["code"]]
    return None


def communication_input(doc: dict) -> CommunicationInput:
    direction = _direction(doc)
    at = doc.get("received") if direction == "inbound" else doc.get("sent")
    when = _moment("at", at or doc.get("sent") or doc.get("received"))
    if when is None:
        raise RecordInvalid("at", "give when it was sent (outbound) or received (inbound)")
    summary = "\n".join(p["contentString"] for p in doc.get("payload") or ()
                        if isinstance(p.get("contentString"), str))
    return CommunicationInput(at=when, direction=direction or "", channel=_channel(doc) or "",
                              summary=summary)


def write_communication(request: Request, runtime: Runtime, actor: Principal,
                        doc: Any) -> Response:
    now = runtime.clock.now()
    try:
        doc = _valid(doc, "Communication", FhirCommunication)
        with runtime.sessions() as session, session.begin():
            auth = None
            abouts = [a.get("reference") for a in doc.get("about") or ()
                      if str(a.get("reference", "")).startswith("ClaimResponse/")]
            if abouts:
                ident = search.row_id(abouts[0].removeprefix("ClaimResponse/"))
                auth = session.get(PayerAuthorization, ident) if ident else None
                if auth is None:
                    raise RecordInvalid("about", f"{abouts[0]} is not known here")
            if doc.get("encounter"):
                stay_id = _stay_of(session, doc["encounter"], "encounter")
                if auth is not None and auth.encounter_id != stay_id:
                    raise RecordInvalid("about", f"{abouts[0]} is about another stay "
                                                 f"(Encounter/{auth.encounter_id})")
            elif auth is not None:
                stay_id = auth.encounter_id
            else:
                raise RecordInvalid("encounter", "name the stay (encounter) or the "
                                                 "authorization (about ClaimResponse/<id>)")
            encounter = stay.locked(session, stay_id)
            _same_patient(doc.get("subject"), encounter, "patient")
            entry = authorizations.communicate(session, encounter, auth,
                                               communication_input(doc), actor, now)
            _reevaluate(session, runtime, encounter, now)
            session.flush()
            body = communication(entry, encounter.patient_id, auth.payer if auth else None)
            patient = encounter.patient_id
    except RecordInvalid as problem:
        audit.note(request, "create", "Communication", None)
        return refused("Communication", problem)
    except (EngineError, FhirError):
        audit.note(request, "create", "Communication", None)
        raise
    audit.note(request, "create", "Communication", body["id"], patient)
    location = f"{_base(request)}/Communication/{entry.id}/_history/{entry.version}"
    return _shaped(request, body, entry, 201, {"Location": location})


def add_routes(router: APIRouter) -> None:
    writer = Depends(require(Permission.UR_WRITE))

    async def post_claim(request: Request, runtime: RuntimeDep,
                         actor: Principal = writer) -> Response:
        doc = await _json(request, runtime.settings.max_body_bytes)
        return await run_in_threadpool(write_claim, request, runtime, actor, doc, None, None)

    async def put_claim(cid: str, request: Request, runtime: RuntimeDep,
                        actor: Principal = writer) -> Response:
        expected = preconditions.if_match(request.headers.get("if-match"))
        doc = await _json(request, runtime.settings.max_body_bytes)
        return await run_in_threadpool(write_claim, request, runtime, actor, doc, cid,
                                       expected)

    async def post_communication(request: Request, runtime: RuntimeDep,
                                 actor: Principal = writer) -> Response:
        doc = await _json(request, runtime.settings.max_body_bytes)
        return await run_in_threadpool(write_communication, request, runtime, actor, doc)

    router.add_api_route("/ClaimResponse", post_claim, methods=["POST"],
                         name="create_ClaimResponse")
    router.add_api_route("/ClaimResponse/{cid}", put_claim, methods=["PUT"],
                         name="update_ClaimResponse")
    router.add_api_route("/Communication", post_communication, methods=["POST"],
                         name="create_Communication")
