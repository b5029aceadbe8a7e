"""The HTTP edge's one table: which status and OperationOutcome issue code each family of
engine error (engine.core.errors) answers with.

The API answers with `outcome_for`; the web pages take `status_of` for the page they
render (engine.api.web.error_page). A family missing here (configuration, a bare
EngineError) is the server's own failure: engine.api.unexpected logs it and answers 500.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from engine.api.outcomes import outcome_response
from engine.core.errors import (
    Ambiguous,
    Conflict,
    EngineError,
    InputTooLarge,
    InvalidInput,
    Malformed,
    NotApplicable,
    NotAuthenticated,
    NotFound,
    NotPermitted,
    RuleRefused,
    StaleVersion,
    StorageUnavailable,
    TooManyAttempts,
    answer_for,
)

# family -> (HTTP status, issue code; None: the status's usual code, engine.fhir.outcome)
ANSWERS: dict[type[EngineError], tuple[int, str | None]] = {
    InvalidInput: (400, None),
    Malformed: (400, None),
    NotApplicable: (422, None),
    InputTooLarge: (413, None),
    NotFound: (404, None),
    Conflict: (409, None),
    StaleVersion: (412, None),
    Ambiguous: (412, None),
    NotAuthenticated: (401, None),
    NotPermitted: (403, None),
    RuleRefused: (422, "business-rule"),
    TooManyAttempts: (429, None),
    StorageUnavailable: (503, None),
}


def answer_of(error: EngineError) -> tuple[int, str | None] | None:
    """The status and issue code of the error's most specific family, None if it has none."""
    return answer_for(error, ANSWERS)


def status_of(error: EngineError) -> int:
    """The HTTP status for `error` (500 when its family has no answer here)."""
    found = answer_of(error)
    return found[0] if found is not None else 500


def outcome_for(error: EngineError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The OperationOutcome answering `error`; its text is the diagnostics."""
    status, code = answer_of(error) or (500, None)
    return outcome_response(status, str(error), code, headers=headers)
