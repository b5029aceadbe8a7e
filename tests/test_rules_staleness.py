"""No stale outputs: what a rule raised is withdrawn as soon as its conditions stop holding,
whether time moved them or another rule's output did, with only the ordinary clock running
(the due-encounter path, never a sweep of every open stay)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import object_session

from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt, oru
from engine.intake.replay import advance
from engine.planning.evaluation import evaluate
from engine.rules.facts import CATALOGUE, FROM_OUTPUTS, derive, task_facts
from engine.rules.reference import Reference, load_reference
from engine.rules.snapshot import Authorization, AvoidableDays, Barrier, Period, Review, Snapshot
from engine.storage.models import Encounter, RuleOutput
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    ReviewInput,
)
from engine.work.ur_record.stay import locked

CHICAGO = ZoneInfo("America/Chicago")
RULESETS = Path(__file__).resolve().parent.parent / "rulesets"
SECOND = timedelta(seconds=1)
# A visit number of these tests' own: on a PostgreSQL shared with other test runs, the
# clock skips a visit whose intake lock someone else holds (the same key, another schema).
VISIT, MRN = "VSTALE1", "900141"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)


def hl7_time(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M")


def stay(trigger: str, when: str, **kw) -> bytes:
    return adt(trigger, when, visit=VISIT, mrn=MRN, **kw)


def outputs(rt, status: str = "active") -> dict[str, RuleOutput]:
    with rt.readers() as s:
        rows = s.scalars(select(RuleOutput).where(RuleOutput.status == status))
        return {f"{r.kind}:{r.code}": r for r in rows}


# -- The overdue MOON, as the supervisors saw it ------------------------------------------

def test_a_late_discharge_withdraws_the_moon_and_its_overdue_escalation_at_once(
        runtime_factory):
    """A Medicare patient in observation from 08:00; the clock passes the 24th hour (MOON
    owed) and the 36th (MOON overdue: stat escalation and flag). Then the A03 arrives late:
    the patient left at 04:00, after 20 hours of observation, so no MOON was ever owed. The
    MOON task, its escalation and the flag all end in that evaluation, with no manual tick."""
    start = local(2026, 3, 1, 8, 0)
    clock = FixedClock(start)
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(stay("A04", hl7_time(start), patient_class="O", patient_type="OBS",
                       admit_time=hl7_time(start), plan="MCR001"))
    advance(rt.intake, clock, local(2026, 3, 2, 21, 0))
    late = outputs(rt)
    assert {"task:moon-notice", "task:moon-overdue-escalation", "flag:moon-overdue"} <= set(late)
    assert late["task:moon-overdue-escalation"].fired_at == local(2026, 3, 2, 20, 0, 1)

    rt.intake.hl7(stay("A03", "202603022100", patient_class="O", patient_type="OBS",
                       admit_time=hl7_time(start), discharge_time="202603020400",
                       disposition="01", plan="MCR001"))

    now = outputs(rt)
    assert not {"task:moon-notice", "task:moon-overdue-escalation",
                "flag:moon-overdue"} & set(now)
    ended = outputs(rt, status="cancelled")
    for key in ("task:moon-notice", "task:moon-overdue-escalation", "flag:moon-overdue"):
        assert ended[key].ended_at == local(2026, 3, 2, 21, 0)
        assert ended[key].end_reason == "conditions no longer hold"
    assert ended["task:moon-overdue-escalation"].task_status == "cancelled"


def test_an_admission_entered_late_makes_the_moon_overdue_in_the_same_evaluation(
        runtime_factory):
    """The other direction: the MOON is open, due at the 36th hour (20:00 on day two). The
    physician admitted the patient at 14:00, but the A06 reaches the engine at 15:00: the
    MOON was due by the admission, which has passed. The same evaluation that moves its due
    time raises the overdue escalation, not a later look."""
    start = local(2026, 3, 1, 8, 0)
    clock = FixedClock(start)
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(stay("A04", hl7_time(start), patient_class="O", patient_type="OBS",
                       admit_time=hl7_time(start), plan="MCR001"))
    advance(rt.intake, clock, local(2026, 3, 2, 15, 0))
    assert outputs(rt)["task:moon-notice"].due_at == local(2026, 3, 2, 20, 0)
    assert "task:moon-overdue-escalation" not in outputs(rt)

    rt.intake.hl7(stay("A06", "202603021400", patient_class="I", plan="MCR001"))

    now = outputs(rt)
    assert now["task:moon-notice"].due_at == local(2026, 3, 2, 14, 0)
    assert now["task:moon-overdue-escalation"].fired_at == local(2026, 3, 2, 15, 0)
    assert "flag:moon-overdue" in now


def test_an_alarm_on_an_overdue_task_ends_with_the_task_whatever_else_the_rule_reads(
        runtime_factory, tmp_path):
    """The engine's guarantee, not the ruleset's care: an alarm that reads only
    overdue_task_types ends in the evaluation that withdraws the task it reads."""
    folder = tmp_path / "rulesets"
    shutil.copytree(RULESETS / "reference", folder / "reference")
    rules = [{"id": "x", "title": "x", "citation": "test",
              "when": {"fact": "care_status", "equals": "observation"},
              "then": [{"task": {"type": "x", "title": "x", "queue": "case_manager",
                                 "due": {"after": "fired", "hours": 1}}}]},
             {"id": "x-late", "title": "x late", "citation": "test",
              "when": {"fact": "overdue_task_types", "contains": "x"},
              "then": [{"flag": {"code": "x-late", "text": "x is late"}}]}]
    (folder / "alarm.yaml").write_text(yaml.safe_dump(
        {"name": "alarm", "version": "1", "owner": "test", "rules": rules}))
    clock = FixedClock(T0)
    rt = runtime_factory(clock=clock, rulesets=str(folder))
    rt.intake.hl7(stay("A04", hl7_time(T0), patient_class="O", patient_type="OBS",
                       admit_time=hl7_time(T0)))
    advance(rt.intake, clock, T0 + timedelta(hours=2))
    assert "flag:x-late" in outputs(rt)

    rt.intake.hl7(stay("A06", hl7_time(T0 + timedelta(hours=2)), patient_class="I"))

    assert not {"task:x", "flag:x-late"} & set(outputs(rt))


def test_an_evaluation_that_settles_in_one_round_stays_one_round(runtime_factory):
    """The common case costs one matching: a message that changes no task reads no task."""
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock)
    rt.intake.hl7(stay("A01", "202603021015", plan="MCR001"))
    book = rt.rules.current
    calls: list[int] = []
    match = book.matcher.match

    def counted(*args, **kwargs):
        calls.append(1)
        return match(*args, **kwargs)

    book.matcher.match = counted  # type: ignore[method-assign]
    try:
        rt.intake.hl7(stay("A08", "202603021100", plan="MCR001"))
    finally:
        book.matcher.match = match  # type: ignore[method-assign]
    assert len(calls) == 1


# -- Every fact that moves with the clock is scheduled --------------------------------------

TIME_BASED = [f.name for f in CATALOGUE if f.varies]


@dataclass
class Case:
    """A stay in which `fact` moves, and the instant the clock must see it cross `rises`."""

    messages: Callable[[], list[tuple[datetime, bytes]]]
    rises: dict[str, Any]  # the condition on the fact that becomes true at `expected`
    expected: datetime
    rules: list[dict[str, Any]] = field(default_factory=list)  # other rules the case needs
    after: Callable[[Any, FixedClock], None] | None = None  # what people do meanwhile


T0 = local(2026, 3, 2, 8, 0)  # a Monday


def _msg(trigger: str, when: datetime, **kw) -> tuple[datetime, bytes]:
    return when, stay(trigger, hl7_time(when), **kw)


def _admit(**kw) -> Callable[[], list[tuple[datetime, bytes]]]:
    return lambda: [_msg("A01", T0, admit_time=hl7_time(T0), **kw)]


def _observe() -> list[tuple[datetime, bytes]]:
    return [_msg("A04", T0, patient_class="O", patient_type="OBS", admit_time=hl7_time(T0))]


def _emergency() -> list[tuple[datetime, bytes]]:
    return [_msg("A04", T0, patient_class="E", admit_time=hl7_time(T0))]


def _discharged(day: datetime) -> Callable[[], list[tuple[datetime, bytes]]]:
    return lambda: [_msg("A01", day, admit_time=hl7_time(day)),
                    _msg("A03", day + timedelta(hours=2), admit_time=hl7_time(day),
                         discharge_time=hl7_time(day + timedelta(hours=2)), disposition="01")]


def _with_labs() -> list[tuple[datetime, bytes]]:
    return [*_admit()(), (T0 + timedelta(hours=1),
                          oru(hl7_time(T0 + timedelta(hours=1)), "718-7|13.5|g/dL",
                              "2951-2|140|mmol/L", visit=VISIT, mrn=MRN))]


IM_TASK = {"id": "im", "title": "IM", "citation": "test",
           "when": {"fact": "care_status", "equals": "inpatient"},
           "then": [{"task": {"type": "im-notice", "title": "Deliver the IM",
                              "due": {"after": "fired", "hours": 3},
                              "queue": "case_manager"}}]}


def _deliver_im(rt, clock: FixedClock) -> None:
    """The case manager delivers the IM at 09:00 on the day of admission."""
    advance(rt.intake, clock, T0 + timedelta(hours=1))
    with rt.sessions() as s, s.begin():
        task = s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).one()
        task.status, task.ended_at = "completed", clock.instant
        s.flush()
        evaluate(s, rt.rules.current, s.get(Encounter, task.encounter_id), clock.instant)


UR_NURSE = Principal(name="ur.fischer", kind="user", role="ur_nurse")
CASE_MANAGER = Principal(name="cm.alvarez", kind="user", role="case_manager")


def _record(write: Callable[[Any, Encounter, datetime], None]) -> Callable[[Any, FixedClock],
                                                                            None]:
    """At 09:00 on the day of admission a person writes the stay's UR record through the
    services, and the stay is re-evaluated, as the record pages do."""
    def after(rt, clock: FixedClock) -> None:
        advance(rt.intake, clock, T0 + timedelta(hours=1))
        with rt.sessions() as s, s.begin():
            enc_id = s.scalars(select(Encounter.id).where(Encounter.visit_number == VISIT)).one()
            enc = locked(s, enc_id)
            write(rt, enc, clock.instant)
            s.flush()
            evaluate(s, rt.rules.current, enc, clock.instant)
    return after


def _barrier(rt, enc: Encounter, now: datetime) -> None:
    barriers.open_barrier(object_session(enc), enc, BarrierInput(reason_code="PA01"),
                          CASE_MANAGER, now, rt.site, rt.rules.current.book.reference)


def _avoidable_today(rt, enc: Encounter, now: datetime) -> None:
    avoidable_days.record(object_session(enc), enc,
                          AvoidableDayInput(first_day=date(2026, 3, 2), reason_code="PA01"),
                          UR_NURSE, now, rt.site, rt.rules.current.book.reference)


def _review(next_on: date | None = None) -> Callable[[Any, Encounter, datetime], None]:
    def write(rt, enc: Encounter, now: datetime) -> None:
        reviews.record(object_session(enc), enc, ReviewInput(
            review_type="initial", reviewed_on=date(2026, 3, 2), level_of_care="inpatient",
            criteria_result="met", next_review_on=next_on), UR_NURSE, now, rt.site)
    return write


def _authorization(**kw) -> Callable[[Any, Encounter, datetime], None]:
    def write(rt, enc: Encounter, now: datetime) -> None:
        authorizations.record(object_session(enc), enc, AuthorizationInput(**kw), UR_NURSE,
                              now, rt.site)
    return write


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=CHICAGO) + SECOND


CASES: dict[str, Case] = {
    "hours_since_admission": Case(_admit(), {"greater_than": 30},
                                  T0 + timedelta(hours=30) + SECOND),
    "hours_in_emergency": Case(_emergency, {"at_least": 5}, T0 + timedelta(hours=5)),
    "hours_in_observation": Case(_observe, {"greater_than": 30},
                                 T0 + timedelta(hours=30) + SECOND),
    "hours_in_inpatient": Case(_admit(), {"at_least": 50}, T0 + timedelta(hours=50)),
    "hours_in_icu": Case(_admit(location="ICU^101^A^GENHOSP"), {"at_least": 10},
                         T0 + timedelta(hours=10)),
    "hours_since_discharge": Case(_discharged(T0), {"greater_than": 20},
                                  T0 + timedelta(hours=22) + SECOND),
    "hours_since_pending_discharge": Case(
        lambda: [*_admit()(), _msg("A16", T0 + timedelta(hours=1))], {"at_least": 6},
        T0 + timedelta(hours=7)),
    "midnights_in_emergency": Case(_emergency, {"at_least": 1}, _midnight(date(2026, 3, 3))),
    "midnights_in_observation": Case(_observe, {"at_least": 2}, _midnight(date(2026, 3, 4))),
    "midnights_in_inpatient": Case(_admit(), {"at_least": 1}, _midnight(date(2026, 3, 3))),
    "midnights_in_hospital": Case(_observe, {"at_least": 1}, _midnight(date(2026, 3, 3))),
    "los_days": Case(_admit(), {"at_least": 2}, _midnight(date(2026, 3, 4))),
    # The expected discharge is Thursday: one day to go from Wednesday.
    "days_until_expected_discharge": Case(_admit(expected_discharge="20260305"),
                                          {"at_most": 1}, _midnight(date(2026, 3, 4))),
    # Expected Tuesday and still here on Wednesday: the expected stay grows to 2 days.
    "expected_inpatient_days": Case(_admit(expected_discharge="20260303"), {"at_least": 2},
                                    _midnight(date(2026, 3, 4))),
    "expected_midnights_in_hospital": Case(_admit(expected_discharge="20260303"),
                                           {"at_least": 2}, _midnight(date(2026, 3, 4))),
    "im_delivered_days_before_discharge": Case(
        _admit(expected_discharge="20260303"), {"at_least": 2}, _midnight(date(2026, 3, 4)),
        rules=[IM_TASK], after=_deliver_im),
    # Discharged on a Friday: the first business day after it is Monday.
    "business_days_since_discharge": Case(_discharged(local(2026, 3, 6, 8, 0)),
                                          {"at_least": 1}, _midnight(date(2026, 3, 9))),
    # MS-DRG 065: GMLOS 2.8 days, exceeded at the third inpatient midnight.
    "excess_days": Case(_admit(extra=["DRG|065^INTRACRANIAL HEMORRHAGE^MS-DRG"]),
                        {"greater_than": 0}, _midnight(date(2026, 3, 5))),
    # An acute admission scores A=3; L reaches 2 points on the second day.
    "lace_score": Case(_admit(), {"at_least": 5}, _midnight(date(2026, 3, 4))),
    "lace_l": Case(_admit(), {"at_least": 2}, _midnight(date(2026, 3, 4))),
    # Normal labs, an acute admission (1 point); 5 days in hospital add 2.
    "hospital_score": Case(_with_labs, {"at_least": 3}, _midnight(date(2026, 3, 7))),
    "hospital_l": Case(_with_labs, {"at_least": 2}, _midnight(date(2026, 3, 7))),
    # The test patient was born on 12 June 1945: 81 at the midnight that starts 12 June 2026.
    "age": Case(lambda: [_msg("A01", local(2026, 6, 10, 8, 0),
                              admit_time="202606100800")],
                {"at_least": 81}, _midnight(date(2026, 6, 12))),
    "overdue_task_types": Case(_admit(), {"contains": "im-notice"},
                               T0 + timedelta(hours=3) + SECOND, rules=[IM_TASK]),
    # The UR record. A barrier opened at 09:00 has been open 24 hours at 09:00 next day.
    "oldest_open_barrier_hours": Case(_admit(), {"greater_than": 24},
                                      T0 + timedelta(hours=25) + SECOND,
                                      after=_record(_barrier)),
    # Monday confirmed avoidable: the streak is 1 once Monday is the latest whole day.
    "avoidable_day_streak": Case(_admit(), {"at_least": 1}, _midnight(date(2026, 3, 3)),
                                 after=_record(_avoidable_today)),
    "days_since_last_review": Case(_admit(), {"at_least": 1}, _midnight(date(2026, 3, 3)),
                                   after=_record(_review())),
    # The nurse set the next review for Thursday: one day to go from Wednesday.
    "days_until_next_review": Case(_admit(), {"at_most": 1}, _midnight(date(2026, 3, 4)),
                                   after=_record(_review(date(2026, 3, 5)))),
    # Approved through Thursday: the day before the last approved day is Wednesday.
    "days_until_approved_through": Case(
        _admit(), {"at_most": 1}, _midnight(date(2026, 3, 4)),
        after=_record(_authorization(status="approved", approved_through=date(2026, 3, 5)))),
    # An appeal to file by Friday: two days to go from Wednesday.
    "days_until_appeal_deadline": Case(
        _admit(), {"at_most": 2}, _midnight(date(2026, 3, 4)),
        after=_record(_authorization(status="denied", denial_reason="not necessary",
                                     appeal_level=1, appeal_deadline=date(2026, 3, 6)))),
}


def test_every_time_based_fact_has_a_case():
    """A fact that moves with time joins this table, or this fails: the clock must be shown
    to see it, not assumed to."""
    assert set(CASES) == set(TIME_BASED)


def _book(folder: Path, fact: str, case: Case) -> Path:
    shutil.copytree(RULESETS / "reference", folder / "reference")
    condition = {"fact": fact, **case.rises}
    rules = [*case.rules,
             {"id": "rises", "title": f"{fact} crossed", "citation": "test",
              "when": condition, "then": [{"flag": {"code": "rises", "text": "crossed"}}]},
             {"id": "falls", "title": f"{fact} not crossed", "citation": "test",
              "when": {"all": [{"fact": fact, "is_set": True}, {"not": condition}]},
              "then": [{"flag": {"code": "falls", "text": "not crossed"}}]}]
    (folder / "clock.yaml").write_text(yaml.safe_dump(
        {"name": "clock", "version": "1", "owner": "test", "rules": rules}, sort_keys=False))
    return folder


@pytest.mark.parametrize("fact", TIME_BASED)
def test_the_clock_sees_each_time_based_fact_cross_its_threshold(runtime_factory, tmp_path,
                                                                  fact):
    """A rule on the fact raises its flag at the boundary, and the rule on its negation
    withdraws its own at the same instant, with only due stays evaluated."""
    case = CASES[fact]
    messages = case.messages()
    clock = FixedClock(messages[0][0])
    rt = runtime_factory(clock=clock, rulesets=str(_book(tmp_path / "rulesets", fact, case)))
    for when, raw in messages:
        advance(rt.intake, clock, when)
        assert rt.intake.hl7(raw).outcome == "accepted"
    if case.after is not None:
        case.after(rt, clock)
    assert "flag:rises" not in outputs(rt)
    assert "flag:falls" in outputs(rt)

    advance(rt.intake, clock, case.expected - SECOND)
    assert "flag:rises" not in outputs(rt)
    advance(rt.intake, clock, case.expected + timedelta(hours=2))

    assert outputs(rt)["flag:rises"].fired_at == case.expected
    assert outputs(rt, status="cancelled")["flag:falls"].ended_at == case.expected


# -- Facts that move with time say so ---------------------------------------------------------

def _stays() -> list[Snapshot]:
    """Snapshots with every time-moving input: running, pending, discharged stays (their
    last event at 14:00 on Tuesday, or the discharge)."""
    admitted = local(2026, 3, 2, 8, 0)
    running = Snapshot(
        birth_date=date(1945, 3, 4), admit_time=admitted, care_status="inpatient",
        payer_class="medicare", working_drg="065", expected_discharge_date=date(2026, 3, 3),
        status_periods=[Period("emergency", admitted, admitted + timedelta(hours=2)),
                        Period("observation", admitted + timedelta(hours=2),
                               admitted + timedelta(hours=30)),
                        Period("inpatient", admitted + timedelta(hours=30), None)],
        open_task_types=["im-notice"],
        open_task_due={"im-notice": admitted + timedelta(hours=40)},
        completed_task_types=["moon-notice"],
        last_completed={"im-notice": admitted, "moon-notice": admitted},
        labs={"hemoglobin": 13.5, "sodium": 140.0},
        barriers=[Barrier("post_acute_placement", "PA01", admitted + timedelta(hours=1))],
        avoidable_days=[AvoidableDays(date(2026, 3, 2), date(2026, 3, 4))],
        reviews=[Review(date(2026, 3, 2), date(2026, 3, 5))],
        authorizations=[Authorization("approved", date(2026, 3, 6)),
                        Authorization("denied", appeal_deadline=date(2026, 3, 9))])
    pending = Snapshot(**{**running.__dict__, "pending_discharge_time": admitted})
    gone = Snapshot(**{**running.__dict__, "status": "finished",
                       "discharge_time": admitted + timedelta(hours=40)})
    return [running, pending, gone]


def test_a_fact_that_changes_with_the_clock_alone_is_declared_to():
    """Derive each stay at many instants with nothing else changing: every fact whose value
    moved is one the catalogue marks as varying (and that derive says is moving there), so
    the scheduler knows to look again when it does."""
    declared = {f.name: f.varies for f in CATALOGUE}
    ref = load_reference(RULESETS / "reference")
    for snap in _stays():
        start = (snap.discharge_time or local(2026, 3, 3, 14, 0)) + timedelta(minutes=30)
        instants = [start + timedelta(hours=h) for h in range(0, 24 * 9, 5)]
        for a, b in zip(instants, instants[1:], strict=False):
            before, after = derive(snap, a, CHICAGO, ref), derive(snap, b, CHICAGO, ref)
            midnight = a.astimezone(CHICAGO).date() != b.astimezone(CHICAGO).date()
            due = any(a < d <= b for d in snap.open_task_due.values())
            for name in declared:
                if before.values.get(name) == after.values.get(name):
                    continue
                kind = declared[name]
                assert kind, f"{name} changed from {a} to {b} but is not marked as varying"
                if kind == "hourly":
                    assert name in before.hourly, f"{name} moved but was not hourly at {a}"
                elif kind == "daily" and name in before.changes_at:
                    assert a < before.changes_at[name] <= b, (name, a, b)
                elif kind == "daily":
                    assert midnight and name in before.daily, (name, a, b)
                else:
                    assert due, (name, a, b)


def test_facts_read_from_the_stays_own_tasks_are_the_ones_the_fixpoint_watches():
    """A fact computed from the stay's tasks changes when reconciling changes them: it must
    be in FROM_OUTPUTS, or an output resting on it could go stale within an evaluation."""
    snap = _stays()[0]
    now = local(2026, 3, 2, 9, 0)
    bare = Snapshot(**{**snap.__dict__, "open_task_types": [], "open_task_due": {},
                       "completed_task_types": [], "last_completed": {}})
    a, b = derive(snap, now, CHICAGO, Reference()), derive(bare, now, CHICAGO, Reference())
    moved = {n for n in {*a.values, *b.values} if a.values.get(n) != b.values.get(n)}
    assert moved and moved <= FROM_OUTPUTS
    alone = task_facts(snap, now, CHICAGO)  # what the fixpoint compares, without derive
    assert set(alone) == FROM_OUTPUTS and all(alone[n] == a.values[n] for n in alone)


def test_what_a_round_raised_and_the_next_withdrew_is_never_stored(runtime_factory, tmp_path,
                                                                   caplog):
    """Task b is raised only while task a is not open: the first round raises both, the
    second withdraws b, and b was never stored, so no one sees work raised and cancelled
    in the same second. A ruleset defect, task c raised only while c itself is not open,
    never settles: the evaluation stops after MAX_ROUNDS with an error in the log, and of
    all the copies of c only the last round's is stored."""
    folder = tmp_path / "rulesets"
    shutil.copytree(RULESETS / "reference", folder / "reference")

    def rule(code: str, when: dict[str, Any]) -> dict[str, Any]:
        return {"id": code, "title": code, "citation": "test", "when": when,
                "then": [{"task": {"type": code, "title": code, "queue": "case_manager",
                                   "due": {"after": "fired", "hours": 24}}}]}

    def not_open(code: str) -> dict[str, Any]:
        return {"all": [{"fact": "open_task_types", "is_set": True},
                        {"not": {"fact": "open_task_types", "contains": code}}]}

    rules = [rule("a", {"fact": "care_status", "equals": "inpatient"}),
             rule("b", not_open("a")), rule("c", not_open("c"))]
    (folder / "loop.yaml").write_text(yaml.safe_dump(
        {"name": "loop", "version": "1", "owner": "test", "rules": rules}))
    clock = FixedClock(T0)
    rt = runtime_factory(clock=clock, rulesets=str(folder))
    rt.intake.hl7(stay("A01", hl7_time(T0), admit_time=hl7_time(T0)))

    assert "did not settle in 5 rounds" in caplog.text
    with rt.readers() as s:
        rows = s.scalars(select(RuleOutput).order_by(RuleOutput.id)).all()
    assert [(r.code, r.status) for r in rows] == [("a", "active"), ("c", "active")]
