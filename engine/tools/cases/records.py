"""A story step that writes the stay's UR record, through the services the web and FHIR
edges call (engine.work.ur_record), as the person whose role may write it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.roles import Principal
from engine.core.site import SiteProfile
from engine.rules.reference import Reference
from engine.storage.models import AvoidableDay, Barrier, Encounter
from engine.tools.cases.schema import StoryEvent, local_time
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    ReviewInput,
)
from engine.work.ur_record.problems import RecordInvalid

UR_NURSE = Principal("ur nurse (test story)", "user", "ur_nurse")
CASE_MANAGER = Principal("case manager (test story)", "user", "case_manager")


def review(session: Session, enc: Encounter, event: StoryEvent, when: datetime,
           site: SiteProfile, task_id: int | None = None) -> None:
    step = event.review
    assert step is not None
    day = step.reviewed_on or when.astimezone(site.zone).date()
    reviews.record(session, enc, ReviewInput(
        review_type=step.type, reviewed_on=day, level_of_care=step.level,
        criteria_result=step.result, next_review_on=step.next_review_on, task_id=task_id,
        advisor_outcome=step.advisor_outcome),
        UR_NURSE, when, site)


def write(session: Session, enc: Encounter, event: StoryEvent, when: datetime,
          site: SiteProfile, ref: Reference) -> None:
    """Make the step's one record entry (raises RecordInvalid with the services' message)."""
    if event.review is not None:
        review(session, enc, event, when, site)
    elif (auth := event.payer_authorization) is not None:
        authorizations.record(session, enc, AuthorizationInput(
            status=auth.status, approved_through=auth.approved_through,
            approved_days=auth.approved_days, denial_reason=auth.denial_reason,
            appeal_level=auth.appeal_level, appeal_deadline=auth.appeal_deadline,
            appeal_outcome=auth.appeal_outcome, decided_at=when), UR_NURSE, when, site)
    elif (bar := event.barrier) is not None:
        opened = local_time(bar.opened, site.zone) if bar.opened is not None else when
        barriers.open_barrier(session, enc, BarrierInput(reason_code=bar.reason,
                                                         opened_at=opened),
                              CASE_MANAGER, when, site, ref)
    elif event.resolve_barrier is not None:
        found = session.scalars(select(Barrier).where(
            Barrier.encounter_id == enc.id, Barrier.reason_code == event.resolve_barrier,
            Barrier.resolved_at.is_(None), Barrier.voided_at.is_(None))).first()
        if found is None:
            raise RecordInvalid("resolve_barrier", f"no open barrier {event.resolve_barrier}")
        barriers.resolve(session, found, CASE_MANAGER, when, resolution="resolved in story")
    elif (days := event.avoidable) is not None:
        avoidable_days.record(session, enc, AvoidableDayInput(
            first_day=days.first_day, last_day=days.last_day, reason_code=days.reason),
            UR_NURSE, when, site, ref)
    elif (decision := event.decide_avoidable) is not None:
        proposed = session.scalars(select(AvoidableDay).where(
            AvoidableDay.encounter_id == enc.id, AvoidableDay.status == avoidable_days.PROPOSED,
            AvoidableDay.first_day <= decision.day, AvoidableDay.last_day >= decision.day,
            AvoidableDay.voided_at.is_(None))).first()
        if proposed is None:
            raise RecordInvalid("decide_avoidable", f"no proposed avoidable day on "
                                                    f"{decision.day.isoformat()}")
        avoidable_days.decide(session, proposed, decision.confirm, UR_NURSE, when)
    session.flush()
