"""expected_inpatient_days and expected_midnights_in_hospital: from the first inpatient day
(or the arrival) to the expected discharge day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.rules.facts import FACTS, derive
from engine.rules.reference import load_reference
from engine.rules.snapshot import Period, Snapshot

REF = load_reference(Path(__file__).parent.parent / "rulesets" / "reference")
ZONE = ZoneInfo("America/Chicago")


def _snap(**kw) -> Snapshot:
    # Observation from Sunday 20:00 local, inpatient from Tuesday 02:00 local (08:00 UTC).
    periods = [Period("observation", datetime(2026, 3, 2, 2, tzinfo=UTC),
                      datetime(2026, 3, 3, 8, tzinfo=UTC)),
               Period("inpatient", datetime(2026, 3, 3, 8, tzinfo=UTC), None)]
    return Snapshot(status_periods=periods, **kw)


def test_catalogued():
    assert FACTS["expected_inpatient_days"].varies == "daily"


def test_counts_from_the_local_inpatient_day_to_pv2_9():
    now = datetime(2026, 3, 4, 15, tzinfo=UTC)
    v = derive(_snap(expected_discharge_date=date(2026, 3, 6)), now, ZONE, REF).values
    assert v["expected_inpatient_days"] == 3  # Tue 3 Mar -> Fri 6 Mar, observation excluded


def test_utc_date_is_not_the_local_date():
    # 2026-03-03 04:00 UTC is still 2 March (22:00) in Chicago.
    snap = Snapshot(status_periods=[Period("inpatient", datetime(2026, 3, 3, 4, tzinfo=UTC),
                                           None)], expected_discharge_date=date(2026, 3, 4))
    v = derive(snap, datetime(2026, 3, 3, 15, tzinfo=UTC), ZONE, REF).values
    assert v["expected_inpatient_days"] == 2


def test_pending_discharge_without_date_and_past_date_use_today():
    now = datetime(2026, 3, 7, 15, tzinfo=UTC)
    pending = _snap(pending_discharge_time=datetime(2026, 3, 7, 14, tzinfo=UTC))
    assert derive(pending, now, ZONE, REF).values["expected_inpatient_days"] == 4
    past = _snap(expected_discharge_date=date(2026, 3, 5))
    assert derive(past, now, ZONE, REF).values["expected_inpatient_days"] == 4


def test_unknown_without_expectation_or_after_discharge():
    now = datetime(2026, 3, 7, 15, tzinfo=UTC)
    assert "expected_inpatient_days" not in derive(_snap(), now, ZONE, REF).values
    gone = _snap(expected_discharge_date=date(2026, 3, 6),
                 discharge_time=datetime(2026, 3, 6, 16, tzinfo=UTC))
    assert "expected_inpatient_days" not in derive(gone, now, ZONE, REF).values


def test_expected_midnights_count_from_the_arrival_including_observation():
    # Observation from Sunday 1 March (local), expected discharge Tuesday 3 March: 2.
    now = datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert FACTS["expected_midnights_in_hospital"].varies == "daily"
    v = derive(_snap(expected_discharge_date=date(2026, 3, 3)), now, ZONE, REF).values
    assert v["expected_midnights_in_hospital"] == 2


def test_expected_midnights_of_a_short_inpatient_stay_and_after_discharge():
    # Inpatient Monday 2 March 10:00 local, expected Tuesday: one midnight, under the benchmark.
    start = datetime(2026, 3, 2, 16, tzinfo=UTC)
    snap = Snapshot(status_periods=[Period("inpatient", start, None)],
                    expected_discharge_date=date(2026, 3, 3))
    now = datetime(2026, 3, 2, 17, tzinfo=UTC)
    assert derive(snap, now, ZONE, REF).values["expected_midnights_in_hospital"] == 1
    pending = Snapshot(status_periods=[Period("inpatient", start, None)],
                       pending_discharge_time=datetime(2026, 3, 2, 20, tzinfo=UTC))
    assert derive(pending, now, ZONE, REF).values["expected_midnights_in_hospital"] == 0
    gone = Snapshot(status_periods=[Period("inpatient", start, None)],
                    expected_discharge_date=date(2026, 3, 3),
                    discharge_time=datetime(2026, 3, 2, 20, tzinfo=UTC))
    after = datetime(2026, 3, 2, 21, tzinfo=UTC)
    assert "expected_midnights_in_hospital" not in derive(gone, after, ZONE, REF).values

def test_hours_in_icu_add_up_every_icu_stay_and_grow_hourly_while_in_the_icu():
    """42 CFR 412.522(b) counts ICU days of the acute stay: all ICU stays, not ICU entries."""
    t = [datetime(2026, 3, 2, h, tzinfo=UTC) for h in (8, 20, 22)]
    snap = Snapshot(status_periods=[Period("inpatient", t[0], None)],
                    locations=[Period("ICU", t[0], t[1]), Period("4WEST", t[1], t[2]),
                               Period("ICU", t[2], None)])
    now = datetime(2026, 3, 3, 10, tzinfo=UTC)
    got = derive(snap, now, ZONE, REF)
    assert got.values["hours_in_icu"] == 24.0  # 12 hours, then 12 more since 22:00
    assert "hours_in_icu" in got.hourly and FACTS["hours_in_icu"].varies == "hourly"
    snap.locations = [*snap.locations[:2], Period("ICU", t[2], now), Period("4WEST", now, None)]
    later = derive(snap, datetime(2026, 3, 4, 10, tzinfo=UTC), ZONE, REF)
    assert later.values["hours_in_icu"] == 24.0 and "hours_in_icu" not in later.hourly


def test_the_clock_looks_again_when_the_icu_stay_reaches_three_days():
    """The LTACH rule reads hours_in_icu >= 72: the next boundary is the 72nd ICU hour."""
    from engine.core.config import DEFAULT_SITE_PROFILE
    from engine.core.site import load_site_profile
    from engine.planning.rulebook import Rulebook

    rules = Rulebook.load(Path(__file__).parent.parent / "rulesets",
                          load_site_profile(DEFAULT_SITE_PROFILE), staffing_file=None)
    admit = datetime(2026, 3, 2, 16, tzinfo=UTC)
    snap = Snapshot(status_periods=[Period("inpatient", admit, None)], care_status="inpatient",
                    locations=[Period("ICU", admit, None)], diagnoses=[("J96.01", "W")])
    now = datetime(2026, 3, 5, 14, tzinfo=UTC)  # 70 hours in the ICU
    derived = rules.facts(snap, now)
    assert rules.next_boundary(snap, derived, now, []) == datetime(2026, 3, 5, 16, tzinfo=UTC)
