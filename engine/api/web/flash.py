"""One-line confirmations after a form: a fixed code in the redirect, a fixed sentence here.

Only codes travel in the URL, so nobody can make the page say something else.
"""

from __future__ import annotations

from fastapi import Request

MESSAGES = {
    "started": "Task started.",
    "completed": "Task completed.",
    "declined": "Task declined: the rule will not raise it again for this stay unless the "
                "facts it rests on change.",
    "proposal-declined": "Proposal declined: it will not be proposed again for this stay "
                         "unless the facts it rests on change.",
    "noted": "Note added.",
    "reassigned": "Task reassigned.",
    "review-recorded": "Review recorded.",
    "review-corrected": "Review corrected: the review as it was is kept in its history.",
    "authorization-recorded": "Authorization recorded.",
    "authorization-updated": "Authorization updated: its earlier state is kept in its "
                             "history.",
    "communication-logged": "Payer communication logged.",
    "barrier-opened": "Barrier opened.",
    "barrier-resolved": "Barrier resolved.",
    "days-recorded": "Avoidable days recorded.",
    "days-confirmed": "Proposed avoidable days confirmed.",
    "days-rejected": "Proposed avoidable days rejected: they will not be proposed again.",
    "barrier-corrected": "Barrier corrected: the barrier as it was is kept in its history.",
    "days-corrected": "Avoidable days corrected: the record as it was is kept in its history.",
    **{f"{kind}-voided": f"{what} marked entered in error: kept, struck through, no longer "
                         "counted." for kind, what in (
                             ("review", "Review"), ("authorization", "Authorization"),
                             ("communication", "Payer communication"),
                             ("barrier", "Barrier"), ("avoidable-day", "Avoidable days"))},
}


def flash(request: Request) -> str | None:
    return MESSAGES.get(request.query_params.get("done", ""))
