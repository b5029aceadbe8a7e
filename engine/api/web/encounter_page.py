"""GET /encounters/{id}: one stay, its work with the reasons, and its timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.api.deps import RuntimeDep
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web import encounter_view
from engine.api.web.access import Viewer
from engine.api.web.flash import flash
from engine.api.web.people import display_name
from engine.api.web.render import page
from engine.core.declines import DECLINE_REASONS

router = APIRouter()


def render_encounter(request: Request, runtime: Runtime, encounter_id: int, *,
                     error: str | None = None, error_for: int | None = None,
                     error_field: str | None = None, status_code: int = 200,
                     typed: dict[str, str] | None = None) -> HTMLResponse:
    """The encounter page, optionally with a refused action's message beside its task and
    what was `typed` back in its form."""
    rulebook = runtime.rules.current
    with runtime.readers() as session:
        view = encounter_view.load(session, encounter_id, rulebook.book if rulebook else None,
                                   runtime.clock.now(), runtime.site.zone,
                                   lambda login: display_name(runtime.staffing, login))
    if view is None:
        return page(request, "missing.html", {"what": "stay"}, status_code=404)
    note(request, "read", "Encounter", str(encounter_id), view.header.patient_id)
    return page(request, "encounter.html", {
        "page": view, "message": None if error else flash(request),
        "error": error, "error_for": error_for, "error_field": error_field,
        "typed": typed or {}, "decline_reasons": DECLINE_REASONS,
        "return_to": f"/encounters/{encounter_id}",
    }, status_code=status_code)


@router.get("/encounters/{encounter_id}", response_class=HTMLResponse)
def encounter(request: Request, encounter_id: int, _user: Viewer,
              runtime: RuntimeDep) -> HTMLResponse:
    return render_encounter(request, runtime, encounter_id)
