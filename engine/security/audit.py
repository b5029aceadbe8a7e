"""The audit trail: what each request read or changed, written after the response.

Handlers call `note()` for every patient-data resource they serve or change; the audit
middleware turns the notes (or, for a refused request, the request itself) into
AuditRecord rows with the caller, the outcome and the time.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request


@dataclass(frozen=True)
class Note:
    operation: str  # read | search | create | update | patch | login | ...
    resource_type: str | None
    resource_id: str | None
    patient_id: int | None


def note(
    request: Request,
    operation: str,
    resource_type: str | None,
    resource_id: str | None = None,
    patient_id: int | None = None,
) -> None:
    """Record that this request touched one resource (call once per resource served)."""
    notes: list[Note] = getattr(request.state, "audit_notes", None) or []
    notes.append(Note(operation, resource_type, resource_id, patient_id))
    request.state.audit_notes = notes


def notes(request: Request) -> list[Note]:
    return list(getattr(request.state, "audit_notes", None) or [])
