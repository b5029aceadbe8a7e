"""Writing a stay's UR record in tests the way the record pages do: through the services
(engine.work.ur_record), with the visit locked, as a UR nurse."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from engine.core.roles import Principal
from engine.core.site import SiteProfile
from engine.storage.models import RuleOutput, UtilizationReview
from engine.work.ur_record import reviews
from engine.work.ur_record.inputs import ReviewInput
from engine.work.ur_record.stay import locked

UR_NURSE = Principal(name="ur.fischer", kind="user", role="ur_nurse")


def review_for(session: Session, task: RuleOutput, now: datetime, site: SiteProfile, *,
               review_type: str = "initial", next_review_on: date | None = None,
               by: Principal = UR_NURSE) -> UtilizationReview:
    """The review a UR nurse records from a review task before completing it (criteria
    met, inpatient, reviewed today)."""
    enc = locked(session, task.encounter_id)
    return reviews.record(session, enc, ReviewInput(
        review_type=review_type, reviewed_on=now.astimezone(site.zone).date(),
        level_of_care="inpatient", criteria_result="met", criteria_set="InterQual",
        next_review_on=next_review_on, task_id=task.id), by, now, site)
