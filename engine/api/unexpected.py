"""Errors, answered in the form the caller reads; unexpected ones logged without patient data.

An engine error (engine.core.errors) a route did not answer itself leaves by its family:
API callers (/fhir, /api, /admin, /auth) get the OperationOutcome engine.api.http_errors
gives it, a person at a web page the page engine.api.web.error_page gives it. Anything else
(and a family neither has an answer for) is unexpected: API callers get an OperationOutcome,
people a plain page, both carrying a short reference the log line also carries, so support
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

from engine.api.http_errors import answer_of, outcome_for
from engine.api.outcomes import outcome_response
from engine.api.session import API_PREFIXES
from engine.api.web.error_page import error_page, page_for
from engine.core.errors import EngineError, StorageUnavailable

log = logging.getLogger("engine.http")


def install(app: FastAPI) -> None:
    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> Response:
        answer: Response | None
        if request.url.path.startswith(API_PREFIXES):
            answer = outcome_for(exc) if answer_of(exc) is not None else None  # else: 500
        else:
            answer = page_for(request, exc)
        if answer is None:
            raise exc  # no answer for this family: the middleware below logs it, answers 500
        return answer

    # A middleware, not an exception handler: Starlette re-raises after handlers, and the
    # server would then log the exception's text, which may quote patient data.
    @app.middleware("http")
    async def _unexpected(request: Request, call_next):
        try:
            return await call_next(request)
        except (OperationalError, PoolTimeout, StorageUnavailable) as exc:
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
