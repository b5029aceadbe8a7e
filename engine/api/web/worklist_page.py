"""GET /worklist and /worklist/print: my open tasks, stat and overdue first, with counts and
filters.

Supervisors (worklist:all) may look at another person's list, a queue, or everyone's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.api.deps import RuntimeDep, StaffingDep
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web import display, worklist_view
from engine.api.web.access import Viewer
from engine.api.web.flash import flash
from engine.api.web.render import page
from engine.core.errors import NotPermitted
from engine.core.roles import Permission, Principal
from engine.core.site import PayerClass
from engine.core.vocabulary import OutputKind
from engine.storage.models import Encounter, RuleOutput
from engine.work.lifecycle import OPEN
from engine.work.staffing import Staffing
from engine.work.worklist import MAX_PAGE_SIZE, Filters, worklist

router = APIRouter()


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    options: list[tuple[str, str]]
    value: str


@dataclass(frozen=True)
class Subject:
    heading: str
    filters: Filters


class NotAllowed(NotPermitted):
    """Someone without worklist:all asked for another person's list."""


def _subject(user: Principal, chosen: str, staffing: Staffing) -> Subject:
    if not chosen or chosen == f"person:{user.name}":
        return Subject("My worklist", Filters(owner=user.name))
    if not user.can(Permission.WORKLIST_ALL):
        raise NotAllowed
    kind, _, name = chosen.partition(":")
    if kind == "person" and name:
        person = staffing.person(name)
        return Subject(f"Worklist of {person.display if person and person.display else name}",
                       Filters(owner=name))
    if kind == "queue" and name:
        return Subject(f"{display.words(name)} queue (unassigned)",
                       Filters(unassigned=True, queue=name))
    if kind == "unassigned":
        return Subject("Unassigned tasks (all queues)", Filters(unassigned=True))
    return Subject("All open tasks", Filters())


def _choosers(session: Session, staffing: Staffing) -> list[dict[str, str]]:
    out = [{"value": "all", "label": "Everyone (all open tasks)"},
           {"value": "unassigned", "label": "Unassigned (all queues)"}]
    queues = session.scalars(select(RuleOutput.queue).distinct().where(
        RuleOutput.kind == OutputKind.TASK, RuleOutput.task_status.in_(OPEN),
        RuleOutput.queue.is_not(None)))
    out += [{"value": f"queue:{q}", "label": f"Queue: {display.words(q)}"}
            for q in sorted(q for q in queues if q is not None)]
    out += [{"value": f"person:{p.name}", "label": p.display or p.name}
            for p in sorted(staffing.people, key=lambda p: (p.role, p.name))]
    return out


def _options(session: Session, column) -> list[str]:
    """The values a filter can take among open tasks (so no choice leads to nothing)."""
    query = (select(column).distinct().select_from(RuleOutput)
             .join(Encounter, Encounter.id == RuleOutput.encounter_id)
             .where(RuleOutput.kind == OutputKind.TASK, RuleOutput.task_status.in_(OPEN),
                    column.is_not(None)))
    return sorted(session.scalars(query))


def _task_types(session: Session) -> list[tuple[str, str]]:
    """Open task types by the title their rule gives them ("Transitional care contact")."""
    query = (select(RuleOutput.code, func.min(RuleOutput.title)).select_from(RuleOutput)
             .join(Encounter, Encounter.id == RuleOutput.encounter_id)
             .where(RuleOutput.kind == OutputKind.TASK, RuleOutput.task_status.in_(OPEN))
             .group_by(RuleOutput.code))
    named = [(code, title or display.words(code)) for code, title in session.execute(query)]
    return sorted(named, key=lambda pair: pair[1].lower())


def _filters(session: Session, params) -> tuple[Filters, list[Filter]]:
    unit, task_type = params.get("unit") or None, params.get("type") or None
    payer, status = params.get("payer") or None, params.get("status") or None
    units = _options(session, Encounter.unit)
    shown = [
        Filter("unit", "Unit", [(u, u) for u in units], unit or ""),
        Filter("type", "Task type", _task_types(session), task_type or ""),
        Filter("payer", "Payer", [(p, display.words(p)) for p in get_args(PayerClass)],
               payer or ""),
        Filter("status", "Status", [(s, display.words(s)) for s in OPEN], status or ""),
    ]
    chosen = Filters(unit=unit, task_type=task_type, payer_class=payer,
                     statuses=(status,) if status in OPEN else OPEN)
    return chosen, shown


def _render(request: Request, runtime: Runtime, staffing: Staffing, user: Principal,
            template: str) -> HTMLResponse:
    params = dict(request.query_params)
    params.pop("done", None)
    try:
        subject = _subject(user, params.get("for", ""), staffing)
    except NotAllowed:
        return page(request, "refused.html",
                    {"reason": "Only supervisors can open another person's worklist."},
                    status_code=403)
    zone = runtime.site.zone
    with runtime.readers() as session:
        narrowed, shown = _filters(session, params)
        base = subject.filters
        chosen = Filters(owner=base.owner, unassigned=base.unassigned, queue=base.queue,
                         unit=narrowed.unit, task_type=narrowed.task_type,
                         payer_class=narrowed.payer_class, statuses=narrowed.statuses)
        page_no = int(params["page"]) if params.get("page", "").isdigit() else 1
        result = worklist(session, runtime.clock.now(), zone, chosen, page=page_no,
                          page_size=MAX_PAGE_SIZE)
        table = worklist_view.rows(session, result, zone)
        choosers = _choosers(session, staffing) if user.can(Permission.WORKLIST_ALL) else []
    for patient_id in sorted({item.patient_id for item in result.items}):
        note(request, "search", "Task", None, patient_id)
    sort_key = params.get("sort") if params.get("sort") in worklist_view.SORTS else None
    direction = "desc" if params.get("dir") == "desc" else "asc"
    filtered = ", ".join(f"{f.label.lower()} {dict(f.options).get(f.value, f.value)}"
                         for f in shown if f.value)
    return page(request, template, {
        "heading": subject.heading, "rows": worklist_view.sort(table, sort_key,
                                                               direction == "desc"),
        "counts": {"overdue": result.overdue, "due_today": result.due_today,
                   "open": result.total},
        "result": result, "filters": shown, "filtered": filtered, "choosers": choosers,
        "params": params, "sort": sort_key, "direction": direction,
        "as_of": display.local(result.now, zone, "%a %d %b %Y %H:%M"),
        "message": flash(request), "show_owner": subject.filters.owner is None,
        "caption": f"{subject.heading}: open tasks, stat and overdue first",
    })


@router.get("/worklist", response_class=HTMLResponse)
def worklist_page(request: Request, user: Viewer, runtime: RuntimeDep,
                  staffing: StaffingDep) -> HTMLResponse:
    return _render(request, runtime, staffing, user, "worklist.html")


@router.get("/worklist/print", response_class=HTMLResponse)
def worklist_print(request: Request, user: Viewer, runtime: RuntimeDep,
                   staffing: StaffingDep) -> HTMLResponse:
    return _render(request, runtime, staffing, user, "worklist_print.html")
