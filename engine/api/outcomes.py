"""Every HTTP error leaves as a FHIR OperationOutcome: the response, the FHIR edge's own
wire answer (FhirError) and the handlers for what FastAPI and Starlette raise."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.fhir.outcome import FHIR_JSON, issue_code, outcome


class FhirError(Exception):
    """The FHIR edge's own wire answer: an OperationOutcome with this HTTP status, for what
    only HTTP knows and no domain error means: a method not allowed (405), a format not
    acceptable (406), a media type or charset not supported (415), and the server's own
    failure it can name (500: a write stored but not readable back).

    Not an engine error: what the input or the state gets wrong (unknown, invalid, stale,
    refused by a rule, storage away) is an engine.core.errors family, which the HTTP edge
    answers in one table (engine.api.http_errors), the FHIR routes included; OAuth's wire
    answers are engine.api.security.oauth's."""

    def __init__(self, status: int, diagnostics: str, code: str | None = None) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or issue_code(status)


def outcome_response(status: int, diagnostics: str, code: str | None = None,
                     headers: Any = None) -> JSONResponse:
    return JSONResponse(
        outcome(diagnostics, code or issue_code(status)),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


def install_handlers(app: FastAPI) -> None:
    """Every error the FHIR routes or the framework raise leaves as an OperationOutcome
    (engine errors and unexpected ones: engine.api.unexpected)."""

    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, exc: FhirError):
        return outcome_response(exc.status, exc.diagnostics, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException):
        return outcome_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return outcome_response(400, f"invalid request {where}: {first.get('msg', 'invalid')}")
