"""The worklist as JSON (`GET /api/worklist`): what the web page shows, for other clients.

People see their own list; a caller with worklist:all (supervisors, the EHR) may ask for
anyone's (`owner=`), for the queue (`owner=` empty with `unassigned=true`) or for all.
"""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from engine.api.auth import require
from engine.api.deps import RuntimeDep
from engine.api.security import audit
from engine.core.errors import InvalidInput, NotPermitted
from engine.core.roles import Permission, Principal
from engine.work.lifecycle import STATUSES
from engine.work.worklist import Filters, Item, Worklist, worklist


def _json(value):
    return value.isoformat() if isinstance(value, datetime) else value


_FIELDS = tuple(f.name for f in fields(Item))


def as_json(page: Worklist) -> dict:
    return {
        "owner": page.filters.owner, "total": page.total, "overdue": page.overdue,
        "due_today": page.due_today, "page": page.page, "pages": page.pages,
        "page_size": page.page_size, "now": page.now.isoformat(),
        "items": [{k: _json(getattr(item, k)) for k in _FIELDS} for item in page.items],
    }


def build_router() -> APIRouter:
    router = APIRouter()
    reader = Depends(require(Permission.PATIENT_READ))

    @router.get("/worklist")
    def get_worklist(request: Request, runtime: RuntimeDep, caller: Principal = reader,
                     owner: str | None = None, unassigned: bool = False,
                     unit: str | None = None, task_type: str | None = None,
                     payer_class: str | None = None,
                     status: list[str] = Query(default=[]),  # noqa: B008 - FastAPI style
                     page: int = 1, page_size: int = 50) -> JSONResponse:
        everyone = caller.can(Permission.WORKLIST_ALL)
        if owner is None and not unassigned and not everyone:
            owner = caller.name
        if (owner != caller.name or unassigned) and not everyone:
            raise NotPermitted(f"role {caller.role} sees only its own worklist")
        unknown = [s for s in status if s not in STATUSES]
        if unknown:
            raise InvalidInput(f"status {unknown[0]!r}: use {', '.join(STATUSES)}")
        filters = Filters(owner=owner, unassigned=unassigned, unit=unit, task_type=task_type,
                          payer_class=payer_class)
        if status:
            filters = replace(filters, statuses=tuple(status))
        with runtime.readers() as session:
            result = worklist(session, runtime.clock.now(), runtime.site.zone, filters,
                              page=page, page_size=page_size)
        for item in result.items:
            audit.note(request, "search", "Task", str(item.task_id), item.patient_id)
        return JSONResponse(as_json(result))

    return router
