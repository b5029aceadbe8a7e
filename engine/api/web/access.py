"""Who is looking at a page, and the CSRF token their forms carry.

Pages depend on `Viewer`: a signed-in person (session cookie) whose role allows the web UI
and patient data; anyone else is sent to /login or shown the refusal page. Forms embed
`csrf_field(request)`; the session middleware refuses a POST without it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from markupsafe import Markup

from engine.api.auth import require_page
from engine.api.session import csrf_field
from engine.core.roles import Permission, Principal


def csrf_input(request: Request) -> Markup:
    return csrf_field(request)


# The signed-in person who may read patient data in the web UI (every worklist page shows
# some); actions ask the task lifecycle for task:work or task:assign.
Viewer = Annotated[Principal, Depends(require_page(Permission.PATIENT_READ))]

# Supervisors: everyone's worklist and caseload.
Supervisor = Annotated[Principal, Depends(require_page(Permission.WORKLIST_ALL))]
