"""The demo tells the truth: its week of history is loaded in event time up to a coherent
"now", its staff have done most of their work, and what is left open is work a hospital
would really have open at that moment (the `engine demo` loader, without the server)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.core.vocabulary import OPEN_ENCOUNTER_STATUSES, OutputKind, OutputStatus
from engine.storage.models import Encounter, Patient, RuleOutput, StatusPeriod
from engine.tools.demo import load_demo
from tests.conftest import make_settings

# Work that is owed after the patient has left.
POST_DISCHARGE = {"tcm-contact", "follow-up-appointment", "short-stay-review"}
# The README's stated bound: a real department has a handful of tasks past due at any time.
OVERDUE_BOUND = 0.10
# First sign-ins in the demo hospital's zone (America/New_York): a Tuesday mid-morning, and
# a Monday at the start of the day shift, after a weekend's work.
NOWS = [datetime(2026, 3, 10, 14, 30, tzinfo=UTC), datetime(2026, 3, 9, 12, 0, tzinfo=UTC)]


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@dataclass
class Picture:
    """What a person signing in at `now` sees, measured."""

    open_tasks: list[RuleOutput] = field(default_factory=list)
    overdue: list[RuleOutput] = field(default_factory=list)
    ended_stay_work: list[tuple[str, str]] = field(default_factory=list)  # (visit, code)
    moon_never_owed: list[tuple[str, str, float]] = field(default_factory=list)
    same_second: int = 0  # tasks raised and withdrawn within one second
    raised_after_discharge: list[tuple[str, str]] = field(default_factory=list)  # in-stay work
    obs_hours: dict[str, float] = field(default_factory=dict)  # visit -> hours, ended obs
    names: list[str] = field(default_factory=list)


def picture(runtime: Runtime, now: datetime) -> Picture:
    seen = Picture()
    with runtime.readers() as s:
        encs = {e.id: e for e in s.scalars(select(Encounter))}
        obs: dict[int, float] = {}
        obs_open: set[int] = set()
        for p in s.scalars(select(StatusPeriod).where(StatusPeriod.care_status == "observation",
                                                      StatusPeriod.cancelled.is_(False))):
            end = _aware(p.end) or now
            if p.end is None and encs[p.encounter_id].status in OPEN_ENCOUNTER_STATUSES:
                obs_open.add(p.encounter_id)
            obs[p.encounter_id] = obs.get(p.encounter_id, 0.0) + (
                (end - _aware(p.start)).total_seconds() / 3600)
        for enc_id, hours in obs.items():
            if enc_id not in obs_open:
                seen.obs_hours[encs[enc_id].visit_number] = hours
        for task in s.scalars(select(RuleOutput).where(RuleOutput.kind == OutputKind.TASK)):
            enc = encs[task.encounter_id]
            ended = _aware(task.ended_at)
            if (task.status == OutputStatus.CANCELLED and ended is not None
                    and ended - _aware(task.fired_at) <= timedelta(seconds=1)
                    and task.end_reason and " by " not in task.end_reason):
                seen.same_second += 1
            left = _aware(enc.discharge_time)
            if (left is not None and _aware(task.fired_at) > left
                    and task.code not in POST_DISCHARGE):
                seen.raised_after_discharge.append((enc.visit_number, task.code))
            if task.status != OutputStatus.ACTIVE:
                continue
            seen.open_tasks.append(task)
            if task.due_at is not None and _aware(task.due_at) < now:
                seen.overdue.append(task)
            if enc.status not in OPEN_ENCOUNTER_STATUSES and task.code not in POST_DISCHARGE:
                seen.ended_stay_work.append((enc.visit_number, task.code))
            if (task.code in ("moon-notice", "moon-overdue-escalation")
                    and enc.id not in obs_open and obs.get(enc.id, 0.0) <= 24):
                seen.moon_never_owed.append((enc.visit_number, task.code,
                                             round(obs.get(enc.id, 0.0), 1)))
        seen.names = [f"{p.family}, {p.given}" for p in s.scalars(select(Patient).where(
            Patient.merged_into_id.is_(None)))]
    return seen


@pytest.fixture(scope="module", params=NOWS, ids=lambda now: f"{now:%a-%H%M}Z")
def demo(request, tmp_path_factory):
    """A smaller demo hospital (40 beds, 5 days) loaded the way `engine demo` loads it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
    settings = make_settings(url)
    loaded = load_demo(settings, now=request.param, beds=40, days=5)
    runtime = Runtime.open(settings)
    yield loaded, picture(runtime, request.param)
    runtime.close()


def test_the_history_is_loaded_in_event_time_not_all_at_once(demo):
    loaded, seen = demo
    assert set(loaded.counts) <= {"accepted", "duplicate"}
    # At the wall clock every stay's outputs were raised and withdrawn in the same second,
    # and the work of the stay (reviews, notices, plans) was raised after it had ended.
    assert seen.same_second == 0
    assert seen.raised_after_discharge == []
    # A stay's observation hours count between its own events, not up to the loading time.
    assert seen.obs_hours and max(seen.obs_hours.values()) < 24 * 4


def test_the_staff_did_most_of_the_work_and_a_small_share_is_overdue(demo):
    loaded, seen = demo
    assert loaded.completed > len(seen.open_tasks)
    assert seen.open_tasks, "a live worklist still has work on it"
    share = len(seen.overdue) / len(seen.open_tasks)
    assert share < OVERDUE_BOUND, f"{len(seen.overdue)} of {len(seen.open_tasks)} overdue"


def test_no_open_task_is_for_a_stay_that_has_ended_unless_it_is_post_discharge_work(demo):
    _, seen = demo
    assert seen.ended_stay_work == []


def test_no_moon_work_where_observation_ended_before_24_hours(demo):
    """MOON is owed only after more than 24 hours in observation; an overdue-MOON alarm only
    where a MOON was owed."""
    _, seen = demo
    assert seen.moon_never_owed == []


def test_the_patients_have_varied_synthetic_names(demo):
    _, seen = demo
    assert seen.names and not any("STORY" in n.upper() for n in seen.names)
    assert len(set(seen.names)) > 0.9 * len(seen.names)
