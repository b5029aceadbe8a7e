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
}


def flash(request: Request) -> str | None:
    return MESSAGES.get(request.query_params.get("done", ""))
