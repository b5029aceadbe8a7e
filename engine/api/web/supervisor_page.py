"""GET /supervisor: caseload and overdue per person, the overdue work escalated to this
supervisor (each with its owner, who keeps it), the team's overdue work and unassigned
queues, each task with a reassign form offering the people of its role."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.api.deps import Now, RuntimeDep, StaffingDep
from engine.api.security.audit import note
from engine.api.web import caseload, display, worklist_view
from engine.api.web.access import Supervisor
from engine.api.web.flash import flash
from engine.api.web.render import page
from engine.work.worklist import MAX_PAGE_SIZE, Filters, worklist

router = APIRouter()


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor(request: Request, user: Supervisor, runtime: RuntimeDep,
               staffing: StaffingDep, now: Now) -> HTMLResponse:
    zone = runtime.site.zone
    with runtime.readers() as session:
        loads = caseload.per_person(session, staffing, now, zone)
        # escalated work stays with its owner; the supervisor sees it here, owner shown
        mine = worklist(session, now, zone, Filters(escalated_to=user.name),
                        page_size=MAX_PAGE_SIZE)
        waiting = worklist(session, now, zone, Filters(unassigned=True),
                           page_size=MAX_PAGE_SIZE)
        everyone = worklist(session, now, zone, Filters(overdue_only=True),
                            page_size=MAX_PAGE_SIZE)
        escalated = worklist_view.rows(session, mine, zone)
        queued = worklist_view.rows(session, waiting, zone)
        late = [r for r in worklist_view.rows(session, everyone, zone)
                if r.owner and r.owner != user.name]
    shown = (*mine.items, *waiting.items, *everyone.items)
    for patient_id in sorted({i.patient_id for i in shown}):
        note(request, "search", "Task", None, patient_id)
    return page(request, "supervisor.html", {
        "loads": loads, "escalated": escalated, "queued": queued, "late": late,
        "late_total": everyone.overdue, "escalated_total": mine.total,
        "queued_total": waiting.total, "message": flash(request),
        "as_of": display.local(now, zone, "%a %d %b %Y %H:%M"), "return_to": "/supervisor",
    })
