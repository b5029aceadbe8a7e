"""What a UR record write refuses, named by the field a person has to fix."""

from __future__ import annotations

from engine.core.errors import InvalidInput, NotFound, NotPermitted, StaleVersion
from engine.core.roles import Permission, Principal


class RecordInvalid(InvalidInput):
    """A value cannot be recorded; `field` names the form field (or FHIR element) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class RecordNotFound(NotFound):
    """No such record on this stay."""


class RecordStale(StaleVersion):
    """The record changed since it was read."""


class RecordForbidden(NotPermitted):
    """The caller's role may not write this record."""


def permitted(actor: Principal | str, permission: Permission) -> str:
    """The caller's name, once they may write with `permission` (a plain name is the engine
    or a tool acting for itself)."""
    if isinstance(actor, Principal):
        if not actor.can(permission):
            raise RecordForbidden(f"role {actor.role} may not {permission.value}")
        return actor.name
    return actor
