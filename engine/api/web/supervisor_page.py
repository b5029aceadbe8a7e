"""GET /supervisor: caseload and overdue per person, escalations, the team's overdue work
and unassigned queues, each task with a reassign form."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from engine.api.deps import Now, RuntimeDep, StaffingDep
from engine.api.security.audit import note
from engine.api.web import caseload, display, worklist_view
from engine.api.web.access import Supervisor
from engine.api.web.flash import flash
from engine.api.web.people import choices
from engine.api.web.render import page
from engine.work.worklist import MAX_PAGE_SIZE, Filters, worklist

router = APIRouter()


@router.get("/supervisor", response_class=HTMLResponse)
def supervisor(request: Request, user: Supervisor, runtime: RuntimeDep,
               staffing: StaffingDep, now: Now) -> HTMLResponse:
    zone = runtime.site.zone
    with runtime.readers() as session:
        loads = caseload.per_person(session, staffing, now, zone)
        mine = worklist(session, now, zone, Filters(owner=user.name), page_size=MAX_PAGE_SIZE)
        waiting = worklist(session, now, zone, Filters(unassigned=True),
                           page_size=MAX_PAGE_SIZE)
        # overdue work comes first in the shared order, so one page holds it
        everyone = worklist(session, now, zone, Filters(), page_size=MAX_PAGE_SIZE)
        escalated = [r for r in worklist_view.rows(session, mine, zone) if r.escalated]
        queued = worklist_view.rows(session, waiting, zone)
        late = [r for r in worklist_view.rows(session, everyone, zone)
                if r.overdue and r.owner and r.owner != user.name]
    shown = (*mine.items, *waiting.items, *(i for i in everyone.items if i.overdue))
    for patient_id in sorted({i.patient_id for i in shown}):
        note(request, "search", "Task", None, patient_id)
    return page(request, "supervisor.html", {
        "loads": loads, "escalated": escalated, "queued": queued, "late": late,
        "late_total": everyone.overdue,
        "queued_total": waiting.total, "people": choices(staffing), "message": flash(request),
        "as_of": display.local(now, zone, "%a %d %b %Y %H:%M"), "return_to": "/supervisor",
    })
