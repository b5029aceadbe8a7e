"""Who may call the API: every endpoint that serves patient data requires a bearer token.

Endpoints depend on `require(permission)`, which yields the caller as a `Principal`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import Request

from engine.fhir.outcome import FhirError
from engine.security.roles import Permission, Principal


def authenticate(request: Request) -> Principal:
    """Check `Authorization: Bearer <token>` in constant time; return the caller."""
    expected = request.app.state.runtime.settings.api_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if expected is None or scheme.lower() != "bearer" or not token:
        raise FhirError(401, "authentication required: send Authorization: Bearer <token>")
    if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
        raise FhirError(401, "invalid bearer token")
    return Principal(name="api-client", kind="client", role="integration")


def require(permission: Permission) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the authenticated caller, refused with 403 without `permission`."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if not principal.can(permission):
            raise FhirError(403, f"role {principal.role} may not {permission.value}")
        request.state.principal = principal
        return principal

    return dependency


def require_token(request: Request) -> str:
    """Any authenticated caller (kept for endpoints not yet moved to `require`)."""
    return authenticate(request).name
