"""The page templates (Jinja2, autoescaped) and what every page may call in them.

Pages extend `base.html` (blocks: title, head, nav, content, scripts) and render forms with
`{{ csrf_field(request) }}`; `signed_in(request)` is the caller (a Principal) or None.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates
from starlette.requests import HTTPConnection

from engine.api.session import csrf_field, csrf_token
from engine.core.roles import Principal

TEMPLATES = Path(__file__).resolve().parent / "templates"


def signed_in(connection: HTTPConnection) -> Principal | None:
    return getattr(connection.state, "principal", None)


templates = Jinja2Templates(directory=TEMPLATES)
templates.env.globals.update(csrf_field=csrf_field, csrf_token=csrf_token, signed_in=signed_in)
