"""Who is looking at a page, and the CSRF token their forms carry.

Placeholder until the security branch lands: pages depend on `page_user(permission)` and
forms embed `csrf_input(request)`; both become the session-cookie versions on merge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from markupsafe import Markup

from engine.auth import require
from engine.security.roles import Permission, Principal


def page_user(permission: Permission) -> Callable[[Request], Principal]:
    return require(permission)


# The signed-in person who may read patient data in the web UI (every worklist page shows
# some); actions ask the task lifecycle for task:work or task:assign.
Viewer = Annotated[Principal, Depends(page_user(Permission.PATIENT_READ))]


def csrf_input(request: Request) -> Markup:
    return Markup("")
