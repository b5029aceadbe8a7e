"""Rendering pages: the one Jinja2 environment (engine/api/web/layout.py) and the filters and
values every worklist page uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from engine.api.deps import get_runtime
from engine.api.web import display
from engine.api.web.access import csrf_input
from engine.api.web.layout import templates as TEMPLATES
from engine.api.web.people import display_name, for_task
from engine.core.roles import Permission

TEMPLATES.env.filters["words"] = display.words
TEMPLATES.env.filters["day"] = display.day
TEMPLATES.env.globals["finding"] = display.finding
TEMPLATES.env.globals["Permission"] = Permission


def query(params: dict[str, Any], **changes: Any) -> str:
    """The current query string with some parameters changed (sort links, filters)."""
    merged = {**params, **changes}
    return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})


TEMPLATES.env.globals["query"] = query


def page(request: Request, template: str, context: dict[str, Any],
         status_code: int = 200) -> HTMLResponse:
    """Render a page; every page knows its user, its CSRF field and its flash message."""
    principal = getattr(request.state, "principal", None)
    runtime = get_runtime(request)
    zone, staffing = runtime.site.zone, runtime.staffing
    return TEMPLATES.TemplateResponse(
        request, template,
        {"user": principal, "csrf": csrf_input(request),
         "local": lambda instant, fmt="%a %d %b %H:%M %Z": display.local(instant, zone, fmt),
         "localized": lambda text: display.localized(text, zone),
         # a person by display name (the login id goes in a tooltip), and whom a task of a
         # queue may be reassigned to (engine.api.web.people)
         "person": lambda name: display_name(staffing, name),
         "reassign_to": lambda queue, owner: for_task(staffing, queue, owner),
         # whether the signed-in person may start and complete work of a queue (lifecycle)
         "may_work": lambda queue: principal is None or staffing.may_work(principal.role,
                                                                          queue),
         "role_of": lambda queue: display.words(staffing.role_for_queue(queue)),
         **context},
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )
