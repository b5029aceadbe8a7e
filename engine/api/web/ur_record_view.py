"""What the stay page's "Utilization review" section shows: the UR nurse's record of the stay
(reviews, authorizations with their communications, barriers, avoidable days), each with its
history, and what its forms offer (the site's lists, today's date, the site's next review).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.web import display
from engine.api.web.encounter_view import Moment
from engine.core import ur_record as codes
from engine.core.site import SiteProfile
from engine.rules.reference import DelayReason, Reference
from engine.storage.models import (
    AvoidableDay,
    Barrier,
    Encounter,
    PayerAuthorization,
    PayerCommunication,
    RuleOutput,
    UtilizationReview,
)
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews, revisions

# the review type the form suggests for a review task of the shipped rulesets (any other
# task that requires a review suggests a continued-stay review, or the initial one)
REVIEW_TYPE_OF_TASK: dict[str, str] = {
    "initial-ur-review": "initial",
    "continued-stay-review": "continued_stay",
    "status-review": "status_change",
    "short-stay-review": "status_change",
    "excess-days-review": "continued_stay",
}
AVOIDABLE_DAY_TASKS = frozenset({"excess-days-review"})
_STEPS = frozenset({"resolved", "confirmed", "rejected"})  # workflow, not corrections
_BOOK = frozenset({"id", "encounter_id", "version", "updated_by", "updated_at", "entered_by",
                   "entered_at", "reviewer", "reviewer_display", "source", "task_id",
                   "decided_by", "decided_at", "category", "opened_by", "voided_at",
                   "void_reason"})  # a void shows as "entered in error", with its reason
_NAMES = {"reviewed_on": "review date", "next_review_on": "next review",
          "criteria_result": "result", "condition_code_44": "condition code 44",
          "approved_through": "approved through", "reference_number": "number",
          "peer_to_peer": "peer-to-peer", "peer_to_peer_at": "peer-to-peer time",
          "peer_to_peer_outcome": "peer-to-peer outcome", "first_day": "first day",
          "last_day": "last day", "reason_code": "reason"}
_TABLES: dict[str, dict[str, str]] = {
    "review_type": codes.REVIEW_TYPES, "level_of_care": codes.LEVELS_OF_CARE,
    "criteria_result": codes.CRITERIA_RESULTS, "advisor_outcome": codes.ADVISOR_OUTCOMES,
    "status": codes.AUTHORIZATION_STATUSES, "peer_to_peer": codes.PEER_TO_PEER,
    "peer_to_peer_outcome": codes.PEER_TO_PEER_OUTCOMES, "appeal_outcome": codes.APPEAL_OUTCOMES,
    "responsible_party": codes.RESPONSIBLE_PARTIES,
}


def requires_review(task: RuleOutput) -> bool:
    """A task completed by recording a review: its rule says so (requires_record), whatever
    the task's type is called in the site's rulesets."""
    return (task.detail or {}).get("requires_record") == "utilization_review"


@dataclass(frozen=True)
class FormError:
    """A UR record form the service refused: which form, which field, why, what was typed."""

    form: str  # "review", "review-12", "authorization", "barrier-3", ...
    field: str
    message: str
    typed: dict[str, str]


@dataclass(frozen=True)
class Change:
    """One earlier state of a record: when it changed, by whom, why, and what it was."""

    when: str
    by: str
    reason: str
    was: list[tuple[str, str, str]]  # (field, before, after)


@dataclass
class Entry:
    """A record with its history; `corrected` when a person changed what was recorded."""

    row: Any
    changes: list[Change] = field(default_factory=list)
    corrected: bool = False
    by: str = ""  # who recorded it, by display name
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReasonGroup:
    label: str
    reasons: list[DelayReason]


@dataclass
class UrRecord:
    reviews: list[Entry]  # every list keeps the voided records (shown entered in error)
    authorizations: list[Entry]  # extra["communications"]: their communications
    loose_communications: list[PayerCommunication]  # on the stay before an authorization
    barriers: list[Entry]  # extra["age"]
    avoidable_days: list[Entry]
    reasons: list[ReasonGroup]
    reason_words: dict[str, str]
    today: date
    interval_days: float | None  # the site's continued-stay cadence for this payer
    next_review_default: date | None  # today's review's next review, on the site's cadence
    review_type_default: str
    level_default: str
    criteria_set_default: str
    review_task: RuleOutput | None  # the review task the review form was opened from
    task_review: dict[int, UtilizationReview]  # review task id -> the review recorded for it


def _shown(key: str, value: Any, zone: ZoneInfo) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in _TABLES:
        return codes.words(_TABLES[key], str(value))
    if isinstance(value, str) and "T" in value and value[:4].isdigit():
        try:
            return display.local(datetime.fromisoformat(value), zone)
        except ValueError:
            return value
    return str(value)


def _history(session: Session, row: Any, zone: ZoneInfo, name: Callable[[str], str]) -> Entry:
    kind = type(row).__tablename__
    kept = revisions.history(session, kind, row.id)
    states = [k.body for k in kept] + [revisions.body_of(row)]
    changes = []
    for n, rev in enumerate(kept):
        before, after = states[n], states[n + 1]
        was = [(_NAMES.get(k, k.replace("_", " ")), _shown(k, before.get(k), zone),
                _shown(k, after.get(k), zone))
               for k in before if k not in _BOOK and before.get(k) != after.get(k)]
        changes.append(Change(display.local(rev.changed_at, zone), name(rev.changed_by),
                              rev.reason or "", was))
    corrected = any((k.reason or "") not in _STEPS for k in kept)
    return Entry(row, changes, corrected, name(getattr(row, "entered_by", "") or ""))


def grouped_reasons(ref: Reference) -> list[ReasonGroup]:
    """The site's delay reasons by category, in the categories' order."""
    order = list(codes.DELAY_CATEGORIES)
    cats = sorted({r.category for r in ref.delay_reasons.values()},
                  key=lambda c: (order.index(c) if c in order else len(order), c))
    return [ReasonGroup(codes.words(codes.DELAY_CATEGORIES, c),
                        sorted((r for r in ref.delay_reasons.values() if r.category == c),
                               key=lambda r: r.code)) for c in cats]


def load(session: Session, enc: Encounter, now: datetime, site: SiteProfile, ref: Reference,
         name: Callable[[str], str], review_task_id: int | None = None) -> UrRecord:
    zone = site.zone
    today = now.astimezone(zone).date()

    def entry(row: Any) -> Entry:
        return _history(session, row, zone, name)

    review_rows: list[UtilizationReview] = reviews.of_stay(session, enc.id, voided=True)
    review_entries = []
    for r in review_rows:
        e = entry(r)
        e.by = r.reviewer_display or name(r.reviewer)
        review_entries.append(e)
    comms: list[PayerCommunication] = authorizations.communications(session, enc.id,
                                                                    voided=True)
    auth_entries = []
    for a in authorizations.of_stay(session, enc.id, voided=True):
        e = entry(a)
        e.extra["communications"] = [c for c in comms if c.authorization_id == a.id]
        auth_entries.append(e)
    barrier_entries = []
    b: Barrier
    for b in barriers.of_stay(session, enc.id, voided=True):
        e = entry(b)
        e.by = name(b.opened_by)
        e.extra["age"] = display.span((b.resolved_at or now) - b.opened_at)
        barrier_entries.append(e)
    days = []
    d: AvoidableDay
    for d in avoidable_days.of_stay(session, enc.id, voided=True):
        e = entry(d)
        e.extra["count"] = (d.last_day - d.first_day).days + 1
        days.append(e)
    interval = site.review_interval_days(enc.payer_class)
    task = session.get(RuleOutput, review_task_id) if review_task_id else None
    if task is not None and (task.encounter_id != enc.id or not requires_review(task)):
        task = None
    task_review = {}
    for t in session.scalars(select(RuleOutput).where(RuleOutput.encounter_id == enc.id,
                                                      RuleOutput.kind == "task")):
        found = reviews.for_task(session, t.id) if requires_review(t) else None
        if found is not None:
            task_review[t.id] = found
    latest = next((r for r in review_rows if r.voided_at is None), None)
    kind = "continued_stay" if latest is not None else "initial"
    if task is not None:
        kind = REVIEW_TYPE_OF_TASK.get(task.code, kind)
    return UrRecord(
        reviews=review_entries, authorizations=auth_entries,
        loose_communications=[c for c in comms if c.authorization_id is None],
        barriers=barrier_entries, avoidable_days=days, reasons=grouped_reasons(ref),
        reason_words={c: r.text for c, r in ref.delay_reasons.items()}, today=today,
        interval_days=interval,
        next_review_default=today + timedelta(days=math.ceil(interval)) if interval else None,
        review_type_default=kind,
        level_default=enc.care_status if enc.care_status in codes.LEVELS_OF_CARE
        else "inpatient",
        criteria_set_default=(latest.criteria_set or "") if latest else "",
        review_task=task, task_review=task_review)


def records_read(record: UrRecord) -> list[tuple[str, int]]:
    """(resource type, id) of every record the section shows, for the audit trail."""
    shown: list[tuple[str, int]] = [("UtilizationReview", e.row.id) for e in record.reviews]
    for e in record.authorizations:
        shown.append(("PayerAuthorization", e.row.id))
        shown += [("PayerCommunication", c.id) for c in e.extra["communications"]]
    shown += [("PayerCommunication", c.id) for c in record.loose_communications]
    shown += [("Barrier", e.row.id) for e in record.barriers]
    shown += [("AvoidableDay", e.row.id) for e in record.avoidable_days]
    return shown


def value_of(row: PayerAuthorization | UtilizationReview | Barrier | AvoidableDay | None,
             key: str,
             zone: ZoneInfo) -> str:
    """A stored value as its form field holds it (dates ISO, times local, booleans on)."""
    if row is None:
        return ""
    value = getattr(row, key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else ""
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def moments(record: UrRecord, zone: ZoneInfo, name: Callable[[str], str]) -> list[Moment]:
    """The record's lines of the stay's timeline: when each was entered, and by whom (a
    record entered in error is no moment of the stay)."""
    out: list[Moment] = []

    def add(at: datetime, text: str, anchor: str) -> None:
        out.append(Moment(at, display.local(at, zone), "ur", text, anchor))

    def live(entries: list[Entry]) -> list[Entry]:
        return [e for e in entries if e.row.voided_at is None]

    for e in live(record.reviews):
        r = e.row
        add(r.entered_at, f"{codes.words(codes.REVIEW_TYPES, r.review_type)} recorded by "
                          f"{e.by}: {codes.words(codes.CRITERIA_RESULTS, r.criteria_result)}",
            f"review-{r.id}")
    for e in live(record.authorizations):
        a = e.row
        add(a.entered_at, f"authorization {a.reference_number or ''} recorded by {e.by}: "
                          f"{codes.words(codes.AUTHORIZATION_STATUSES, a.status)}".replace(
                              "  ", " "), f"authorization-{a.id}")
        for c in e.extra["communications"]:
            if c.voided_at is not None:
                continue
            add(c.at, f"payer communication ({codes.words(codes.CHANNELS, c.channel)}, "
                      f"{codes.words(codes.DIRECTIONS, c.direction).lower()}) by "
                      f"{name(c.entered_by)}", f"authorization-{a.id}")
    for e in live(record.barriers):
        b = e.row
        words = record.reason_words.get(b.reason_code, b.reason_code)
        add(b.opened_at, f"barrier opened by {e.by}: {words}", f"barrier-{b.id}")
        if b.resolved_at is not None:
            add(b.resolved_at, f"barrier resolved by {name(b.resolved_by or '')}: {words}",
                f"barrier-{b.id}")
    for e in live(record.avoidable_days):
        d = e.row
        if d.status != "proposed":
            add(d.decided_at or d.entered_at, f"{e.extra['count']} avoidable day(s) "
                                              f"{d.status} by {name(d.decided_by or '')}",
                f"avoidable-day-{d.id}")
    return out
