"""POST /encounters/{id}/barriers/{bid} and /avoidable-days/{did}: a barrier or avoidable
days corrected; POST .../{record}/void for a review, an authorization, a payer communication,
a barrier or avoidable days entered in error.

Each goes the one path of the UR record's forms (ur_record_forms.write: permission, visit
lock, service, re-evaluation, one commit, the audit trail). A correction or a void needs a
reason and the version the page was read at (409 when the record changed since); the
services keep the record as it was (RecordRevision). A voided record stays on the page,
struck through with its reason, and no longer counts anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from engine.api.deps import Now, RuntimeDep
from engine.api.web import ur_record_input as parse
from engine.api.web.access import Viewer
from engine.api.web.encounter_page import reference_of
from engine.api.web.ur_record_forms import Typed, write
from engine.core.roles import Permission
from engine.storage.models import Encounter
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews, revisions
from engine.work.ur_record.problems import RecordInvalid

router = APIRouter()


def _reason(typed: dict[str, str], what: str) -> str:
    return parse.required_text(typed, "correction_reason",
                               f"say why the {what} is corrected (it keeps the original)")


@router.post("/encounters/{encounter_id}/barriers/{barrier_id}", response_class=HTMLResponse)
def correct_barrier(request: Request, encounter_id: int, barrier_id: int, user: Viewer,
                    runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        barrier = barriers.get(session, encounter_id, barrier_id)
        data = parse.barrier_correction(typed, runtime.site.zone, barrier)
        why = _reason(typed, "barrier")
        if not barriers.correct(session, barrier, encounter, data, user, now, runtime.site,
                                reference_of(runtime), reason_text=why,
                                expected_version=parse.version(typed)):
            raise RecordInvalid("record", "nothing changed: the barrier is as recorded")

    return write(request, runtime, user, now, encounter_id,
                 form=f"barrier-{barrier_id}-correct", typed=typed,
                 permission=Permission.BARRIER_WRITE, operation="update", resource="Barrier",
                 record_id=barrier_id, act=act, done="barrier-corrected",
                 anchor=f"barrier-{barrier_id}")


@router.post("/encounters/{encounter_id}/avoidable-days/{day_id}",
             response_class=HTMLResponse)
def correct_avoidable_days(request: Request, encounter_id: int, day_id: int, user: Viewer,
                           runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
    def act(session: Session, encounter: Encounter) -> None:
        day = avoidable_days.get(session, encounter_id, day_id)
        data = parse.avoidable_days(typed, barrier_id=day.barrier_id)
        why = _reason(typed, "avoidable day record")
        if not avoidable_days.correct(session, day, encounter, data, user, now, runtime.site,
                                      reference_of(runtime), reason_text=why,
                                      expected_version=parse.version(typed)):
            raise RecordInvalid("record", "nothing changed: the days are as recorded")

    return write(request, runtime, user, now, encounter_id,
                 form=f"avoidable-day-{day_id}-correct", typed=typed,
                 permission=Permission.UR_WRITE, operation="update", resource="AvoidableDay",
                 record_id=day_id, act=act, done="days-corrected",
                 anchor=f"avoidable-day-{day_id}")


# what can be voided: (path part, form name, resource type, permission, its row on a stay)
Fetch = Callable[[Session, int, int], Any]
_VOIDABLE: dict[str, tuple[str, str, Permission, Fetch]] = {
    "reviews": ("review", "UtilizationReview", Permission.UR_WRITE, reviews.get),
    "authorizations": ("authorization", "PayerAuthorization", Permission.UR_WRITE,
                       authorizations.get),
    "communications": ("communication", "PayerCommunication", Permission.UR_WRITE,
                       authorizations.communication),
    "barriers": ("barrier", "Barrier", Permission.BARRIER_WRITE, barriers.get),
    "avoidable-days": ("avoidable-day", "AvoidableDay", Permission.UR_WRITE,
                       avoidable_days.get),
}


def _void_route(kind: str) -> None:
    name, resource, permission, fetch = _VOIDABLE[kind]

    def void(request: Request, encounter_id: int, record_id: int, user: Viewer,
             runtime: RuntimeDep, now: Now, typed: Typed) -> Response:
        def act(session: Session, encounter: Encounter) -> None:
            row = fetch(session, encounter_id, record_id)
            revisions.void(session, row, user, now, typed.get("void_reason") or "",
                           parse.version(typed), permission=permission)

        return write(request, runtime, user, now, encounter_id,
                     form=f"{name}-{record_id}-void", typed=typed, permission=permission,
                     operation="update", resource=resource, record_id=record_id, act=act,
                     done=f"{name}-voided", anchor=f"{name}-{record_id}")

    void.__name__ = f"void_{name.replace('-', '_')}"
    router.post(f"/encounters/{{encounter_id}}/{kind}/{{record_id}}/void",
                response_class=HTMLResponse)(void)


for _kind in _VOIDABLE:
    _void_route(_kind)
