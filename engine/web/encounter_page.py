"""GET /encounters/{id}: one stay, its work with the reasons, and its timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.security.audit import note
from engine.security.roles import Permission, Principal
from engine.tasks.staffing import of_session
from engine.web import encounter_view
from engine.web.access import Viewer
from engine.web.flash import flash
from engine.web.people import choices
from engine.web.render import page

router = APIRouter()


def render_encounter(request: Request, encounter_id: int, *, error: str | None = None,
                     error_for: int | None = None, error_field: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
    """The encounter page, optionally with a refused action's message beside its task."""
    runtime = request.app.state.runtime
    rulebook = runtime.intake.rulebook
    with runtime.readers() as session:
        view = encounter_view.load(session, encounter_id, rulebook.book if rulebook else None,
                                   runtime.clock.now(), runtime.site.zone)
        staffing = of_session(session)
    if view is None:
        return page(request, "missing.html", {"what": "stay"}, status_code=404)
    note(request, "read", "Encounter", str(encounter_id), view.header.patient_id)
    principal: Principal | None = getattr(request.state, "principal", None)
    people = choices(staffing) if principal and principal.can(Permission.TASK_ASSIGN) else []
    return page(request, "encounter.html", {
        "page": view, "people": people, "message": None if error else flash(request),
        "error": error, "error_for": error_for, "error_field": error_field,
        "return_to": f"/encounters/{encounter_id}",
    }, status_code=status_code)


@router.get("/encounters/{encounter_id}", response_class=HTMLResponse)
def encounter(request: Request, encounter_id: int,
              _user: Viewer) -> HTMLResponse:
    return render_encounter(request, encounter_id)
