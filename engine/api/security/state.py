"""What the HTTP app keeps for security: the signing key, the sign-in throttle, the settings."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from engine.core.config import Settings
from engine.security import passwords
from engine.security.throttle import Throttle
from engine.security.tokens import signing_key


@dataclass(frozen=True)
class SecurityState:
    key: bytes
    throttle: Throttle
    settings: Settings

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityState:
        passwords.configure(settings.password_hash_time_cost, settings.password_hash_memory_kib)
        return cls(signing_key(settings),
                   Throttle(settings.signin_failures, settings.signin_window_s), settings)


def security(connection: HTTPConnection) -> SecurityState:
    return connection.app.state.security
