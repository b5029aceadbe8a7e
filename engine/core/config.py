"""Runtime settings, read once from ENGINE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SITE_PROFILE = ROOT / "fixtures" / "site_profile.yaml"
DEFAULT_RULESETS = ROOT / "rulesets"
DEFAULT_STAFFING = ROOT / "fixtures" / "staffing.yaml"


class Settings(BaseSettings):
    """Everything an operator can set; defaults run a laptop demo on SQLite."""

    model_config = SettingsConfigDict(env_prefix="ENGINE_", extra="ignore")

    database_url: str = "sqlite:///engine.db"
    site_profile: Path = DEFAULT_SITE_PROFILE
    rulesets: Path | None = Field(
        default=DEFAULT_RULESETS, description="Folder of ruleset files; empty disables rules."
    )
    rulesets_poll_s: float = Field(
        default=2.0, description="How often the server looks for changed ruleset files."
    )
    clock_interval_s: float = Field(
        default=30.0, description="How often the server re-evaluates encounters whose time "
        "boundary has passed."
    )
    sqlite_synchronous: str = Field(
        default="FULL",
        description="SQLite synchronous pragma. FULL survives power loss; NORMAL survives "
        "process crashes only.",
    )
    mllp_max_message_bytes: int = 1_048_576
    mllp_idle_timeout_s: float = 300.0
    mllp_frame_timeout_s: float = 30.0
    db_workers: int = 4
    log_level: str = "INFO"
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="Key signing access tokens and session cookies (at least 32 characters). "
        "Set it in production, the same for every engine process; without it a key is "
        "generated once into jwt_secret_file.",
    )
    jwt_secret_file: Path = Field(
        default=Path("engine-secret.key"),
        description="Where the generated signing key is kept when ENGINE_JWT_SECRET is unset.",
    )
    token_ttl_s: int = Field(default=1800, ge=60, le=3600,
                             description="Lifetime of an access token from POST /auth/token.")
    session_idle_s: int = Field(default=1800, ge=60,
                                description="A web session ends after this long unused.")
    session_max_s: int = Field(default=43200, ge=300,
                               description="A web session ends this long after sign-in.")
    cookie_secure: bool | None = Field(
        default=None,
        description="Secure flag on the session cookie; unset follows the request scheme "
        "(https: on, plain http demo: off).",
    )
    password_hash_time_cost: int = Field(default=3, ge=1,
                                         description="argon2id passes per password hash.")
    password_hash_memory_kib: int = Field(default=65536, ge=1024,
                                          description="argon2id memory per hash (KiB).")
    signin_failures: int = Field(default=5, ge=1,
                                 description="Failed sign-ins allowed per name or address "
                                 "within signin_window_s; the next one is answered 429.")
    signin_window_s: int = Field(default=300, ge=1,
                                 description="The sign-in throttle's window.")
    max_body_bytes: int = 5_000_000
    staffing_file: Path | None = Field(
        default=DEFAULT_STAFFING, description="Who works which units, services and payers."
    )
    escalation_grace_minutes: float = Field(
        default=60.0, description="Open tasks this long past due go to the supervisor."
    )

    @field_validator("rulesets", mode="before")
    @classmethod
    def _rules_off(cls, value: object) -> object:
        """ENGINE_RULESETS='' (or 'off') runs the engine without rules."""
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
