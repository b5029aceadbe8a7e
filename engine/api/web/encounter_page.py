"""GET /encounters/{id}: one stay, its work with the reasons, the UR record, and its
timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.api.deps import RuntimeDep
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web import encounter_view, ur_record_view
from engine.api.web.access import Viewer
from engine.api.web.flash import flash
from engine.api.web.people import choices, display_name
from engine.api.web.render import page
from engine.core import ur_record as codes
from engine.core.declines import DECLINE_REASONS
from engine.rules.reference import Reference
from engine.storage.models import Encounter

router = APIRouter()


def reference_of(runtime: Runtime) -> Reference:
    """The site's reference tables as the rules loaded them (the delay reasons)."""
    rulebook = runtime.rules.current
    return rulebook.book.reference if rulebook is not None else Reference()


def render_encounter(request: Request, runtime: Runtime, encounter_id: int, *,
                     error: str | None = None, error_for: int | None = None,
                     error_field: str | None = None, status_code: int = 200,
                     typed: dict[str, str] | None = None,
                     ur_error: ur_record_view.FormError | None = None,
                     review_task: int | None = None) -> HTMLResponse:
    """The encounter page, optionally with a refused action's message beside its task and
    what was `typed` back in its form (`ur_error`: a UR record form's)."""
    rulebook = runtime.rules.current
    now = runtime.clock.now()

    def name(login: str) -> str:
        return display_name(runtime.staffing, login)

    with runtime.readers() as session:
        view = encounter_view.load(session, encounter_id, rulebook.book if rulebook else None,
                                   now, runtime.site.zone, name)
        enc = session.get(Encounter, encounter_id) if view is not None else None
        ur = None if enc is None else ur_record_view.load(
            session, enc, now, runtime.site, reference_of(runtime), name, review_task)
    if view is None or ur is None:
        return page(request, "missing.html", {"what": "stay"}, status_code=404)
    note(request, "read", "Encounter", str(encounter_id), view.header.patient_id)
    for kind, record_id in ur_record_view.records_read(ur):
        note(request, "read", kind, str(record_id), view.header.patient_id)
    zone = runtime.site.zone
    view.timeline = sorted(view.timeline + ur_record_view.moments(ur, zone, name),
                           key=lambda m: m.at)
    return page(request, "encounter.html", {
        "page": view, "message": None if (error or ur_error) else flash(request),
        "error": error, "error_for": error_for, "error_field": error_field,
        "typed": typed or {}, "decline_reasons": DECLINE_REASONS,
        "return_to": f"/encounters/{encounter_id}",
        "ur": ur, "ur_error": ur_error, "codes": codes, "staff": choices(runtime.staffing),
        "requires_review": ur_record_view.requires_review,
        "avoidable_day_tasks": ur_record_view.AVOIDABLE_DAY_TASKS,
        "stored": lambda row, key: ur_record_view.value_of(row, key, zone),
        "now_local": now.astimezone(zone).strftime("%Y-%m-%dT%H:%M"),
    }, status_code=status_code)


@router.get("/encounters/{encounter_id}", response_class=HTMLResponse)
def encounter(request: Request, encounter_id: int, _user: Viewer,
              runtime: RuntimeDep) -> HTMLResponse:
    task = request.query_params.get("review_task", "")
    return render_encounter(request, runtime, encounter_id,
                            review_task=int(task) if task.isdigit() else None)
