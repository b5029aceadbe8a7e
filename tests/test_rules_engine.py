"""The rules at work in the one path and on the clock: stories a UR nurse would recognise."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from engine.core.clock import FixedClock
from engine.hl7.build import adt
from engine.planning.tick import tick
from engine.rules.facts import derive
from engine.rules.reference import Reference
from engine.rules.snapshot import Period, Snapshot
from engine.storage.models import Encounter, RuleOutput

CHICAGO = ZoneInfo("America/Chicago")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)


def outputs(rt, visit: str = "V1001", status: str = "active") -> dict[str, RuleOutput]:
    with rt.readers() as s:
        rows = s.scalars(select(RuleOutput).join(Encounter, Encounter.id == RuleOutput.encounter_id)
                         .where(Encounter.visit_number == visit, RuleOutput.status == status))
        return {f"{r.kind}:{r.code}": r for r in rows}


def at(rt, clock: FixedClock, when: datetime) -> None:
    clock.set(when)
    tick(rt.sessions, rt.rules.current, when)


def test_medicare_observation_story_moon_then_second_midnight_then_admission(runtime_factory):
    clock = FixedClock(local(2026, 3, 1, 20, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A04", "202603012000", patient_class="O", patient_type="OBS",
                      admit_time="202603012000", plan="MCR001"))
    assert "task:moon-notice" not in outputs(rt)

    at(rt, clock, local(2026, 3, 2, 20, 30))  # 24.5 hours of observation, one midnight
    now = outputs(rt)
    assert "task:moon-notice" in now and "task:status-review" not in now
    assert now["task:moon-notice"].due_at == local(2026, 3, 3, 8, 0)  # 36 h after start

    at(rt, clock, local(2026, 3, 3, 0, 30))  # the second midnight has passed
    review = outputs(rt)["task:status-review"]
    assert review.priority == "urgent" and review.queue == "ur_nurse"
    assert review.due_at == local(2026, 3, 3, 0, 30)
    assert review.rule_id == "ur-two-midnight-observation"
    assert review.ruleset == "utilization_review" and review.ruleset_version
    assert review.facts["midnights_in_hospital"] == 2
    assert review.facts["payer_class"] == "medicare"

    # Re-evaluating at the same instant changes nothing and duplicates nothing.
    at(rt, clock, local(2026, 3, 3, 0, 30))
    with rt.readers() as s:
        assert s.scalar(select(func.count()).select_from(RuleOutput)) == len(outputs(rt))

    clock.set(local(2026, 3, 3, 10, 0))
    rt.intake.hl7(adt("A06", "202603031000", patient_class="I", plan="MCR001"))
    now = outputs(rt)
    assert "task:status-review" not in now  # admitted: the status question is answered
    assert "task:moon-notice" in now  # still owed: it covers the observation hours
    assert "task:im-notice" in now and "task:initial-ur-review" in now
    assert now["task:im-notice"].due_at == local(2026, 3, 6, 0, 0)
    cancelled = outputs(rt, status="cancelled")["task:status-review"]
    assert cancelled.end_reason == "conditions no longer hold"


def test_cancelled_admission_cancels_its_open_work(runtime_factory):
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan="MCR001"))
    assert {"task:im-notice", "task:initial-ur-review"} <= set(outputs(rt))

    rt.intake.hl7(adt("A11", "202603021100"))

    assert not outputs(rt)
    ended = outputs(rt, status="cancelled")
    assert {r.end_reason for r in ended.values()} == {"encounter cancelled"}
    with rt.sessions() as s:
        enc = s.scalars(select(Encounter)).one()
        assert enc.next_evaluation_at is None


def test_completed_work_stays_completed(runtime_factory):
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A01", "202603021015", plan="MCR001"))
    with rt.sessions() as s, s.begin():
        task = s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).one()
        task.status = "completed"

    rt.intake.hl7(adt("A08", "202603031015", plan="MCR001"))
    at(rt, clock, local(2026, 3, 4, 9, 0))

    with rt.sessions() as s:
        rows = s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).all()
    assert [r.status for r in rows] == ["completed"]


def test_the_schedule_survives_a_restart(runtime_factory):
    clock = FixedClock(local(2026, 3, 1, 20, 0))
    first = runtime_factory(clock=clock)
    first.intake.hl7(adt("A04", "202603012000", patient_class="O", patient_type="OBS",
                         admit_time="202603012000", plan="MCA100"))
    with first.sessions() as s:
        boundary = s.scalars(select(Encounter.next_evaluation_at)).one()
    # The next thing that can change is the first local midnight.
    assert boundary is not None and boundary.astimezone(CHICAGO) <= local(2026, 3, 2, 0, 0, 1)
    first.close()

    restarted = runtime_factory(clock=FixedClock(local(2026, 3, 3, 9, 0)))
    evaluated = tick(restarted.sessions, restarted.rules.current, local(2026, 3, 3, 9, 0))

    assert evaluated == 1
    assert {"task:moon-notice", "task:status-review", "task:observation-escalation"} - set(
        outputs(restarted)) == {"task:observation-escalation"}


def test_observation_escalation_fires_just_after_the_48th_hour(runtime_factory):
    clock = FixedClock(local(2026, 3, 1, 8, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A04", "202603010800", patient_class="O", patient_type="OBS",
                      admit_time="202603010800", plan="COM300"))
    at(rt, clock, local(2026, 3, 3, 8, 0))  # exactly 48 hours: not yet "more than 48"
    assert "task:observation-escalation" not in outputs(rt)
    with rt.sessions() as s:
        boundary = s.scalars(select(Encounter.next_evaluation_at)).one()
    assert boundary == local(2026, 3, 3, 8, 0, 1)
    at(rt, clock, boundary)
    assert "task:observation-escalation" in outputs(rt)


def test_a_discharged_stay_is_not_woken_at_midnights_no_rule_reads(runtime_factory):
    """After discharge the stay's length is frozen: the clock waits for the next real change
    (a due time, or the end of the post-discharge window), not for every midnight."""
    clock = FixedClock(local(2026, 3, 1, 8, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A01", "202603010800", admit_time="202603010800", plan="COM300"))
    with rt.sessions() as s:
        running = s.scalars(select(Encounter.next_evaluation_at)).one()
    assert running.astimezone(CHICAGO) <= local(2026, 3, 2, 0, 0, 1)  # the stay's midnights
    clock.set(local(2026, 3, 4, 10, 0))
    rt.intake.hl7(adt("A03", "202603041000", admit_time="202603010800",
                      discharge_time="202603041000", disposition="01", plan="COM300"))
    with rt.sessions() as s:
        after = s.scalars(select(Encounter.next_evaluation_at)).one()
        due = s.scalars(select(func.min(RuleOutput.due_at)).where(
            RuleOutput.status == "active", RuleOutput.due_at > clock.instant)).one()
    assert after is not None and after.astimezone(CHICAGO) > local(2026, 3, 5, 0, 0, 1)
    if due is not None:  # the next due time is the next look
        assert after <= due + timedelta(seconds=1)


def test_a_birthday_is_a_midnight_the_age_rules_see():
    """Age changes at the local midnight that starts the birthday (29 February: 1 March)."""
    snap = Snapshot(status="finished", birth_date=date(1940, 2, 29),
                    discharge_time=local(2026, 2, 20, 10, 0))
    eve = derive(snap, local(2026, 2, 28, 12, 0), CHICAGO, Reference())
    before = derive(snap, local(2026, 2, 20, 12, 0), CHICAGO, Reference())
    assert eve.changes_at["age"] == before.changes_at["age"] == local(2026, 3, 1, 0, 0)
    assert "los_days" not in eve.daily  # frozen at discharge


def test_evaluation_error_is_isolated_and_retried(runtime_factory):
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock)
    book = rt.rules.current

    class Broken(type(book)):  # a defect in a fact or rule, as a bug would raise it
        def evaluate_encounter(self, *args, **kwargs):
            raise ZeroDivisionError("a defect in a rule")

    rt.rules.current = Broken(book.book, book.site, staffing_file=book.staffing_file)
    receipt = rt.intake.hl7(adt("A01", "202603021015", plan="MCR001"))

    assert receipt.outcome == "accepted" and "MSA|AA|" in receipt.ack
    with rt.sessions() as s:
        enc = s.scalars(select(Encounter)).one()
        assert enc.next_evaluation_at == local(2026, 3, 2, 10, 35)
    rt.rules.current = book
    at(rt, clock, local(2026, 3, 2, 10, 36))
    assert "task:im-notice" in outputs(rt)


def test_midnights_are_local_calendar_midnights_across_daylight_saving():
    start = local(2026, 11, 1, 0, 30)  # the night the clocks fall back: a 25-hour day
    now = local(2026, 11, 2, 0, 30)
    snap = Snapshot(care_status="observation", admit_time=start,
                    status_periods=[Period("observation", start, None)])
    values = derive(snap, now, CHICAGO, Reference()).values
    assert values["midnights_in_observation"] == 1
    assert values["hours_in_observation"] == 25.0
    spring = local(2026, 3, 8, 0, 30)  # the 23-hour day
    snap = Snapshot(care_status="observation", admit_time=spring,
                    status_periods=[Period("observation", spring, None)])
    values = derive(snap, local(2026, 3, 9, 0, 30), CHICAGO, Reference()).values
    assert values["midnights_in_observation"] == 1 and values["hours_in_observation"] == 23.0


def test_time_based_rules_fire_as_a_replayed_stream_passes_them(runtime_factory, tmp_path: Path):
    from engine.intake.replay import finish, replay

    clock = FixedClock(datetime(1900, 1, 1, tzinfo=UTC))
    rt = runtime_factory(clock=clock)
    stream = [
        adt("A04", "202603012000", patient_class="O", patient_type="OBS",
            admit_time="202603012000", plan="MCR001"),
        adt("A08", "202603031200", patient_class="O", patient_type="OBS", plan="MCR001"),
    ]
    replay(rt.intake, clock, stream)
    review = outputs(rt)["task:status-review"]
    # It fired when stream time passed the second midnight, not when the A08 arrived.
    assert review.fired_at == local(2026, 3, 3, 0, 0, 1)
    finish(rt.intake, clock, local(2026, 3, 4, 0, 0))
    assert "task:observation-escalation" in outputs(rt)


def test_a_replay_keeps_its_boundaries_when_another_stay_fails_to_evaluate(runtime_factory):
    """One stay whose evaluation fails (retried every 5 minutes) must not make the replay
    skip another stay's boundary: the second midnight still fires at the second midnight."""
    from engine.intake.replay import finish, replay

    clock = FixedClock(datetime(1900, 1, 1, tzinfo=UTC))
    rt = runtime_factory(clock=clock)
    book = rt.rules.current

    class FailsForOne(type(book)):  # a defect that only one stay's data reaches
        def evaluate_encounter(self, session, enc, now, **kwargs):
            if enc.visit_number == "V666":
                raise ZeroDivisionError("a defect in a rule")
            return super().evaluate_encounter(session, enc, now, **kwargs)

    rt.rules.current = FailsForOne(book.book, book.site, staffing_file=book.staffing_file)
    replay(rt.intake, clock, [
        adt("A01", "202603011900", visit="V666", mrn="300666", admit_time="202603011900"),
        adt("A04", "202603012000", patient_class="O", patient_type="OBS",
            admit_time="202603012000", plan="MCR001"),
    ])
    finish(rt.intake, clock, local(2026, 3, 3, 12, 0))
    assert outputs(rt)["task:status-review"].fired_at == local(2026, 3, 3, 0, 0, 1)


def test_observation_patient_sent_home_at_hour_37_without_the_moon_leaves_no_stat_alarm(
        runtime_factory):
    """The stat "deliver the MOON now" alarm and the MOON itself end with the discharge that
    makes delivery impossible, in the same evaluation: no tick needed."""
    clock = FixedClock(local(2026, 3, 1, 20, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A04", "202603012000", patient_class="O", patient_type="OBS",
                      admit_time="202603012000", plan="MCR001"))
    at(rt, clock, local(2026, 3, 2, 20, 30))  # 24.5 hours: the MOON is owed
    at(rt, clock, local(2026, 3, 3, 8, 30))  # 36.5 hours: the MOON is overdue
    assert {"task:moon-notice", "task:moon-overdue-escalation", "flag:moon-overdue"} <= set(
        outputs(rt))

    clock.set(local(2026, 3, 3, 9, 0))
    rt.intake.hl7(adt("A03", "202603030900", patient_class="O", patient_type="OBS",
                      admit_time="202603012000", discharge_time="202603030900",
                      disposition="01", plan="MCR001"))
    now = outputs(rt)
    assert not {"task:moon-notice", "task:moon-overdue-escalation", "flag:moon-overdue"} & set(
        now)


def test_follow_up_im_is_due_the_working_morning_before_the_discharge_not_overnight(
        runtime_factory):
    """A Medicare inpatient expected home on Friday: the follow-up copy is raised on
    Wednesday, due Thursday 10:00, and is not overdue at 01:00 on Thursday."""
    clock = FixedClock(local(2026, 3, 2, 10, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A01", "202603021000", admit_time="202603021000", plan="MCR001",
                      expected_discharge="20260306"))
    at(rt, clock, local(2026, 3, 4, 0, 5))
    follow_up = outputs(rt)["task:im-follow-up-notice"]
    assert follow_up.due_at == local(2026, 3, 5, 10, 0)
    at(rt, clock, local(2026, 3, 5, 1, 0))  # overnight: still due later this morning
    assert outputs(rt)["task:im-follow-up-notice"].due_at == local(2026, 3, 5, 10, 0)


def test_continued_stay_review_never_comes_due_before_the_initial_review(runtime_factory):
    """Commercial cadence is daily; the initial review is due Tuesday 17:00, so the first
    continued-stay review is due Wednesday 17:00, then a day after each completion."""
    clock = FixedClock(local(2026, 3, 2, 10, 0))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(adt("A01", "202603021000", admit_time="202603021000", plan="COM300"))
    now = outputs(rt)
    initial, review = now["task:initial-ur-review"], now["task:continued-stay-review"]
    assert initial.due_at == local(2026, 3, 3, 17, 0)
    assert review.due_at == local(2026, 3, 4, 17, 0) > initial.due_at
