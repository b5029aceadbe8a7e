"""The UR record's forms as typed inputs: form text in, engine.work.ur_record inputs out, or
RecordInvalid naming the field. Times are typed on the hospital's wall clock, to the minute:
a time left as the form showed it keeps the seconds it was stored with (a FHIR client's)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    CommunicationInput,
    ReviewInput,
    parse_bool,
    parse_date,
    parse_int,
)
from engine.work.ur_record.problems import RecordInvalid

Form = dict[str, str]


def parse_local(field: str, value: str | None, zone: ZoneInfo, *,
                required: bool = False) -> datetime | None:
    """A datetime-local field ("2026-03-04T09:30"), on the hospital's clock. A time in the
    hour the clocks repeat in the autumn is the first of the two (fold=0, daylight time), as
    the form's hint says; the browser sends no offset to tell them apart."""
    value = (value or "").strip()
    name = field.replace("_", " ")
    if not value:
        if required:
            raise RecordInvalid(field, f"{name} is needed (date and time)")
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordInvalid(field, f"{name} {value!r} is not a date and time "
                                   "(YYYY-MM-DD HH:MM)") from None
    return moment.replace(tzinfo=zone, fold=0) if moment.tzinfo is None else moment


def same_minute(typed: datetime | None, stored: datetime | None) -> bool:
    """The form shows a stored time without its seconds: left as shown, it is unchanged."""
    return (typed is not None and stored is not None
            and typed == stored.replace(second=0, microsecond=0))


_AUTH_TIMES = ("requested_at", "decided_at", "peer_to_peer_at")


def keeping_seconds(data: AuthorizationInput, stored: Any) -> AuthorizationInput:
    """The authorization's times as typed, except those left as shown: stored as they were
    (saving an unchanged form then changes nothing and keeps no revision)."""
    kept = {f: getattr(stored, f) for f in _AUTH_TIMES
            if same_minute(getattr(data, f), getattr(stored, f))}
    return replace(data, **kept) if kept else data


def unchanged(form: Form, key: str) -> bool:
    """A correction form's field left as the form showed it (its `<key>_was` hidden copy)."""
    was = f"{key}_was"
    return was in form and (form.get(key) or "").strip() == (form.get(was) or "").strip()


def _blank(form: Form, key: str) -> str | None:
    return (form.get(key) or "").strip() or None


def review(form: Form) -> ReviewInput:
    reviewed = parse_date("reviewed_on", form.get("reviewed_on"), required=True)
    assert reviewed is not None
    return ReviewInput(
        review_type=form.get("review_type", ""), reviewed_on=reviewed,
        level_of_care=form.get("level_of_care", ""),
        criteria_result=form.get("criteria_result", ""),
        criteria_set=_blank(form, "criteria_set"),
        clinical_summary=_blank(form, "clinical_summary"),
        next_review_on=parse_date("next_review_on", form.get("next_review_on")),
        advisor_referred=parse_bool(form.get("advisor_referred")),
        advisor_name=_blank(form, "advisor_name"),
        advisor_outcome=_blank(form, "advisor_outcome"),
        condition_code_44=parse_bool(form.get("condition_code_44")),
        task_id=parse_int("task_id", form.get("task_id"), minimum=1))


def _approval(form: Form) -> Form:
    """An update form holds both the approved days and the through-date the payer gave; the
    one a person changed wins (the other, unchanged, would only contradict it). Whatever the
    status, the approved period is left as the form holds it: days already approved stay
    approved while an extension is pended or the continued stay denied (the service decides
    what goes with which status; clearing the fields is the nurse's to do)."""
    days, through = (form.get("approved_days") or "").strip(), \
        (form.get("approved_through") or "").strip()
    if "approved_days_was" not in form:
        return form
    days_changed = days != (form.get("approved_days_was") or "").strip()
    through_changed = through != (form.get("approved_through_was") or "").strip()
    if not (days and through):
        return form
    if days_changed and not through_changed:
        return {**form, "approved_through": ""}
    if through_changed and not days_changed:
        return {**form, "approved_days": ""}
    return form


def authorization(form: Form, zone: ZoneInfo) -> AuthorizationInput:
    form = _approval(form)
    return AuthorizationInput(
        status=form.get("status", ""), reference_number=_blank(form, "reference_number"),
        level_of_care=_blank(form, "level_of_care"),
        approved_days=parse_int("approved_days", form.get("approved_days")),
        approved_from=parse_date("approved_from", form.get("approved_from")),
        approved_through=parse_date("approved_through", form.get("approved_through")),
        payer_reviewer=_blank(form, "payer_reviewer"),
        payer_contact=_blank(form, "payer_contact"),
        requested_at=parse_local("requested_at", form.get("requested_at"), zone),
        decided_at=parse_local("decided_at", form.get("decided_at"), zone),
        denial_reason=_blank(form, "denial_reason"),
        peer_to_peer=_blank(form, "peer_to_peer"),
        peer_to_peer_at=parse_local("peer_to_peer_at", form.get("peer_to_peer_at"), zone),
        peer_to_peer_outcome=_blank(form, "peer_to_peer_outcome"),
        appeal_level=parse_int("appeal_level", form.get("appeal_level"), minimum=1),
        appeal_deadline=parse_date("appeal_deadline", form.get("appeal_deadline")),
        appeal_outcome=_blank(form, "appeal_outcome"))


def review_correction(form: Form, stored: Any) -> ReviewInput:
    """A correction of a review: a next review date left as shown, that the site's cadence
    had set, follows the cadence from the corrected review date (None); a date the nurse
    changed, or had set herself before (overridden), is kept as typed."""
    data = review(form)
    if unchanged(form, "next_review_on") and not stored.next_review_overridden:
        return replace(data, next_review_on=None)
    return data


def communication(form: Form, zone: ZoneInfo) -> CommunicationInput:
    at = parse_local("at", form.get("at"), zone, required=True)
    assert at is not None
    return CommunicationInput(at=at, direction=form.get("direction", ""),
                              channel=form.get("channel", ""), summary=form.get("summary", ""))


def barrier(form: Form) -> BarrierInput:
    return BarrierInput(reason_code=form.get("reason_code", ""), text=_blank(form, "text"),
                        owner=_blank(form, "owner"))


def barrier_correction(form: Form, zone: ZoneInfo, stored: Any) -> BarrierInput:
    """A barrier corrected: its opening time left as shown (to the minute) is not changed."""
    opened = parse_local("opened_at", form.get("opened_at"), zone)
    if opened is None or same_minute(opened, stored.opened_at):
        opened = None  # the service keeps the stored time
    return replace(barrier(form), opened_at=opened)


def avoidable_days(form: Form, barrier_id: int | None = None) -> AvoidableDayInput:
    """Days typed on the form (`barrier_id`: a correction keeps the barrier a proposal
    rested on; the form does not show it)."""
    first = parse_date("first_day", form.get("first_day"), required=True)
    assert first is not None
    return AvoidableDayInput(first_day=first,
                             last_day=parse_date("last_day", form.get("last_day")),
                             reason_code=form.get("reason_code", ""),
                             responsible_party=_blank(form, "responsible_party"),
                             note=_blank(form, "note"), barrier_id=barrier_id)


def authorization_id(form: Form) -> int | None:
    return parse_int("authorization_id", form.get("authorization_id"), minimum=1)


def version(form: Form) -> int | None:
    value = (form.get("version") or "").strip()
    return int(value) if value.isdigit() else None


def required_text(form: Form, key: str, message: str) -> str:
    value = (form.get(key) or "").strip()
    if not value:
        raise RecordInvalid(key, message)
    return value


def review_task(form: Form) -> int | None:
    """The review task a review form was opened from (kept when the form comes back)."""
    value = (form.get("task_id") or "").strip()
    return int(value) if value.isdigit() else None
