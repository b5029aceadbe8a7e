"""The dates of a stay's UR record the rules count from: the next review, the last approved
day, an appeal's deadline. One reading for the facts (engine.rules.facts) and the due times
(engine.rules.due), so a task and the fact its rule reads never disagree."""

from __future__ import annotations

from datetime import date

from engine.core.ur_record import APPROVING
from engine.rules.snapshot import Review, Snapshot

UNDECIDED_APPEAL = (None, "pending")


def last_review(snap: Snapshot) -> Review | None:
    """The latest recorded review by review date (the later entry on the same day)."""
    if not snap.reviews:
        return None
    return max(enumerate(snap.reviews), key=lambda item: (item[1].reviewed_on, item[0]))[1]


def next_review_on(snap: Snapshot) -> date | None:
    """The latest review's next review date: the site's cadence, or the day the nurse set."""
    last = last_review(snap)
    return last.next_review_on if last is not None else None


def approved_through(snap: Snapshot) -> date | None:
    """The last approved day: the latest through-date of the approvals (a later approval
    that extends the stay moves it on)."""
    return max((a.approved_through for a in snap.authorizations
                if a.status in APPROVING and a.approved_through is not None), default=None)


def appeal_deadline(snap: Snapshot) -> date | None:
    """The nearest filing deadline of an appeal not yet decided."""
    return min((a.appeal_deadline for a in snap.authorizations
                if a.appeal_deadline is not None and a.appeal_outcome in UNDECIDED_APPEAL),
               default=None)
