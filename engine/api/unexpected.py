"""Unexpected errors: logged without patient data, answered in the form the caller reads.

API callers (/fhir, /api, /admin, /auth) get a FHIR OperationOutcome; a person at a web
page gets a plain page. Both carry a short reference the log line also carries, so support
can find the failure without the answer revealing it.
"""

from __future__ import annotations

import logging
import secrets
import traceback

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engine.api.web.error_page import error_page
from engine.api.web.session import API_PREFIXES
from engine.fhir.outcome import outcome_response

log = logging.getLogger("engine.http")


def install(app: FastAPI) -> None:
    # A middleware, not an exception handler: Starlette re-raises after handlers, and the
    # server would then log the exception's text, which may quote patient data.
    @app.middleware("http")
    async def _unexpected(request: Request, call_next):
        try:
            return await call_next(request)
        except (OperationalError, PoolTimeout) as exc:
            # The database is away or overloaded: transient, the client should retry.
            reference = secrets.token_hex(4)
            log.error("storage unavailable: %s (reference %s)", type(exc).__name__, reference)
            return answer(request, 503, "storage unavailable; please retry", reference)
        except Exception as exc:  # noqa: BLE001 - every error leaves as a plain answer
            reference = secrets.token_hex(4)
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error("internal error %s at %s:%s (reference %s)", type(exc).__name__,
                      where.filename, where.lineno, reference)
            return answer(request, 500, f"internal error ({type(exc).__name__})", reference)


def answer(request: Request, status: int, diagnostics: str, reference: str) -> Response:
    """An OperationOutcome for API paths, the error page for everything people browse."""
    if request.url.path.startswith(API_PREFIXES):
        return outcome_response(status, f"{diagnostics}; reference {reference}")
    return error_page(request, status, reference)
