"""Utilization reviews: the level of care reviewed against the site's criteria set, the
determination, what was sent to the payer and when the next review is due.

The next review defaults to the site's continued-stay cadence for the stay's payer class
(site profile `ur_review_days`) counted from the review's day; a person may set another day,
and the record says it was overridden. The rules count the next continued-stay review from
the last review recorded (engine.rules facts `next_review_date`).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core import ur_record as codes
from engine.core.roles import Permission, Principal
from engine.core.site import SiteProfile
from engine.storage.models import Encounter, RuleOutput, UtilizationReview
from engine.work.ur_record import revisions
from engine.work.ur_record.inputs import ReviewInput, code, text
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound, permitted
from engine.work.ur_record.stay import days_of


def _checked(data: ReviewInput, encounter: Encounter, site: SiteProfile,
             now: datetime) -> dict:
    code("review_type", data.review_type, codes.REVIEW_TYPES)
    code("level_of_care", data.level_of_care, codes.LEVELS_OF_CARE)
    code("criteria_result", data.criteria_result, codes.CRITERIA_RESULTS)
    code("advisor_outcome", data.advisor_outcome, codes.ADVISOR_OUTCOMES, required=False)
    stay = days_of(encounter, now, site.zone)
    today = now.astimezone(site.zone).date()
    if data.reviewed_on > today:
        raise RecordInvalid("reviewed_on", f"the review date {data.reviewed_on.isoformat()} "
                                           "is in the future")
    retrospective = data.review_type == "retrospective"
    if retrospective:  # after the discharge, of a stay that is over
        if not stay.discharged:
            raise RecordInvalid("review_type", "a retrospective review is of a stay after its "
                                               "discharge; this patient is still in")
        if stay.first is not None and data.reviewed_on < stay.first:
            stay.check("reviewed_on", data.reviewed_on, "the review date")
    else:
        stay.check("reviewed_on", data.reviewed_on, "the review date")
    if data.condition_code_44 and retrospective:
        raise RecordInvalid("condition_code_44", "condition code 44 changes the level of care "
                                                 "before the discharge, never in a "
                                                 "retrospective review")
    if data.condition_code_44 and data.criteria_result == "met":
        raise RecordInvalid("condition_code_44", "condition code 44 is for an inpatient order "
                                                 "the criteria do not support; this review "
                                                 "found them met")
    interval = site.review_interval_days(encounter.payer_class)
    # a review after the discharge has no next review
    cadence = (data.reviewed_on + timedelta(days=math.ceil(interval))
               if interval and not retrospective else None)
    if data.next_review_on is not None and retrospective:
        raise RecordInvalid("next_review_on", "a retrospective review is after the discharge: "
                                              "there is no next review")
    next_on = data.next_review_on or cadence
    if next_on is not None and next_on <= data.reviewed_on:
        raise RecordInvalid("next_review_on", f"the next review date {next_on.isoformat()} "
                                              "is not after this review")
    referred = data.advisor_referred or data.criteria_result == "advisor_referral"
    if data.advisor_outcome and not referred:
        raise RecordInvalid("advisor_outcome", "a physician advisor outcome needs a "
                                               "physician advisor referral")
    values = asdict(data)
    values.update(next_review_on=next_on, advisor_referred=referred,
                  next_review_overridden=(data.next_review_on is not None
                                          and data.next_review_on != cadence),
                  criteria_set=text(data.criteria_set, 100, field="criteria_set"),
                  clinical_summary=text(data.clinical_summary, 20000,
                                        field="clinical_summary"),
                  advisor_name=text(data.advisor_name, 200, field="advisor_name"),
                  advisor_outcome=data.advisor_outcome or ("pending" if referred else None))
    return values


def _task_of_stay(session: Session, encounter: Encounter, task_id: int | None) -> None:
    """A review recorded from a task belongs to that task's stay (never another patient's)."""
    if task_id is None:
        return
    task = session.get(RuleOutput, task_id)
    if task is None or task.encounter_id != encounter.id or task.kind != "task":
        raise RecordInvalid("task_id", f"task {task_id} is not a task of this stay")


def record(session: Session, encounter: Encounter, data: ReviewInput, actor: Principal | str,
           now: datetime, site: SiteProfile, *, by_display: str | None = None
           ) -> UtilizationReview:
    """Keep a review of the stay (the caller holds the visit lock and re-evaluates after)."""
    who = permitted(actor, Permission.UR_WRITE)
    values = _checked(data, encounter, site, now)
    _task_of_stay(session, encounter, data.task_id)
    review = UtilizationReview(encounter_id=encounter.id, reviewer=who,
                               reviewer_display=by_display, entered_by=who, entered_at=now,
                               updated_by=who, updated_at=now, version=1, **values)
    session.add(review)
    session.flush()
    return review


def correct(session: Session, review: UtilizationReview, encounter: Encounter,
            data: ReviewInput, actor: Principal | str, now: datetime, site: SiteProfile, *,
            reason: str | None, expected_version: int | None = None) -> bool:
    """Correct a review; the review as it was is kept (engine.work.ur_record.revisions)."""
    who = permitted(actor, Permission.UR_WRITE)
    values = _checked(data, encounter, site, now)
    values.pop("task_id", None)
    return revisions.revise(session, review, values, who, now, reason,
                            expected_version)


def of_stay(session: Session, encounter_id: int, *, voided: bool = False
            ) -> list[UtilizationReview]:
    """The stay's reviews, newest first (void ones only when asked)."""
    query = select(UtilizationReview).where(UtilizationReview.encounter_id == encounter_id)
    if not voided:
        query = query.where(UtilizationReview.voided_at.is_(None))
    return list(session.scalars(query.order_by(UtilizationReview.reviewed_on.desc(),
                                               UtilizationReview.id.desc())))


def get(session: Session, encounter_id: int, review_id: int) -> UtilizationReview:
    review = session.get(UtilizationReview, review_id)
    if review is None or review.encounter_id != encounter_id:
        raise RecordNotFound(f"no review {review_id} on this stay")
    return review


def for_task(session: Session, task_id: int) -> UtilizationReview | None:
    """The review recorded from a review task, if any (not void)."""
    return session.scalars(select(UtilizationReview).where(
        UtilizationReview.task_id == task_id, UtilizationReview.voided_at.is_(None))
        .order_by(UtilizationReview.id.desc())).first()


def documents_task(session: Session, task_id: int, encounter_id: int, since: datetime) -> bool:
    """A review (not void) documents the task: recorded from it, or recorded on its stay
    since it was raised and from no task (a nurse may record the review on the record page,
    then close the task); a review recorded from another task documents that one only."""
    return documenting(session, task_id, encounter_id, since) is not None


def documenting(session: Session, task_id: int, encounter_id: int, since: datetime
                ) -> UtilizationReview | None:
    """The review that documents the task (documents_task), the one recorded from it first."""
    return session.scalars(select(UtilizationReview).where(
        UtilizationReview.voided_at.is_(None),
        (UtilizationReview.task_id == task_id)
        | ((UtilizationReview.encounter_id == encounter_id)
           & UtilizationReview.task_id.is_(None)
           & (UtilizationReview.entered_at >= since)))
        .order_by((UtilizationReview.task_id == task_id).desc(), UtilizationReview.id)
        .limit(1)).first()


def claim(session: Session, task_id: int, encounter_id: int, since: datetime) -> None:
    """Completing a review task claims the stay-page review that documents it, so one
    review documents one task (it cannot also close the next review task)."""
    review = documenting(session, task_id, encounter_id, since)
    if review is not None and review.task_id is None:
        review.task_id = task_id
