"""Changing a Task through FHIR: PUT (the whole resource) or PATCH (JSON Patch), both
reduced to what the lifecycle allows.

PATCH takes a JSON Patch (application/json-patch+json, a list of operations) or a JSON
Merge Patch (a JSON object, as fhirpy's `save(fields=...)` sends). Either way the client
ends up sending back the Task it read with some elements changed. Allowed: `status` (with
`output[0].valueString` as a completion's outcome, an output of type
urn:engine:task-output|chosen-disposition as the discharge plan's chosen disposition,
`statusReason.text` as the reason of a hold, cancel or failure; `rejected` declines the work,
with `statusReason.coding` from urn:engine:decline-reason and optional `statusReason.text`,
text alone meaning "other"), `owner` (a reassignment: needs task:assign), and notes appended
at the end of `note`. Server-managed elements (meta, lastModified, executionPeriod,
businessStatus, text) are ignored. Any other difference is refused (422) naming the
elements, so a client never believes it changed what it did not. `If-Match: W/"<version>"`
must name the current version (412 otherwise; engine.api.fhir.preconditions).

The change runs as one transaction: lifecycle steps, then the re-evaluation of the
encounter (the one path), then the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jsonpatch
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fhir.resources.R4B.task import Task as FhirTask
from pydantic import ValidationError

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.fhir import preconditions, search
from engine.api.fhir.rule_outputs import json_response
from engine.api.fhir.tasks import TASK, chosen_of, owner_name, task
from engine.api.outcomes import FhirError
from engine.api.runtime import Runtime
from engine.api.security import audit
from engine.core.declines import DECLINE_REASON_SYSTEM, DECLINE_REASONS
from engine.core.errors import (
    InputTooLarge,
    InvalidInput,
    Malformed,
    NotApplicable,
    NotFound,
    RuleRefused,
    StaleVersion,
)
from engine.core.roles import Permission, Principal
from engine.fhir.reading import describe, parse_json
from engine.planning import evaluation
from engine.work import lifecycle
from engine.work.history import notes

SERVER_MANAGED = frozenset({"meta", "text", "lastModified", "executionPeriod", "businessStatus"})
CHANGEABLE = frozenset({"status", "statusReason", "output", "owner", "note"})
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", *JSON_TYPES)


@dataclass
class Change:
    status: str | None = None
    outcome: str | None = None
    reason: str | None = None
    reason_code: str | None = None  # a decline's coded reason (engine.core.declines)
    chosen: str | None = None  # the discharge plan's chosen disposition
    owner: tuple[str | None] | None = None  # (new owner,) when it changes
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.status is None and self.owner is None and not self.notes


def _texts(items: Any) -> list[str | None]:
    return [n.get("text") if isinstance(n, dict) else None for n in items or []]


def diff(current: dict, wanted: Any) -> Change:
    """What the client asks to change; an engine error (InvalidInput, NotApplicable,
    RuleRefused) naming what it asks for beyond that."""
    if not isinstance(wanted, dict) or wanted.get("resourceType") != "Task":
        raise Malformed("send a Task resource")
    try:
        FhirTask.model_validate(wanted)
    except ValidationError as exc:
        raise Malformed(describe("Task", exc)) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise Malformed(f"Task is not valid FHIR R4: {exc}") from exc
    if wanted.get("id") != current["id"]:
        raise InvalidInput(f"Task.id must be {current['id']}, the id in the URL")
    ignored = SERVER_MANAGED | CHANGEABLE | {"resourceType", "id"}
    refused = sorted(k for k in set(current) | set(wanted)
                     if k not in ignored and current.get(k) != wanted.get(k))
    if refused:
        raise RuleRefused("these Task elements are set by the rules and cannot be changed: "
                          + ", ".join(refused))
    change = Change()
    before, after = _texts(current.get("note")), _texts(wanted.get("note"))
    if after[:len(before)] != before:
        raise RuleRefused("notes cannot be edited or removed; append new ones at the end")
    change.notes = [t for t in after[len(before):] if t]
    if current.get("owner") != wanted.get("owner"):
        new_owner = owner_name(wanted["owner"]) if wanted.get("owner") else None
        if wanted.get("owner") and not new_owner:
            raise NotApplicable("Task.owner must name a user: identifier "
                                "urn:engine:user|<user name> or Practitioner/<user name>")
        if new_owner != owner_name(current.get("owner")):
            change.owner = (new_owner,)
    status_changed = wanted.get("status") != current.get("status")
    texts_changed = (wanted.get("output") != current.get("output")
                     or wanted.get("statusReason") != current.get("statusReason"))
    if texts_changed and not status_changed:
        raise RuleRefused("an outcome (output) or reason (statusReason) is given with the "
                          "status change it explains")
    if status_changed:
        change.status = wanted.get("status")
        outputs = wanted.get("output") or []
        change.outcome = next((o.get("valueString") for o in outputs
                               if isinstance(o, dict) and o.get("valueString")
                               and chosen_of([o]) is None), None)
        change.chosen = chosen_of(outputs)
        why = wanted.get("statusReason") or {}
        change.reason = why.get("text")
        if change.status == "rejected":
            codes = [c.get("code") for c in why.get("coding") or []
                     if c.get("system") in (None, DECLINE_REASON_SYSTEM)]
            change.reason_code = codes[0] if codes else None
            if change.reason == DECLINE_REASONS.get(change.reason_code or ""):
                change.reason = None  # the code's display said again, not words of its own
    return change


def if_match(request: Request) -> int | None:
    return preconditions.if_match(request.headers.get("if-match"))


async def _body(request: Request, accepted: tuple[str, ...], max_bytes: int) -> Any:
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in accepted:
        raise FhirError(415, f"Content-Type {media or '(none)'} is not accepted here: send "
                             f"{' or '.join(accepted)}")
    raw = await request.body()
    if len(raw) > max_bytes:
        raise InputTooLarge("request body too large")
    return parse_json(raw)  # InvalidFhir when it is not JSON: answered 400 by its family


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _patched(current: dict, patch: Any) -> Any:
    """JSON Patch (a list of operations) or, as fhirpy sends, a JSON Merge Patch (an object)."""
    if isinstance(patch, dict):
        return merge_patch(current, patch)
    if not isinstance(patch, list):
        raise Malformed("send a JSON Patch (a list of operations) or a merge patch")
    try:
        return jsonpatch.apply_patch(current, patch)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise NotApplicable(f"the patch does not apply: {exc}") from exc
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise Malformed(f"not a valid JSON Patch: {exc}") from exc


def update(request: Request, runtime: Runtime, tid: str, actor: Principal,
           expected: int | None, body: Any, is_patch: bool) -> JSONResponse:
    ident = search.row_id(tid)
    now = runtime.clock.now()
    with runtime.sessions() as session, session.begin():
        row = lifecycle.load(session, ident) if ident is not None else None
        if row is None:
            raise NotFound(f"Task/{tid} is not known here")
        if expected is not None and expected != row.version:
            raise StaleVersion(f"Task/{tid} is at version {row.version}, not {expected}: "
                               "read it again and retry")
        current = task(row, notes(session, [row.id]).get(row.id, []), runtime.staffing)
        change = diff(current, _patched(current, body) if is_patch else body)
        # A refused change raises a lifecycle.TaskError; the HTTP edge answers it by family.
        if change.owner is not None:
            lifecycle.reassign(session, row, change.owner[0], actor, now=now,
                               staffing=runtime.staffing)
        for text in change.notes:
            lifecycle.add_note(session, row, text, actor, now=now)
        if change.status is not None:
            person = runtime.staffing.person(actor.name)
            lifecycle.transition(session, row, change.status, actor, now=now,
                                 outcome=change.outcome, reason=change.reason,
                                 staffing=runtime.staffing,
                                 reason_code=change.reason_code,
                                 by_display=person.display if person else None,
                                 chosen=change.chosen)
            evaluation.after_work(session, runtime.rules.current, row, now)
        session.flush()
        body_out = TASK.render(session, [row], runtime.staffing)[0]
    audit.note(request, "patch" if is_patch else "update", "Task", str(row.id),
               row.patient_id)
    return json_response(body_out, row=row)


def add_routes(router: APIRouter) -> None:
    worker = Depends(require(Permission.TASK_WORK))

    async def put_task(tid: str, request: Request, runtime: RuntimeDep,
                       actor: Principal = worker) -> JSONResponse:
        body = await _body(request, JSON_TYPES, runtime.settings.max_body_bytes)
        return await run_in_threadpool(update, request, runtime, tid, actor, if_match(request),
                                       body, False)

    async def patch_task(tid: str, request: Request, runtime: RuntimeDep,
                         actor: Principal = worker) -> JSONResponse:
        body = await _body(request, PATCH_TYPES, runtime.settings.max_body_bytes)
        return await run_in_threadpool(update, request, runtime, tid, actor, if_match(request),
                                       body, True)

    router.add_api_route("/Task/{tid}", put_task, methods=["PUT"], name="update_Task")
    router.add_api_route("/Task/{tid}", patch_task, methods=["PATCH"], name="patch_Task")
