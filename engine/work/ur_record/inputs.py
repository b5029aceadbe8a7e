"""What a person (a form) or a system (FHIR) asks to record, typed; and the parsing of form
text into it, so the web and FHIR edges share one set of messages.

The services check these against the stay and the site's lists (engine.work.ur_record.*).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from engine.work.ur_record.problems import RecordInvalid


@dataclass(frozen=True)
class ReviewInput:
    review_type: str
    reviewed_on: date
    level_of_care: str
    criteria_result: str
    criteria_set: str | None = None
    clinical_summary: str | None = None
    next_review_on: date | None = None  # None: the site's cadence from reviewed_on
    advisor_referred: bool = False
    advisor_name: str | None = None
    advisor_outcome: str | None = None
    condition_code_44: bool = False
    task_id: int | None = None


@dataclass(frozen=True)
class AuthorizationInput:
    status: str
    reference_number: str | None = None
    payer: str | None = None
    plan: str | None = None
    level_of_care: str | None = None
    approved_days: int | None = None
    approved_from: date | None = None
    approved_through: date | None = None
    payer_reviewer: str | None = None
    payer_contact: str | None = None
    requested_at: datetime | None = None
    decided_at: datetime | None = None
    denial_reason: str | None = None
    peer_to_peer: str | None = None
    peer_to_peer_at: datetime | None = None
    peer_to_peer_outcome: str | None = None
    appeal_level: int | None = None
    appeal_deadline: date | None = None
    appeal_outcome: str | None = None


@dataclass(frozen=True)
class CommunicationInput:
    at: datetime
    direction: str
    channel: str
    summary: str


@dataclass(frozen=True)
class BarrierInput:
    reason_code: str
    text: str | None = None
    owner: str | None = None
    opened_at: datetime | None = None  # None: now


@dataclass(frozen=True)
class AvoidableDayInput:
    first_day: date
    last_day: date | None = None  # None: the one day
    reason_code: str = ""
    responsible_party: str | None = None  # None: the reason's default
    note: str | None = None
    barrier_id: int | None = None


def text(value: str | None, limit: int = 5000, *, field: str = "text") -> str | None:
    """Trimmed text, None when blank; over `limit` it is refused, never cut silently, with
    a message naming `field` (the form field the text was typed in)."""
    value = (value or "").strip()
    if len(value) > limit:
        raise RecordInvalid(field, f"{_name(field)}: at most {limit} characters, "
                                   f"{len(value)} given")
    return value or None


def instant(field: str, value: datetime | None) -> datetime | None:
    """A moment with its zone (the edges read a typed local time in the site's zone); a
    naive one is refused with the field's name, never compared as if it were UTC."""
    if value is not None and value.utcoffset() is None:
        raise RecordInvalid(field, f"{_name(field)} {value.isoformat()} has no time zone")
    return value


def parse_date(field: str, value: str | None, *, required: bool = False) -> date | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise RecordInvalid(field, f"{_name(field)} is needed (YYYY-MM-DD)")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RecordInvalid(field, f"{_name(field)} {value!r} is not a date (YYYY-MM-DD)") \
            from None


def parse_int(field: str, value: str | None, *, minimum: int = 0) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise RecordInvalid(field, f"{_name(field)} {value!r} is not a whole number") \
            from None
    if number < minimum:
        raise RecordInvalid(field, f"{_name(field)} must be {minimum} or more")
    return number


def parse_bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "on", "yes", "y")


def code(field: str, value: str | None, table: dict[str, str], *,
         required: bool = True) -> str | None:
    """A coded value from one of engine.core.ur_record's tables; the message lists them."""
    value = (value or "").strip()
    if not value:
        if required:
            raise RecordInvalid(field, f"{_name(field)} is needed: one of {', '.join(table)}")
        return None
    if value not in table:
        raise RecordInvalid(field, f"unknown {_name(field)} {value!r}; use one of "
                                   f"{', '.join(table)}")
    return value


def _name(field: str) -> str:
    return field.replace("_", " ")
