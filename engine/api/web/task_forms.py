"""POST /tasks/{id}/{action}: the task forms of the encounter page, then a redirect back.

A refused change (a missing outcome, a task someone else already closed) re-renders the
encounter page with the message next to the task, never a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.api.deps import Now, RuntimeDep
from engine.api.http_errors import status_of
from engine.api.security.audit import note
from engine.api.web.access import Viewer
from engine.api.web.encounter_page import render_encounter
from engine.api.web.render import page
from engine.api.web.signin import local_path
from engine.core.vocabulary import TaskStatus
from engine.planning import evaluation
from engine.work import lifecycle

router = APIRouter()

# action -> (lifecycle step, flash code, which form field a refusal is about)
ACTIONS = {
    "start": (TaskStatus.IN_PROGRESS, "started", None),
    "complete": (TaskStatus.COMPLETED, "completed", "outcome"),
    "decline": (TaskStatus.FAILED, "declined", "reason"),
    "note": (None, "noted", "text"),
    "reassign": (None, "reassigned", None),
}


@router.post("/tasks/{task_id}/{action}", response_class=HTMLResponse)
def act(request: Request, task_id: int, action: str, user: Viewer, runtime: RuntimeDep,
        now: Now, outcome: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "", owner: Annotated[str, Form()] = "",
        chosen: Annotated[str, Form()] = "",
        next_page: Annotated[str, Form(alias="next")] = "",
        version: Annotated[str, Form()] = "") -> Response:
    if action not in ACTIONS:
        return page(request, "missing.html", {"what": "action"}, status_code=404)
    step, done, field = ACTIONS[action]
    encounter_id = None
    try:
        with runtime.sessions() as session, session.begin():
            task = lifecycle.load(session, task_id)
            if task is None:
                return page(request, "missing.html", {"what": "task"}, status_code=404)
            encounter_id = task.encounter_id
            # recorded whatever the outcome: the audit trail keeps the answer's status too
            note(request, action, "Task", str(task_id), task.patient_id)
            seen = int(version) if version.isdigit() else None  # the version on the page
            if action == "note":
                lifecycle.add_note(session, task, text, user, now=now, expected_version=seen)
            elif action == "reassign":
                lifecycle.reassign(session, task, owner or None, user, now=now,
                                   expected_version=seen)
            else:
                assert step is not None  # every other action is a status change
                lifecycle.transition(session, task, step, user, now=now, outcome=outcome,
                                     reason=reason, expected_version=seen,
                                     chosen=chosen or None)
                evaluation.after_work(session, runtime.rules.current, task, now)
    except lifecycle.TaskError as exc:  # refused: nothing changed (the transaction rolled back)
        assert encounter_id is not None
        message = exc.message
        if isinstance(exc, lifecycle.Conflict):
            message = ("someone changed this task after you opened the page; it is shown "
                       "below as it is now: check it and try again")
        return render_encounter(request, runtime, encounter_id, error=message,
                                error_for=task_id, error_field=field, status_code=status_of(exc))
    back = local_path(next_page) if next_page else f"/encounters/{encounter_id}"
    sep = "&" if "?" in back else "?"
    anchor = f"#output-{task_id}" if back.startswith("/encounters/") else ""
    return RedirectResponse(f"{back}{sep}done={done}{anchor}", status_code=303)
