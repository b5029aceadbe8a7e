"""Who may call the API: every endpoint that serves patient data requires a bearer token."""

from __future__ import annotations

import hmac

from fastapi import Request

from engine.fhir.outcome import FhirError


def require_token(request: Request) -> str:
    """Check `Authorization: Bearer <token>` in constant time; return the caller's name."""
    expected = request.app.state.runtime.settings.api_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if expected is None or scheme.lower() != "bearer" or not token:
        raise FhirError(401, "authentication required: send Authorization: Bearer <token>")
    if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
        raise FhirError(401, "invalid bearer token")
    return "api-client"
