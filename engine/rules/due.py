"""Due times: an anchor (admission, discharge, when the rule fired...) plus hours, the Nth
local midnight, the end of the Nth business day on the hospital's calendar, or a working hour
N days before the anchor's day; optionally kept inside working hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from engine.rules import record_dates
from engine.rules.model import Due
from engine.rules.snapshot import Snapshot


def anchor_time(anchor: str, snap: Snapshot, fired_at: datetime, zone: ZoneInfo
                ) -> datetime | None:
    if anchor == "admission":
        return snap.admit_time or min((p.start for p in snap.status_periods), default=None)
    if anchor in ("observation_start", "inpatient_start"):
        status = anchor.removesuffix("_start")
        return min((p.start for p in snap.status_periods if p.value == status), default=None)
    if anchor == "discharge":
        return snap.discharge_time
    if anchor == "expected_discharge":
        if snap.expected_discharge_date is None:
            return None
        return datetime.combine(snap.expected_discharge_date, time(0), tzinfo=zone)
    if anchor == "pending_discharge":
        return snap.pending_discharge_time
    if anchor == "event":
        return snap.last_event_time
    if anchor in _RECORD_DATES:
        day = _RECORD_DATES[anchor](snap)
        return None if day is None else datetime.combine(day, time(0), tzinfo=zone)
    return fired_at  # "fired"


_RECORD_DATES = {"next_review": record_dates.next_review_on,
                 "approved_through": record_dates.approved_through,
                 "appeal_deadline": record_dates.appeal_deadline}


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone)


def due_time(due: Due, snap: Snapshot, fired_at: datetime, zone: ZoneInfo,
             holidays: frozenset[date]) -> datetime | None:
    """The instant a task is due: the first of its anchor's due time and the `or_sooner`
    moments that are known (a pending discharge without an expected date still makes a
    discharge notice due); None while none of them is known."""
    start = anchor_time(due.after, snap, fired_at, zone)
    when = None
    if start is not None:
        when = _from_anchor(due, start, zone, holidays)
        if due.working_hours is not None:
            when = _working(max(when, fired_at.astimezone(UTC)), due.working_hours, zone)
    for anchor in due.or_sooner or []:
        sooner = anchor_time(anchor, snap, fired_at, zone)
        if sooner is not None and (when is None or sooner < when):
            when = sooner.astimezone(UTC)
    return when


def _clock(text: str) -> time:
    hour, minute = (int(x) for x in text.split(":"))
    return time(hour, minute)


def _working(when: datetime, hours: str, zone: ZoneInfo) -> datetime:
    """`when`, or the start of the next working hours when it falls outside them: a notice
    raised late in the evening is due the next morning, not overnight."""
    opens, closes = (_clock(t) for t in hours.split("-"))
    local = when.astimezone(zone)
    if local.time() < opens:
        return datetime.combine(local.date(), opens, tzinfo=zone).astimezone(UTC)
    if local.time() >= closes:
        day = local.date() + timedelta(days=1)
        return datetime.combine(day, opens, tzinfo=zone).astimezone(UTC)
    return when


def _from_anchor(due: Due, start: datetime, zone: ZoneInfo, holidays: frozenset[date]
                 ) -> datetime:
    if due.days_before is not None or due.days_after is not None:
        shift = -(due.days_before or 0) if due.days_after is None else due.days_after
        day = start.astimezone(zone).date() + timedelta(days=shift)
        return datetime.combine(day, _clock(due.at or "23:59"), tzinfo=zone).astimezone(UTC)
    if due.midnights is not None:
        day = start.astimezone(zone).date() + timedelta(days=due.midnights)
        return _local_midnight(day, zone)
    if due.business_days is not None:
        day = start.astimezone(zone).date()
        remaining = due.business_days
        while remaining > 0 or day.weekday() >= 5 or day in holidays:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in holidays:
                remaining -= 1
        hour, minute = (int(x) for x in (due.at or "23:59").split(":"))
        return datetime.combine(day, time(hour, minute), tzinfo=zone)
    # Absolute hours, in UTC: a 36-hour deadline is 36 real hours across a DST change.
    return start.astimezone(UTC) + timedelta(hours=due.hours or 0)


def recurring_due(due: Due, every_days: float, last_done: datetime | None, snap: Snapshot,
                  fired_at: datetime, zone: ZoneInfo, not_before: datetime | None = None,
                  next_review_at: str | None = None, occurrence: int | None = None,
                  was_due: datetime | None = None) -> datetime | None:
    """The next occurrence of a recurring task: `every_days` after the last completion, or
    before the first, after the anchor or `not_before` (the due time of the open task it
    counts from, e.g. the initial review) if later; whole days keep the local clock time
    across DST. With `next_review_at` (HH:MM) and a review recorded with a next review date,
    it is due at that time on that date: the record, not the task's completion, says when
    the next review is (never before `not_before`: a continued-stay review follows the
    admission review). An open occurrence (`occurrence`, due `was_due`) is not moved by the
    review that documents it (record_dates.next_review_on)."""
    recorded = (record_dates.next_review_on(snap, occurrence=occurrence, recorded_by=was_due)
                if next_review_at else None)
    if recorded is not None and next_review_at is not None:
        when = datetime.combine(recorded, _clock(next_review_at), tzinfo=zone).astimezone(UTC)
        return max(when, not_before.astimezone(UTC)) if not_before is not None else when
    start = last_done or anchor_time(due.after, snap, fired_at, zone)
    if last_done is None and not_before is not None and (start is None or not_before > start):
        start = not_before
    if start is None:
        return None
    if every_days != int(every_days):
        return start.astimezone(UTC) + timedelta(days=every_days)
    local = start.astimezone(zone)
    day = local.date() + timedelta(days=int(every_days))
    return datetime.combine(day, local.time(), tzinfo=zone).astimezone(UTC)
