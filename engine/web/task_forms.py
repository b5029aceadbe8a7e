"""POST /tasks/{id}/{action}: the task forms of the encounter page, then a redirect back.

A refused change (a missing outcome, a task someone else already closed) re-renders the
encounter page with the message next to the task, never a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.security.audit import note
from engine.tasks import lifecycle
from engine.web.access import Viewer
from engine.web.encounter_page import render_encounter
from engine.web.render import page

router = APIRouter()

# action -> (lifecycle step, flash code, which form field a refusal is about)
ACTIONS = {
    "start": ("in-progress", "started", None),
    "complete": ("completed", "completed", "outcome"),
    "decline": ("failed", "declined", "reason"),
    "note": (None, "noted", "text"),
    "reassign": (None, "reassigned", None),
}


def _safe_next(target: str, fallback: str) -> str:
    """Only paths on this site: never an absolute or scheme-relative address."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return fallback


@router.post("/tasks/{task_id}/{action}", response_class=HTMLResponse)
def act(request: Request, task_id: int, action: str, user: Viewer,
        outcome: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "", owner: Annotated[str, Form()] = "",
        next_page: Annotated[str, Form(alias="next")] = "") -> Response:
    if action not in ACTIONS:
        return page(request, "missing.html", {"what": "action"}, status_code=404)
    step, done, field = ACTIONS[action]
    runtime = request.app.state.runtime
    now = runtime.clock.now()
    encounter_id = patient_id = None
    try:
        with runtime.sessions() as session, session.begin():
            task = lifecycle.load(session, task_id)
            if task is None:
                return page(request, "missing.html", {"what": "task"}, status_code=404)
            encounter_id, patient_id = task.encounter_id, task.patient_id
            if action == "note":
                lifecycle.add_note(session, task, text, user, now=now)
            elif action == "reassign":
                lifecycle.reassign(session, task, owner or None, user, now=now)
            else:
                lifecycle.transition(session, task, step, user, now=now, outcome=outcome,
                                     reason=reason, rulebook=runtime.intake.rulebook)
    except lifecycle.TaskError as exc:  # refused: nothing changed (the transaction rolled back)
        assert encounter_id is not None
        return render_encounter(request, encounter_id, error=exc.message, error_for=task_id,
                                error_field=field, status_code=exc.status)
    note(request, "update", "Task", str(task_id), patient_id)
    back = _safe_next(next_page, f"/encounters/{encounter_id}")
    sep = "&" if "?" in back else "?"
    anchor = f"#output-{task_id}" if back.startswith("/encounters/") else ""
    return RedirectResponse(f"{back}{sep}done={done}{anchor}", status_code=303)
