"""FHIR OperationOutcome: the shape of every error the engine answers over HTTP, and the
issue code each HTTP status carries (the HTTP edge, engine.api.outcomes, sends them)."""

from __future__ import annotations

FHIR_JSON = "application/fhir+json"

_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def outcome(diagnostics: str, code: str = "processing", severity: str = "error") -> dict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def issue_code(status: int) -> str:
    """The OperationOutcome issue code an answer with this HTTP status carries by default."""
    return _ISSUE_CODE.get(status, "processing")
