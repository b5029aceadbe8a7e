"""POST /encounters/{id}/reviews, /authorizations, /communications, /barriers and
/avoidable-days: the UR record's forms on the stay page, then a redirect back.

Each write is the caller's permission first (a refusal is the 403 page), then the visit lock
(the record and the rules never race intake), the service, the re-evaluation of the stay and
one commit. A value the service refuses re-renders the stay page (422; 409 when the record
changed since the page was read) with the message beside its field and every value typed
still in the form.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from engine.api.deps import Now, RuntimeDep
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web import ur_record_input as parse
from engine.api.web.access import Viewer
from engine.api.web.encounter_page import reference_of, render_encounter
from engine.api.web.error_page import refusal
from engine.api.web.render import page
from engine.api.web.ur_record_view import FormError, requires_review
from engine.core.roles import Permission, Principal
from engine.planning import evaluation
from engine.storage.models import Encounter, RuleOutput
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews, stay
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound, RecordStale

router = APIRouter()
Act = Callable[[Session, Encounter], Any]


async def _typed(request: Request) -> dict[str, str]:
    """Every field of the posted form, as typed (kept for the form on an error)."""
    async with request.form() as form:
        return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


Typed = Annotated[dict[str, str], Depends(_typed)]  # the corrections' module shares it


def _display(runtime: Runtime, name: str) -> str | None:
    person = runtime.staffing.person(name)
    return person.display if person is not None and person.display else None


def write(request: Request, runtime: Runtime, user: Principal, now: Any, encounter_id: int,
          *, form: str, typed: dict[str, str], permission: Permission, operation: str,
          resource: str, record_id: int | None, act: Act, done: str, anchor: str
          ) -> Response:
    """The one path of every UR record form (ur_record_corrections too): permission, lock,
    service, rules, commit."""
    try:
        with runtime.sessions() as session, session.begin():
            found = session.get(Encounter, encounter_id)
            if found is None:
                return page(request, "missing.html", {"what": "stay"}, status_code=404)
            # recorded whatever the answer: the audit trail keeps a refusal's status too
            note(request, operation, resource, str(record_id) if record_id else None,
                 found.patient_id)
            if not user.can(permission):
                return refusal(request, f"your role ({user.role}) may not "
                                        f"{permission.value}: {_WHO[permission]}")
            encounter = stay.locked(session, encounter_id)
            act(session, encounter)
            rulebook = runtime.rules.current
            if rulebook is not None:  # the rules read the record (facts): re-evaluate now
                session.flush()
                evaluation.evaluate(session, rulebook, encounter, now)
    except RecordNotFound:
        return page(request, "missing.html", {"what": "record"}, status_code=404)
    except (RecordInvalid, RecordStale) as exc:
        field = exc.field if isinstance(exc, RecordInvalid) else "record"
        message = exc.message if isinstance(exc, RecordInvalid) else str(exc)
        status = 422 if isinstance(exc, RecordInvalid) else 409  # a form to fix, or to redo
        return render_encounter(request, runtime, encounter_id, status_code=status,
                                ur_error=FormError(form, field, message, typed),
                                review_task=parse.review_task(typed))
    return RedirectResponse(f"/encounters/{encounter_id}?done={done}#{anchor}",
                            status_code=303)


_WHO = {Permission.UR_WRITE: "UR nurses record reviews, authorizations and avoidable days",
        Permission.BARRIER_WRITE: "case managers record discharge barriers"}


def _review_task(session: Session, encounter: Encounter, task_id: int | None) -> None:
    """A review recorded from a task is that stay's review task, or it is refused."""
    if task_id is None:
        return
    task = session.get(RuleOutput, task_id)
    if task is None or task.encounter_id != encounter.id or not requires_review(task):
        raise RecordInvalid("task_id", f"task {task_id} is not a review task of this stay")


@router.post("/encounters/{encounter_id}/reviews", response_class=HTMLResponse)
def record_review(request: Request, encounter_id: int, user: Viewer, runtime: RuntimeDep,
                  now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        data = parse.review(typed)
        _review_task(session, encounter, data.task_id)
        reviews.record(session, encounter, data, user, now, runtime.site,
                       by_display=_display(runtime, user.name))

    return write(request, runtime, user, now, encounter_id, form="review", typed=typed,
                 permission=Permission.UR_WRITE, operation="create",
                 resource="UtilizationReview", record_id=None, act=act,
                 done="review-recorded", anchor="ur-reviews")


@router.post("/encounters/{encounter_id}/reviews/{review_id}", response_class=HTMLResponse)
def correct_review(request: Request, encounter_id: int, review_id: int, user: Viewer,
                   runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        review = reviews.get(session, encounter_id, review_id)
        data = parse.review_correction(typed, review)
        why = parse.required_text(typed, "correction_reason",
                                  "say why the review is corrected (it keeps the original)")
        if not reviews.correct(session, review, encounter, data, user, now, runtime.site,
                               reason=why, expected_version=parse.version(typed)):
            raise RecordInvalid("record", "nothing changed: the review is as recorded")

    return write(request, runtime, user, now, encounter_id, form=f"review-{review_id}",
                 typed=typed, permission=Permission.UR_WRITE, operation="update",
                 resource="UtilizationReview", record_id=review_id, act=act,
                 done="review-corrected", anchor=f"review-{review_id}")


@router.post("/encounters/{encounter_id}/authorizations", response_class=HTMLResponse)
def record_authorization(request: Request, encounter_id: int, user: Viewer,
                         runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        authorizations.record(session, encounter, parse.authorization(typed, runtime.site.zone),
                              user, now, runtime.site)

    return write(request, runtime, user, now, encounter_id, form="authorization",
                 typed=typed, permission=Permission.UR_WRITE, operation="create",
                 resource="PayerAuthorization", record_id=None, act=act,
                 done="authorization-recorded", anchor="ur-authorizations")


@router.post("/encounters/{encounter_id}/authorizations/{auth_id}",
             response_class=HTMLResponse)
def update_authorization(request: Request, encounter_id: int, auth_id: int, user: Viewer,
                         runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        auth = authorizations.get(session, encounter_id, auth_id)
        data = parse.keeping_seconds(parse.authorization(typed, runtime.site.zone), auth)
        if not authorizations.update(session, auth, encounter, data, user, now, runtime.site,
                                     reason=(typed.get("change_reason") or "").strip() or None,
                                     expected_version=parse.version(typed)):
            raise RecordInvalid("record", "nothing changed: the authorization is as recorded")

    return write(request, runtime, user, now, encounter_id, form=f"authorization-{auth_id}",
                 typed=typed, permission=Permission.UR_WRITE, operation="update",
                 resource="PayerAuthorization", record_id=auth_id, act=act,
                 done="authorization-updated", anchor=f"authorization-{auth_id}")


@router.post("/encounters/{encounter_id}/communications", response_class=HTMLResponse)
def log_communication(request: Request, encounter_id: int, user: Viewer, runtime: RuntimeDep,
                      now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        chosen = parse.authorization_id(typed)
        auth = None
        if chosen is not None:
            try:
                auth = authorizations.get(session, encounter_id, chosen)
            except RecordNotFound:
                raise RecordInvalid("authorization_id", f"no authorization {chosen} on this "
                                                        "stay") from None
        authorizations.communicate(session, encounter, auth,
                                   parse.communication(typed, runtime.site.zone), user, now)

    return write(request, runtime, user, now, encounter_id, form="communication",
                 typed=typed, permission=Permission.UR_WRITE, operation="create",
                 resource="PayerCommunication", record_id=None, act=act,
                 done="communication-logged", anchor="ur-authorizations")


@router.post("/encounters/{encounter_id}/barriers", response_class=HTMLResponse)
def open_barrier(request: Request, encounter_id: int, user: Viewer, runtime: RuntimeDep,
                 now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        barriers.open_barrier(session, encounter, parse.barrier(typed), user, now,
                              runtime.site, reference_of(runtime))

    return write(request, runtime, user, now, encounter_id, form="barrier", typed=typed,
                 permission=Permission.BARRIER_WRITE, operation="create", resource="Barrier",
                 record_id=None, act=act, done="barrier-opened", anchor="ur-barriers")


@router.post("/encounters/{encounter_id}/barriers/{barrier_id}/resolve",
             response_class=HTMLResponse)
def resolve_barrier(request: Request, encounter_id: int, barrier_id: int, user: Viewer,
                    runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        barrier = barriers.get(session, encounter_id, barrier_id)
        barriers.resolve(session, barrier, user, now, resolution=typed.get("resolution"),
                         expected_version=parse.version(typed))

    return write(request, runtime, user, now, encounter_id, form=f"barrier-{barrier_id}",
                 typed=typed, permission=Permission.BARRIER_WRITE, operation="update",
                 resource="Barrier", record_id=barrier_id, act=act, done="barrier-resolved",
                 anchor=f"barrier-{barrier_id}")


@router.post("/encounters/{encounter_id}/avoidable-days", response_class=HTMLResponse)
def record_avoidable_days(request: Request, encounter_id: int, user: Viewer,
                          runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        avoidable_days.record(session, encounter, parse.avoidable_days(typed), user, now,
                              runtime.site, reference_of(runtime))

    return write(request, runtime, user, now, encounter_id, form="avoidable-days",
                 typed=typed, permission=Permission.UR_WRITE, operation="create",
                 resource="AvoidableDay", record_id=None, act=act, done="days-recorded",
                 anchor="ur-avoidable-days")


@router.post("/encounters/{encounter_id}/avoidable-days/{day_id}/decide",
             response_class=HTMLResponse)
def decide_avoidable_days(request: Request, encounter_id: int, day_id: int, user: Viewer,
                          runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    confirm = typed.get("decision") == "confirm"

    def act(session: Session, encounter: Encounter) -> None:
        if typed.get("decision") not in ("confirm", "reject"):
            raise RecordInvalid("decision", "confirm or reject the proposed days")
        day = avoidable_days.get(session, encounter_id, day_id)
        avoidable_days.decide(session, day, confirm, user, now, note=typed.get("note"),
                              responsible_party=typed.get("responsible_party") or None,
                              expected_version=parse.version(typed))

    return write(request, runtime, user, now, encounter_id, form=f"avoidable-day-{day_id}",
                 typed=typed, permission=Permission.UR_WRITE, operation="update",
                 resource="AvoidableDay", record_id=day_id, act=act,
                 done="days-confirmed" if confirm else "days-rejected",
                 anchor=f"avoidable-day-{day_id}")
