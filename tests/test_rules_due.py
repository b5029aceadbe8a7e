"""Due times that follow the regulations: a notice due before a discharge lands at a working
hour inside its window, never overnight; a recurring review never comes due before the
review it counts from."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from engine.rules.due import due_time, recurring_due
from engine.rules.model import Due
from engine.rules.snapshot import Period, Snapshot

ZONE = ZoneInfo("America/Chicago")
FOLLOW_UP_IM = Due(after="expected_discharge", days_before=1, at="10:00",
                   working_hours="08:00-17:00", or_sooner=["pending_discharge"])


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZONE)


def due(d: Due, snap: Snapshot, fired: datetime) -> datetime | None:
    return due_time(d, snap, fired, ZONE, frozenset())


def test_follow_up_im_is_due_at_10_the_day_before_the_expected_discharge():
    snap = Snapshot(expected_discharge_date=date(2026, 3, 6))
    assert due(FOLLOW_UP_IM, snap, local(2026, 3, 4, 0, 0)) == local(2026, 3, 5, 10, 0)


def test_raised_after_that_hour_it_is_due_at_once_or_the_next_morning():
    snap = Snapshot(expected_discharge_date=date(2026, 3, 6))
    assert due(FOLLOW_UP_IM, snap, local(2026, 3, 5, 14, 0)) == local(2026, 3, 5, 14, 0)
    assert due(FOLLOW_UP_IM, snap, local(2026, 3, 5, 22, 0)) == local(2026, 3, 6, 8, 0)
    assert due(FOLLOW_UP_IM, snap, local(2026, 3, 6, 6, 30)) == local(2026, 3, 6, 8, 0)


def test_a_pending_discharge_makes_it_due_at_once_even_without_an_expected_date():
    a16 = local(2026, 3, 5, 7, 30)  # before the working day: still at once
    with_date = Snapshot(expected_discharge_date=date(2026, 3, 6), pending_discharge_time=a16)
    assert due(FOLLOW_UP_IM, with_date, local(2026, 3, 4, 0, 0)) == a16
    later = Snapshot(expected_discharge_date=date(2026, 3, 6),
                     pending_discharge_time=local(2026, 3, 5, 21, 0))
    assert due(FOLLOW_UP_IM, later, local(2026, 3, 4, 0, 0)) == local(2026, 3, 5, 10, 0)
    assert due(FOLLOW_UP_IM, Snapshot(pending_discharge_time=a16), a16) == a16
    assert due(FOLLOW_UP_IM, Snapshot(), a16) is None


def test_days_before_keeps_the_local_hour_across_the_spring_forward_night():
    snap = Snapshot(expected_discharge_date=date(2026, 3, 9))  # clocks change on 8 March
    d = Due(after="expected_discharge", days_before=1, at="10:00")
    assert due(d, snap, local(2026, 3, 7, 0, 0)) == local(2026, 3, 8, 10, 0)


def test_a_recurring_review_is_not_due_before_the_review_it_counts_from():
    snap = Snapshot(status_periods=[Period("inpatient", local(2026, 3, 2, 10, 0), None)])
    d = Due(after="inpatient_start")
    fired = local(2026, 3, 2, 10, 0)
    assert recurring_due(d, 1, None, snap, fired, ZONE) == local(2026, 3, 3, 10, 0)
    initial_due = local(2026, 3, 3, 17, 0)
    assert recurring_due(d, 1, None, snap, fired, ZONE, not_before=initial_due) == \
        local(2026, 3, 4, 17, 0)
    done = local(2026, 3, 3, 9, 0).astimezone(UTC)  # once done, it counts from the completion
    assert recurring_due(d, 1, done, snap, fired, ZONE, not_before=initial_due) == \
        local(2026, 3, 4, 9, 0)
