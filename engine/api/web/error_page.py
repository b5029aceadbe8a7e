"""The page a person sees when the server fails: what to do next, never the failure itself.

The exception's text may quote patient data and a stack trace helps no one at a ward
workstation, so the page carries only a short reference that the log line also carries.
"""

from __future__ import annotations

from html import escape

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from engine.api.http_errors import outcome_for
from engine.api.session import API_PREFIXES
from engine.api.web.layout import signed_in, templates
from engine.api.web.render import TEMPLATES
from engine.core.errors import EngineError, NotPermitted

_WORDS = {
    500: ("Something went wrong", "The engine could not finish this request. "
                                  "Please try again in a moment."),
    503: ("Temporarily unavailable", "The engine cannot reach its database right now. "
                                     "Please try again in a minute."),
}
_PLAIN = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{0}</title>"
          "<h1>{0}</h1><p>{1}</p><p>Reference: {2}</p><p><a href=\"/worklist\">Back to my "
          "worklist</a></p></html>")
_HEADERS = {"Cache-Control": "no-store"}


def page_for(request: Request, error: EngineError) -> Response | None:
    """The page answering an engine error no page handled itself; None leaves it to
    engine.api.unexpected (logged, this module's 500 or 503 page)."""
    if isinstance(error, NotPermitted):
        return refusal(request, str(error))
    return None


def error_page(request: Request, status: int, reference: str) -> Response:
    """The friendly page for a 500 or 503, in the site's layout when it can be rendered."""
    heading, message = _WORDS.get(status, _WORDS[500])
    try:
        return TEMPLATES.TemplateResponse(
            request, "error.html",
            {"user": signed_in(request), "heading": heading, "message": message,
             "reference": reference, "changing": request.method not in ("GET", "HEAD")},
            status_code=status, headers=_HEADERS)
    except Exception:  # noqa: BLE001 - the layout itself may be what failed: plain page
        return HTMLResponse(_PLAIN.format(heading, message, escape(reference)),
                            status_code=status, headers=_HEADERS)


def refusal(request: Request, reason: str) -> Response:
    if request.url.path.startswith(API_PREFIXES):
        return outcome_for(NotPermitted(reason))
    return templates.TemplateResponse(request, "refused.html", {"reason": reason},
                                      status_code=403)
