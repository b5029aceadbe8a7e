"""The dates of a stay's UR record the rules count from: the next review, the last approved
day, an appeal's deadline. One reading for the facts (engine.rules.facts) and the due times
(engine.rules.due), so a task and the fact its rule reads never disagree."""

from __future__ import annotations

from datetime import date, datetime

from engine.rules.snapshot import Review, Snapshot

UNDECIDED_APPEAL = (None, "pending")


def last_review(snap: Snapshot, reviews: list[Review] | None = None) -> Review | None:
    """The latest recorded review by review date (the later entry on the same day)."""
    reviews = snap.reviews if reviews is None else reviews
    if not reviews:
        return None
    return max(enumerate(reviews), key=lambda item: (item[1].reviewed_on, item[0]))[1]


def next_review_on(snap: Snapshot, *, occurrence: int | None = None,
                   recorded_by: datetime | None = None) -> date | None:
    """The latest inpatient review's next review date: the site's cadence, or the day the
    nurse set (an observation-level review does not set the inpatient cadence).

    For an open review task (`occurrence`, its id; `recorded_by`, its due time), the reviews
    that document that task do not reschedule it: a review recorded from it, or recorded
    after it was due, is the late review itself, not a new date (its next review date sets
    the following occurrence's)."""
    reviews = [r for r in snap.reviews if r.level_of_care == "inpatient"  # continued stay
               and (occurrence is None or r.task_id != occurrence)
               and (recorded_by is None or r.entered_at is None or r.entered_at <= recorded_by)]
    last = last_review(snap, reviews)
    return last.next_review_on if last is not None else None


def approved_through(snap: Snapshot) -> date | None:
    """The last approved day: the latest through-date on the stay's authorizations (a later
    approval that extends the stay moves it on; days approved stay approved while an
    extension is pended or the continued stay denied: the record keeps the period on any
    status, and UR clears it to take the days back)."""
    return max((a.approved_through for a in snap.authorizations
                if a.approved_through is not None), default=None)


def appeal_deadline(snap: Snapshot) -> date | None:
    """The nearest filing deadline of an appeal not yet decided."""
    return min((a.appeal_deadline for a in snap.authorizations
                if a.appeal_deadline is not None and a.appeal_outcome in UNDECIDED_APPEAL),
               default=None)
