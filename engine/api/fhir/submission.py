"""A FHIR write, from HTTP body to committed events and the answer.

Every body an authenticated client sends is stored: applied, or quarantined with the
reason it was refused (not valid FHIR, unknown target, too large or the wrong media type,
valid but not applicable), so it can be inspected and replayed. A refusal leaves as the
engine error it is (engine.core.errors), the HTTP edge answering it by family
(engine.api.http_errors: 400, 404, 413, 422; 415 is the FHIR edge's own FhirError). The
answer goes out only after the commit (store, then acknowledge).

POST Encounter is keyed by the visit number: a visit already on file is updated (200)
rather than duplicated; a new one is created (201). An update's If-Match and a create's
If-None-Exist are checked in the write's transaction (engine.api.fhir.preconditions): a
stale or ambiguous write is refused (412) and kept like any refusal; a create whose
condition matches one encounter is stored as ignored and answered with it (200). An
Observation with a code the engine does not use is stored as ignored and answered 200
with an informational OperationOutcome.

A transaction Bundle is one input, applied whole or refused whole. A batch Bundle is applied
piece by piece (engine.fhir.inbound.Unit: a Patient; an Encounter with what folds into it;
an Observation), each piece its own stored input, so one refused entry leaves the others
applied; the batch-response answers every entry with its status and, when it failed or was
not kept, an OperationOutcome.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload

from engine.api.fhir import preconditions, references, resources
from engine.api.fhir.body import Submitted
from engine.api.fhir.search import SearchRegistry
from engine.api.outcomes import FhirError
from engine.core.errors import (
    Conflict,
    EngineError,
    Malformed,
    NotApplicable,
    NotFound,
    StorageUnavailable,
)
from engine.core.events import EventError, Identifier
from engine.core.vocabulary import Channel, InputOutcome
from engine.fhir import inbound, reading
from engine.fhir.envelope import Context, wrap
from engine.fhir.outcome import outcome
from engine.fhir.reading import InvalidFhir
from engine.intake import patients
from engine.intake.path import Precondition
from engine.storage.models import Encounter, LabResult, Patient

log = logging.getLogger("engine.fhir")
STORAGE_DOWN = "storage unavailable; nothing was stored, please retry"
ENCOUNTER_LOAD = (selectinload(Encounter.locations), selectinload(Encounter.status_periods),
                  selectinload(Encounter.diagnoses))


@dataclass(slots=True)
class Answer:
    """What a write answers: `body` by default; `resource` (return=representation) and
    `note` (return=OperationOutcome) when they differ from it."""

    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)
    resource: dict | None = None
    note: str | None = None
    action: str | None = None  # what it did, for the audit (None: create or update by status)


@dataclass(frozen=True, slots=True)
class Conditions:
    """The conditional headers of a write, as sent (None: absent)."""

    if_match: str | None = None
    if_none_exist: str | None = None


def _stored_form(raw: bytes, context: Context) -> bytes:
    """The envelope when the body is JSON (so replay has its context), else the raw bytes."""
    try:
        reading.parse_json(raw)
    except InvalidFhir:
        return raw
    return wrap(raw, context)


def _keep(runtime, raw: bytes, caller: str, reason: str) -> None:
    try:
        runtime.intake.events(raw, channel=Channel.FHIR, sender=caller, control_id=None,
                              events=None, error=reason)
    except SQLAlchemyError as exc:
        log.error("storage unavailable; refused FHIR input not kept: %s", type(exc).__name__)
        raise StorageUnavailable(STORAGE_DOWN) from exc


def _refuse(runtime, raw: bytes, caller: str,
            error: EngineError | FhirError) -> EngineError | FhirError:
    """Keep the refused input with the refusal's text (its diagnostics), then hand it back."""
    _keep(runtime, raw, caller, str(error))
    return error


def _precondition(runtime, registry: SearchRegistry | None, conditions: Conditions,
                  interaction: str, target: str | None, resource: str) -> Precondition | None:
    """The check an update's If-Match or a create's If-None-Exist asks for; an engine error
    (400) when the header cannot be used."""
    if interaction == "update" and conditions.if_match is not None and target is not None:
        expected = preconditions.if_match(conditions.if_match)
        assert expected is not None
        return preconditions.CurrentVersion(int(target.partition("/")[2]), expected)
    if interaction == "create" and conditions.if_none_exist is not None:
        if resource != "Encounter" or registry is None:
            raise Malformed(f"If-None-Exist is not supported on {resource}: this server "
                            "keeps lab results, not Observation resources to search; send the "
                            "Observation without it (a resend of a result updates it)")
        return preconditions.none_exist(registry, resource, conditions.if_none_exist,
                                        runtime.site)
    return None


def submit(runtime, body: Submitted, interaction: str, base: str,
           target: str | None = None, resource: str = "Encounter",
           conditions: Conditions = Conditions(),
           registry: SearchRegistry | None = None) -> Answer:
    """Store and apply one create, update or transaction; raise the refusal (an engine
    error, or the FhirError of a media type not accepted) when refused. `registry` reads
    an If-None-Exist condition."""
    now = runtime.clock.now()
    context = Context(interaction, target, resources.instant(now))
    if body.problem is not None:
        raise _refuse(runtime, _stored_form(body.raw, context), body.caller, body.problem)
    try:
        doc = reading.parse_json(body.raw)
        reading.expect_type(doc, "Bundle" if interaction == "transaction" else resource)
    except InvalidFhir as exc:  # answered 400 by its family, as it is
        _keep(runtime, body.raw, body.caller, str(exc))
        raise
    try:
        with runtime.readers() as session:
            resolved = references.resolve(session, references.literal_references(doc, target),
                                          runtime.site)
    except SQLAlchemyError as exc:
        raise StorageUnavailable(STORAGE_DOWN) from exc
    context = Context(interaction, target, context.received, resolved)
    raw = wrap(body.raw, context)
    if target is not None and target not in resolved:
        raise _refuse(runtime, raw, body.caller, NotFound(f"{target} is not known here"))
    try:
        mapping = inbound.read(raw, runtime.site)
    except EventError as exc:  # not valid FHIR (InvalidFhir, 400) or not applicable (422)
        _keep(runtime, raw, body.caller, str(exc))
        raise
    if mapping.batch:
        return _batch(runtime, body, context, mapping, base)
    try:
        check = _precondition(runtime, registry, conditions, interaction, target, resource)
    except EngineError as exc:
        raise _refuse(runtime, raw, body.caller, exc) from None
    not_kept = [r.not_kept for r in mapping.entries if r.not_kept]
    try:
        with runtime.readers() as session:
            before = _on_file(session, mapping)
        receipt = runtime.intake.events(
            raw, channel=Channel.FHIR, sender=body.caller, control_id=mapping.control_id,
            events=mapping.events, precondition=check,
            ignored=None if mapping.events else "; ".join(not_kept))
    except Conflict as exc:  # stale (If-Match) or ambiguous (If-None-Exist): nothing applied
        raise _refuse(runtime, raw, body.caller, exc) from None
    except SQLAlchemyError as exc:
        log.error("storage unavailable; FHIR input not applied: %s", type(exc).__name__)
        raise StorageUnavailable(STORAGE_DOWN) from exc
    refused = (InputOutcome.ERROR, InputOutcome.REJECTED, InputOutcome.UNAVAILABLE)
    if receipt.outcome in refused or (receipt.reason and receipt.outcome != InputOutcome.IGNORED):
        reason = receipt.reason or f"input {receipt.outcome}"
        if receipt.outcome == InputOutcome.UNAVAILABLE:
            raise StorageUnavailable(reason)
        raise NotApplicable(reason)
    if receipt.outcome == InputOutcome.DUPLICATE:
        before = _everything(mapping)  # the first copy created it; this one changes nothing
    with runtime.readers() as session:
        if interaction == "transaction":
            return Answer(200, _transaction_response(session, mapping, before, base))
        if isinstance(check, preconditions.NoneExist) and check.matched is not None:
            return _matched_answer(session, check.matched, receipt.reason or "", base)
        if resource == "Observation":
            if receipt.outcome == InputOutcome.IGNORED:
                return Answer(200, outcome(receipt.reason or "Observation not kept",
                                           code="informational", severity="information"))
            return _observation_answer(session, receipt.message_id, base)
        return _encounter_answer(session, mapping, before, base, interaction)


# -- what existed before, and what exists now ---------------------------------------------------
def _key(kind: str, ident: Identifier | None) -> tuple[str, str, str] | None:
    return (kind, ident.system, ident.value) if ident is not None else None


def _on_file(session: Session, mapping: inbound.Mapping) -> set[tuple[str, str, str]]:
    found = set()
    for result in mapping.entries:
        if result.resource_type == "Patient" and result.mrn is not None:
            if patients.find(session, result.mrn) is not None:
                found.add(_key("Patient", result.mrn))
        elif result.resource_type == "Encounter" and result.visit is not None and \
                _encounter(session, result.visit, load=False) is not None:
            found.add(_key("Encounter", result.visit))
    return found  # type: ignore[return-value]


def _everything(mapping: inbound.Mapping) -> set[tuple[str, str, str]]:
    keys = {_key("Patient", r.mrn) for r in mapping.entries}
    keys |= {_key("Encounter", r.visit) for r in mapping.entries}
    return {k for k in keys if k is not None}


def _encounter(session: Session, visit: Identifier, load: bool = True) -> Encounter | None:
    stmt = select(Encounter).where(Encounter.visit_system == visit.system,
                                   Encounter.visit_number == visit.value)
    if load:
        stmt = stmt.options(*ENCOUNTER_LOAD)
    return session.scalars(stmt).first()


def _stamp(kind: str, rid: int, version: int, updated: datetime) -> dict[str, str]:
    return {"location": f"{kind}/{rid}/_history/{version}", "etag": resources.etag(version),
            "lastModified": resources.instant(updated)}


def _issues(result: inbound.EntryResult) -> list[dict]:
    """Information (what an unkept entry was, and what it was read for) and warnings (values
    not kept) of one entry, as OperationOutcome issues."""
    issues = []
    if result.not_kept:
        text = result.not_kept + "".join(f"; read as {use}" for use in result.used)
        issues.append({"severity": "information", "code": "informational", "diagnostics": text})
    # a value not kept for its length is `too-long`; any other warning (an MRN taken by
    # fallback, a record keyed by its resource id) is informational
    issues += [{"severity": "warning", "code": "too-long" if "characters" in w and
                "not kept" in w else "informational", "diagnostics": w}
               for w in result.warnings]
    return issues


def _entry_response(session: Session, result: inbound.EntryResult, before: set, base: str,
                    refused: EventError | str | None = None) -> dict:
    """One entry of a transaction- or batch-response."""
    if refused is not None:
        invalid = isinstance(refused, InvalidFhir)
        body = outcome(str(refused), code="invalid" if invalid else "processing")
        body["issue"] += _issues(result)
        return {"response": {"status": "400 Bad Request" if invalid else
                             "422 Unprocessable Entity", "outcome": body}}
    kind = result.resource_type
    issues = _issues(result)
    row: Patient | Encounter | None = None
    if kind == "Patient" and result.mrn is not None:
        row = patients.find(session, result.mrn)
    elif kind == "Encounter" and result.visit is not None:
        row = _encounter(session, result.visit, load=False)
    if row is not None:
        created = _key(kind, result.mrn if kind == "Patient" else result.visit) not in before
        response: dict = {"status": "201 Created" if created else "200 OK",
                          **_stamp(kind, row.id, row.version, row.updated_at)}
        if issues:
            response["outcome"] = {"resourceType": "OperationOutcome", "issue": issues}
        return {"fullUrl": f"{base}/{kind}/{row.id}", "response": response}
    if result.kept:
        folded = _encounter(session, result.visit, load=False) if result.visit else None
        if kind == "Observation":
            note = "stored as a lab result" if folded is None else \
                f"stored as a lab result of Encounter/{folded.id}"
        else:
            note = (f"stored as part of Encounter/{folded.id}" if folded is not None
                    else "not applied (inactive)")
        issues.insert(0, {"severity": "information", "code": "informational",
                          "diagnostics": f"{kind} {note}"})
    return {"response": {"status": "200 OK", "outcome": {"resourceType": "OperationOutcome",
                                                          "issue": issues}}}


def _transaction_response(session: Session, mapping: inbound.Mapping,
                          before: set, base: str) -> dict:
    entries = [_entry_response(session, result, before, base) for result in mapping.entries]
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


def _batch(runtime, body: Submitted, context: Context, mapping: inbound.Mapping,
           base: str) -> Answer:
    """Apply each piece of a batch as its own input; keep each refused entry for replay."""
    def piece(index: int) -> bytes:
        return wrap(body.raw, Context("batch", inbound.piece_target(index), context.received,
                                      context.references))

    refused: dict[int, EventError | str] = {i: r.error for i, r in enumerate(mapping.entries)
                                            if r.error is not None}
    try:
        with runtime.readers() as session:
            before = _on_file(session, mapping)
        for index, error in refused.items():
            _keep(runtime, piece(index), body.caller, str(error))
        for unit in mapping.units:
            control = f"{mapping.control_id}#{unit.index}" if mapping.control_id else None
            receipt = runtime.intake.events(piece(unit.index), channel=Channel.FHIR,
                                            sender=body.caller, control_id=control,
                                            events=unit.events)
            if receipt.outcome == InputOutcome.UNAVAILABLE:
                raise StorageUnavailable(receipt.reason or STORAGE_DOWN)
            if receipt.outcome in (InputOutcome.ERROR, InputOutcome.REJECTED) or (
                    receipt.reason and receipt.outcome != InputOutcome.IGNORED):
                for member in unit.members:
                    refused.setdefault(member, receipt.reason or f"input {receipt.outcome}")
            elif receipt.outcome == InputOutcome.DUPLICATE:
                before |= _everything(inbound.Mapping(
                    [], [mapping.entries[m] for m in unit.members]))
        if not mapping.units and not refused:  # only entries the engine does not keep
            runtime.intake.events(wrap(body.raw, context), channel=Channel.FHIR,
                                  sender=body.caller, control_id=mapping.control_id, events=[],
                                  ignored="; ".join(r.not_kept for r in mapping.entries
                                                    if r.not_kept) or "nothing to apply")
    except SQLAlchemyError as exc:
        log.error("storage unavailable; FHIR batch not applied: %s", type(exc).__name__)
        raise StorageUnavailable(STORAGE_DOWN) from exc
    with runtime.readers() as session:
        entries = [_entry_response(session, result, before, base, refused.get(i))
                   for i, result in enumerate(mapping.entries)]
    return Answer(200, {"resourceType": "Bundle", "type": "batch-response", "entry": entries})


def _encounter_answer(session: Session, mapping: inbound.Mapping, before: set, base: str,
                      interaction: str) -> Answer:
    visit = mapping.entries[0].visit
    row = _encounter(session, visit) if visit is not None else None
    if row is None:
        raise FhirError(500, "the encounter was stored but cannot be read back")
    created = interaction == "create" and _key("Encounter", visit) not in before
    done = "created" if created else "updated"
    return Answer(201 if created else 200, resources.encounter(row), _headers(row, base),
                  note=f"Encounter/{row.id} {done}; now at version {row.version}")


def _headers(row: Encounter, base: str) -> dict[str, str]:
    return {"Location": f"{base}/Encounter/{row.id}/_history/{row.version}",
            "ETag": resources.etag(row.version),
            "Last-Modified": resources.http_date(row.updated_at)}


def _matched_answer(session: Session, encounter_id: int, note: str, base: str) -> Answer:
    """A conditional create that matched one encounter: that encounter, unchanged."""
    row = session.get(Encounter, encounter_id, options=list(ENCOUNTER_LOAD))
    if row is None:
        raise FhirError(500, "the matching encounter cannot be read back")
    # Nothing changed, but the caller now sees the encounter: audited as a read.
    return Answer(200, resources.encounter(row), _headers(row, base), note=note, action="read")


def _observation_answer(session: Session, message_id: int | None, base: str) -> Answer:
    """201 with where the result was kept; a withdrawal (entered-in-error) keeps nothing and
    is answered 200 with an informational OperationOutcome."""
    row = session.scalars(select(LabResult).where(LabResult.message_id == message_id)
                          .order_by(LabResult.id)).first() if message_id else None
    if row is None:
        return Answer(200, outcome("Observation received: a withdrawal, nothing stored",
                                   code="informational", severity="information"))
    return Answer(201, outcome(f"Observation stored as lab result {row.id} ({row.name} "
                               f"{row.value:g} {row.unit})", code="informational",
                               severity="information"),
                  {"Location": f"{base}/Observation/{row.id}",
                   "Last-Modified": resources.http_date(row.recorded_at)},
                  resource=resources.observation(row, lab_encounter_id(session, row)))


def lab_encounter_id(session: Session, row: LabResult) -> int | None:
    """The encounter a lab result was ordered in, when it is on file."""
    if row.visit_system is None or row.visit_number is None:
        return None
    found = _encounter(session, Identifier(row.visit_system, row.visit_number, "VN"),
                       load=False)
    return found.id if found is not None else None
