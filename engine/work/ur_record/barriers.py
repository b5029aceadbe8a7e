"""Discharge barriers: what stands in the way of a discharge, coded from the site's delay
reasons (rulesets/reference/delay_reasons.csv), with an owner, open until resolved.

The rules read the open ones (facts `open_barriers`, their categories and the oldest one's
age), so a ruleset can escalate a barrier left open; an open barrier on a day past the
expected discharge or the GMLOS proposes that day as avoidable (avoidable_days.derive).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.roles import Permission, Principal
from engine.core.site import SiteProfile
from engine.rules.reference import DelayReason, Reference
from engine.storage.models import Barrier, Encounter
from engine.work.ur_record import revisions
from engine.work.ur_record.inputs import BarrierInput, instant, text
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound, permitted
from engine.work.ur_record.stay import days_of

_SKEW = timedelta(minutes=5)


def reason(ref: Reference, code: str | None, field: str = "reason_code") -> DelayReason:
    """The delay reason for a code, or a message naming the site's list."""
    code = (code or "").strip()
    if not code:
        raise RecordInvalid(field, "choose a reason from the site's delay reasons")
    found = ref.delay_reasons.get(code)
    if found is None:
        known = ", ".join(sorted(ref.delay_reasons)) or "none: the site ships no list"
        raise RecordInvalid(field, f"unknown reason code {code!r}; the site's delay reasons "
                                   f"are {known}")
    return found


def _checked(data: BarrierInput, encounter: Encounter, site: SiteProfile, ref: Reference,
             now: datetime) -> dict:
    why = reason(ref, data.reason_code)
    opened = instant("opened_at", data.opened_at) or now
    if opened > now + _SKEW:
        raise RecordInvalid("opened_at", "the barrier's opening time is in the future")
    stay = days_of(encounter, now, site.zone)
    stay.check("opened_at", opened.astimezone(site.zone).date(), "the barrier's opening day")
    return {"reason_code": why.code, "category": why.category,
            "text": text(data.text, field="text"), "owner": text(data.owner, 100, field="owner"),
            "opened_at": opened}


def open_barrier(session: Session, encounter: Encounter, data: BarrierInput,
                 actor: Principal | str, now: datetime, site: SiteProfile, ref: Reference
                 ) -> Barrier:
    who = permitted(actor, Permission.BARRIER_WRITE)
    barrier = Barrier(encounter_id=encounter.id, opened_by=who, entered_by=who,
                      entered_at=now, updated_by=who, updated_at=now, version=1,
                      **_checked(data, encounter, site, ref, now))
    session.add(barrier)
    session.flush()
    return barrier


def correct(session: Session, barrier: Barrier, encounter: Encounter, data: BarrierInput,
            actor: Principal | str, now: datetime, site: SiteProfile, ref: Reference, *,
            reason_text: str | None = None, expected_version: int | None = None) -> bool:
    who = permitted(actor, Permission.BARRIER_WRITE)
    values = _checked(data, encounter, site, ref, now)
    if data.opened_at is None:
        values.pop("opened_at")
    elif barrier.resolved_at is not None and data.opened_at > barrier.resolved_at:
        resolved = barrier.resolved_at.astimezone(site.zone)
        raise RecordInvalid("opened_at", f"the barrier was resolved at {resolved:%Y-%m-%d %H:%M}"
                                         ": it was opened before that")
    return revisions.revise(session, barrier, values, who, now, reason_text, expected_version)


def resolve(session: Session, barrier: Barrier, actor: Principal | str, now: datetime, *,
            resolution: str | None, at: datetime | None = None,
            expected_version: int | None = None) -> None:
    """Close the barrier: when it stopped standing in the way, and how."""
    who = permitted(actor, Permission.BARRIER_WRITE)
    if barrier.resolved_at is not None:
        raise RecordInvalid("record", "this barrier is already resolved")
    when = instant("resolved_at", at) or now
    if when > now + _SKEW:
        raise RecordInvalid("resolved_at", "the resolution time is in the future")
    if when < barrier.opened_at:
        raise RecordInvalid("resolved_at", "a barrier is resolved after it was opened")
    revisions.revise(session, barrier, {"resolved_at": when, "resolved_by": who,
                                        "resolution": text(resolution, 500,
                                                           field="resolution")},
                     who, now, "resolved", expected_version)


def of_stay(session: Session, encounter_id: int, *, voided: bool = False) -> list[Barrier]:
    query = select(Barrier).where(Barrier.encounter_id == encounter_id)
    if not voided:
        query = query.where(Barrier.voided_at.is_(None))
    return list(session.scalars(query.order_by(Barrier.opened_at, Barrier.id)))


def get(session: Session, encounter_id: int, barrier_id: int) -> Barrier:
    barrier = session.get(Barrier, barrier_id)
    if barrier is None or barrier.encounter_id != encounter_id:
        raise RecordNotFound(f"no barrier {barrier_id} on this stay")
    return barrier
