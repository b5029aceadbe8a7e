"""The audit trail: what each request read or changed, written before the answer leaves.

Handlers call `note()` for every patient-data resource they serve or change; the audit
middleware turns the notes (or, for a refused request, the request itself) into
AuditRecord rows with the caller, the outcome and the time, in one short transaction of
its own, as the response starts. If that write fails the caller gets a 503 instead of the
data: nothing is disclosed unaudited. Only the path is kept, never the query string (a
search by name or MRN would put patient data in the trail).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from fastapi import Request
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.security.middleware import HttpMiddleware
from engine.core.errors import EngineError, StorageUnavailable
from engine.storage.models import AuditRecord

log = logging.getLogger("engine.audit")

ACTIONS = {"read": "R", "vread": "R", "search": "E", "create": "C", "update": "U",
           "patch": "U", "delete": "D", "transaction": "E", "login": "E", "logout": "E",
           # task work (worklists): changes to an existing resource
           "start": "U", "complete": "U", "decline": "U", "cancel": "U", "assign": "U",
           "reassign": "U", "note": "U"}
METHOD_ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U",
                  "DELETE": "D"}


@dataclass(frozen=True)
class Note:
    operation: str  # read | search | create | update | patch | login | ...
    resource_type: str | None
    resource_id: str | None
    patient_id: int | None
    outcome: str | None = None  # 0 4 8 12; None: from the HTTP status


def note(
    request: Request,
    operation: str,
    resource_type: str | None,
    resource_id: str | None = None,
    patient_id: int | None = None,
    *,
    outcome: str | None = None,
) -> None:
    """Record that this request touched one resource (call once per resource served)."""
    notes: list[Note] = getattr(request.state, "audit_notes", None) or []
    notes.append(Note(operation, resource_type, resource_id, patient_id, outcome))
    request.state.audit_notes = notes


def notes(request: Request) -> list[Note]:
    return list(getattr(request.state, "audit_notes", None) or [])


def attempt(request: Request, name: str, kind: str) -> None:
    """Name the would-be caller of a sign-in, who is not a principal (yet)."""
    request.state.audit_actor = (name[:100], kind)


def _outcome(status: int) -> str:
    return "0" if status < 400 else "8" if status >= 500 else "4"


def records(state: dict, scope: Scope, status: int, at: datetime) -> list[dict]:
    """The AuditRecord rows (as column values) this request leaves: one per note, or one for
    a refused request. Plain values, inserted in one batch: a worklist page notes 50."""
    principal = state.get("principal")
    if principal is not None:
        actor, kind, role = principal.name, principal.kind, principal.role
    else:
        named = state.get("audit_actor")
        actor, kind = named if isinstance(named, tuple) else (named or "anonymous", "anonymous")
        role = None
    client = scope.get("client")
    base = {"at": at, "actor": actor[:100], "actor_kind": kind, "role": role,
            "status_code": status, "source": client[0][:100] if client else None,
            "path": str(scope.get("path", ""))[:300]}
    noted: list[Note] = state.get("audit_notes") or []
    if not noted:
        if status not in (401, 403):
            return []
        return [dict(base, action=METHOD_ACTIONS.get(scope.get("method", "GET"), "E"),
                     operation="access", resource_type=_resource_of(base["path"]),
                     resource_id=None, patient_id=None, outcome=_outcome(status))]
    return [dict(base, action=ACTIONS.get(n.operation, "E"), operation=n.operation[:40],
                 resource_type=n.resource_type, resource_id=n.resource_id,
                 patient_id=n.patient_id, outcome=n.outcome or _outcome(status))
            for n in noted]


def _resource_of(path: str) -> str | None:
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "fhir" and parts[1][:1].isupper():
        return parts[1][:40]
    return None


class AuditMiddleware(HttpMiddleware):
    """Writes the request's audit records when its response starts, before any byte leaves.

    `answer` is the HTTP edge's response to an engine error (engine.api.http_errors), which
    this middleware, outside every exception handler, cannot raise into. `sessions` gives
    the sessions to write with, asked per request (the app hands in its runtime's)."""

    def __init__(self, app: ASGIApp, answer: Callable[[EngineError], Response],
                 sessions: Callable[[], sessionmaker[Session]]) -> None:
        super().__init__(app)
        self.answer = answer
        self.sessions = sessions

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["state"]
        sessions = self.sessions()
        swallowed = False

        async def audited_send(message: Message) -> None:
            nonlocal swallowed
            if swallowed:
                return
            if message["type"] == "http.response.start":
                rows = records(state, scope, message["status"], datetime.now(UTC))
                if rows and not await _write(sessions, rows):
                    swallowed = True
                    refusal = self.answer(StorageUnavailable(
                        "the audit trail is unavailable, so nothing is served: try again "
                        "shortly"))
                    await refusal(scope, receive, send)
                    return
            await send(message)

        await self.app(scope, receive, audited_send)


async def _write(sessions: sessionmaker[Session], rows: list[dict]) -> bool:
    def write() -> None:
        with sessions() as session:
            session.execute(insert(AuditRecord), rows)  # one executemany, no ORM objects
            session.commit()

    try:
        await anyio.to_thread.run_sync(write)
        return True
    except Exception as exc:  # noqa: BLE001 - refuse the answer, log the kind of failure only
        log.error("audit write failed: %s", type(exc).__name__)
        return False
