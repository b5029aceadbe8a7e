"""POST /tasks/{id}/{action} and POST /proposals/{id}/decline: the forms of the encounter
page, then a redirect back.

A refused change (a missing outcome, a decline without its reason, a task someone else
already closed) re-renders the encounter page with the message next to the task and what
was typed still in the form, never a 500.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from engine.api.deps import Now, RuntimeDep
from engine.api.http_errors import status_of
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web.access import Viewer
from engine.api.web.encounter_page import render_encounter
from engine.api.web.render import page
from engine.api.web.signin import local_path
from engine.core.vocabulary import TaskStatus
from engine.planning import evaluation
from engine.work import lifecycle, proposals

router = APIRouter()

# action -> (lifecycle step, flash code, which form field a refusal is about)
ACTIONS = {
    "start": (TaskStatus.IN_PROGRESS, "started", None),
    "complete": (TaskStatus.COMPLETED, "completed", "outcome"),
    "decline": (TaskStatus.REJECTED, "declined", "reason_code"),
    "note": (None, "noted", "text"),
    "reassign": (None, "reassigned", None),
}


# The form offers the coded list: words alone ("other" over FHIR) are not a choice here.
CHOOSE_A_REASON = "a decline needs a reason: choose one from the list (Other, with words)"


@router.post("/tasks/{task_id}/{action}", response_class=HTMLResponse)
def act(request: Request, task_id: int, action: str, user: Viewer, runtime: RuntimeDep,
        now: Now, outcome: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "", owner: Annotated[str, Form()] = "",
        reason_code: Annotated[str, Form()] = "",
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
                                   expected_version=seen, staffing=runtime.staffing)
            else:
                assert step is not None  # every other action is a status change
                if action == "decline" and not reason_code:
                    raise lifecycle.Refused(CHOOSE_A_REASON)
                lifecycle.transition(session, task, step, user, now=now, outcome=outcome,
                                     reason=reason, expected_version=seen,
                                     staffing=runtime.staffing,
                                     reason_code=reason_code or None,
                                     by_display=_display(runtime, user.name),
                                     chosen=chosen or None)
                evaluation.after_work(session, runtime.rules.current, task, now)
    except lifecycle.TaskError as exc:  # refused: nothing changed (the transaction rolled back)
        assert encounter_id is not None
        message = exc.message
        if isinstance(exc, lifecycle.Conflict):
            message = ("someone changed this task after you opened the page; it is shown "
                       "below as it is now: check it and try again")
        typed = {"outcome": outcome, "reason": reason, "reason_code": reason_code, "text": text}
        return render_encounter(request, runtime, encounter_id, error=message,
                                error_for=task_id, error_field=field, status_code=status_of(exc),
                                typed=typed)
    return _back(next_page, encounter_id, task_id, done)


def _display(runtime: Runtime, name: str) -> str | None:
    """The person's name as the timeline shows it (the staffing file's), if known."""
    person = runtime.staffing.person(name)
    return person.display if person is not None and person.display else None


def _back(next_page: str, encounter_id: int | None, output_id: int, done: str) -> Response:
    back = local_path(next_page) if next_page else f"/encounters/{encounter_id}"
    sep = "&" if "?" in back else "?"
    anchor = f"#output-{output_id}" if back.startswith("/encounters/") else ""
    return RedirectResponse(f"{back}{sep}done={done}{anchor}", status_code=303)


@router.post("/proposals/{output_id}/decline", response_class=HTMLResponse)
def decline_proposal(request: Request, output_id: int, user: Viewer, runtime: RuntimeDep,
                     now: Now, reason: Annotated[str, Form()] = "",
                     reason_code: Annotated[str, Form()] = "",
                     next_page: Annotated[str, Form(alias="next")] = "",
                     version: Annotated[str, Form()] = "") -> Response:
    """A transition proposal that does not fit: withdrawn with the reason, and kept as a
    decision (its confirm task goes with it at the re-evaluation)."""
    encounter_id = None
    try:
        with runtime.sessions() as session, session.begin():
            proposal = proposals.load(session, output_id)
            if proposal is None:
                return page(request, "missing.html", {"what": "proposal"}, status_code=404)
            encounter_id = proposal.encounter_id
            note(request, "decline", "ServiceRequest", str(output_id), proposal.patient_id)
            if not reason_code:
                raise lifecycle.Refused(CHOOSE_A_REASON)
            proposals.decline(session, proposal, user, now=now, reason_code=reason_code or None,
                              reason=reason, by_display=_display(runtime, user.name),
                              expected_version=int(version) if version.isdigit() else None,
                              staffing=runtime.staffing)
            evaluation.after_work(session, runtime.rules.current, proposal, now)
    except lifecycle.TaskError as exc:
        assert encounter_id is not None
        message = exc.message
        if isinstance(exc, lifecycle.Conflict):
            message = ("someone changed this proposal after you opened the page; it is shown "
                       "below as it is now: check it and try again")
        return render_encounter(request, runtime, encounter_id, error=message,
                                error_for=output_id, error_field="reason_code",
                                status_code=status_of(exc),
                                typed={"reason": reason, "reason_code": reason_code})
    return _back(next_page, encounter_id, output_id, "proposal-declined")
