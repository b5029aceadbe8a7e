"""`Prefer: return=` on a write (FHIR R4 http.html#ops): what the answer's body carries.

minimal: no body (the status, Location and ETag say what happened); representation: the
resource as it now is; OperationOutcome: an informational outcome saying what was done.
Without the header, or with a value we do not know, each write answers its own default
(the Encounter; an OperationOutcome for an Observation, which the engine keeps as a lab
result rather than as a resource). Other preferences (handling=) are not this module's.
"""

from __future__ import annotations

from engine.fhir.outcome import outcome

MINIMAL, REPRESENTATION, OUTCOME = "minimal", "representation", "operationoutcome"


def wanted(header: str | None) -> str | None:
    """The `return` preference of a Prefer header (lower case), None when it names none."""
    for part in (header or "").replace(";", ",").split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "return":
            return value.strip().strip('"').lower() or None
    return None


def shaped(body: dict, resource: dict | None, note: str | None,
           header: str | None) -> dict | None:
    """The body to send: `body` (the default), `resource` (the representation, when it is
    not the default), an outcome of `note`, or None (minimal)."""
    choice = wanted(header)
    if choice == MINIMAL:
        return None
    if choice == REPRESENTATION and resource is not None:
        return resource
    if choice == OUTCOME and body.get("resourceType") != "OperationOutcome":
        return outcome(note or "done", code="informational", severity="information")
    return body
