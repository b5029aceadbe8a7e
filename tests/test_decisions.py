"""A case manager's decline is a decision that sticks: declining the discharge-home or the
long-term acute care proposal with a coded reason withdraws it and the plan is ranked again
without it; declining "Confirm the discharge plan" closes the task as `rejected`. Either way
the rule does not raise that work again for the stay until a fact the decision rests on
changes (care status, the diagnoses the rule matched); a transfer, a new lab or time passing
is not such a change. SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt, oru
from engine.planning import evaluation
from engine.planning.tick import tick
from engine.storage.models import Decision, RuleOutput, TaskEvent
from engine.work import lifecycle, proposals
from engine.work.lifecycle import Forbidden, Refused
from tests.conftest import ROOT

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=CHICAGO)
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")
PLAN_TASK = "confirm-discharge-plan"
RESP_FAILURE = "DG1|1||J96.00^Acute respiratory failure^I10||20260301|A"
RESP_FAILURE_HYPOXIC = "DG1|2||J96.01^Acute respiratory failure with hypoxia^I10||20260303|A"
DIABETES = "DG1|3||E11.9^Type 2 diabetes mellitus^I10||20260303|A"


def rows(session, code: str, kind: str = "task") -> list[RuleOutput]:
    return list(session.scalars(select(RuleOutput).where(
        RuleOutput.code == code, RuleOutput.kind == kind).order_by(RuleOutput.id)))


def active(session, code: str, kind: str = "task") -> list[RuleOutput]:
    return [r for r in rows(session, code, kind) if r.status == "active"]


def decline_proposal(rt, code: str, now: datetime, reason_code: str = "patient-declined",
                     reason: str | None = "going to her daughter's in another state",
                     actor: Principal = ALVAREZ):
    with rt.sessions() as s, s.begin():
        proposal = proposals.load(s, active(s, code, "proposal")[0].id)
        proposals.decline(s, proposal, actor, now=now, reason_code=reason_code, reason=reason,
                          by_display="Maria Alvarez, RN", staffing=rt.staffing)
        evaluation.after_work(s, rt.rules.current, proposal, now)
        return proposal.id


def decline(rt, code: str, now: datetime, reason_code: str = "not-clinically-appropriate",
            reason: str | None = "lives alone, stairs; PT recommends more support"):
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, active(s, code)[0].id)
        lifecycle.transition(s, row, "decline", ALVAREZ, now=now, reason_code=reason_code,
                             reason=reason, by_display="Maria Alvarez, RN")
        evaluation.after_work(s, rt.rules.current, row, now)
        return row.id


@pytest.fixture
def observed(runtime_factory):
    """A Medicare patient in observation on 4WEST since this morning, nothing pointing past
    home: the rules propose discharge home, the only disposition of the stay's discharge plan,
    and ask the case manager to confirm the plan."""
    rt = runtime_factory(clock=FixedClock(NOW))
    rt.intake.hl7(adt("A04", "202603020800", admit_time="202603020800", patient_class="O",
                      patient_type="OBS"))
    with rt.readers() as s:
        assert len(active(s, PLAN_TASK)) == 1 and len(active(s, "home", "proposal")) == 1
        assert active(s, "home", "proposal")[0].detail["plan"] == "primary"
    return rt


def test_declining_home_withdraws_it_and_asks_no_one_to_confirm_an_empty_plan(observed):
    rt = observed
    proposal = decline_proposal(rt, "home", NOW)
    with rt.readers() as s:
        withdrawn = s.get(RuleOutput, proposal)
        assert withdrawn.status == "cancelled"
        assert withdrawn.end_reason == ("declined by Maria Alvarez, RN: Patient or family "
                                        "declined: going to her daughter's in another state")
        # home was the only disposition: nothing is left to confirm, the plan task goes
        assert active(s, "home", "proposal") == [] and active(s, PLAN_TASK) == []
        (task,) = rows(s, PLAN_TASK)
        assert task.task_status == "cancelled"
        decision = s.scalars(select(Decision)).one()
        assert (decision.rule_id, decision.output_key, decision.kind, decision.by,
                decision.reason_code) == ("propose-home", "propose-home/proposal/home",
                                          "proposal", "cm.alvarez", "patient-declined")
        assert decision.holds_on == {"care_status": "observation", "diagnoses": []}
    # the clock comes round, hours later: still declined, nothing new
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=6), all_open=True)
    with rt.readers() as s:
        assert active(s, "home", "proposal") == [] and len(rows(s, "home", "proposal")) == 1
        assert active(s, PLAN_TASK) == [] and len(rows(s, PLAN_TASK)) == 1


def test_a_transfer_is_not_a_reason_to_ask_again(observed):
    rt = observed
    decline_proposal(rt, "home", NOW)
    rt.intake.hl7(adt("A02", "202603021200", patient_class="O", patient_type="OBS",
                      location="5EAST^501^A^GENHOSP", prior_location="4WEST^412^A^GENHOSP"))
    with rt.readers() as s:
        assert active(s, "home", "proposal") == [] and len(rows(s, "home", "proposal")) == 1
        assert active(s, PLAN_TASK) == [] and len(rows(s, PLAN_TASK)) == 1
        assert s.scalars(select(Decision)).one().lapsed_at is None


def test_admission_as_inpatient_reopens_the_declined_proposal_once(observed):
    rt = observed
    decline_proposal(rt, "home", NOW)
    rt.intake.hl7(adt("A06", "202603021300", patient_class="I"))
    with rt.readers() as s:
        assert len(active(s, "home", "proposal")) == 1
        again = active(s, PLAN_TASK)
        assert len(again) == 1 and again[0].task_status == "ready"
        assert "Primary recommendation: Home with self-care." in again[0].detail["instructions"]
        decision = s.scalars(select(Decision)).one()
        assert decision.lapsed_at is not None and decision.lapsed_because == (
            "changed: care_status")
    # raised once: evaluating again changes nothing
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=3), all_open=True)
    with rt.readers() as s:
        assert len(rows(s, "home", "proposal")) == 2 and len(active(s, "home", "proposal")) == 1
        assert len(rows(s, PLAN_TASK)) == 2 and len(active(s, PLAN_TASK)) == 1
    # she decides again, as an inpatient: a new decision on the new facts, and it holds
    decline_proposal(rt, "home", NOW + timedelta(hours=4), reason_code="duplicate",
                     reason=None)
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=8), all_open=True)
    with rt.readers() as s:
        assert active(s, "home", "proposal") == [] and len(rows(s, "home", "proposal")) == 2
        latest = s.scalars(select(Decision).order_by(Decision.id.desc())).first()
        assert latest.holds_on == {"care_status": "inpatient", "diagnoses": []}
        assert latest.lapsed_at is None


def test_declining_the_plan_task_is_rejected_and_not_raised_again(observed):
    """The task itself declined ("no plan to confirm here"): FHIR `rejected`, and the
    proposal, the rules' recommendation, stays on record."""
    rt = observed
    declined = decline(rt, PLAN_TASK, NOW)
    with rt.readers() as s:
        task = s.get(RuleOutput, declined)
        assert (task.task_status, task.status) == ("rejected", "cancelled")
        assert task.end_reason == ("declined by Maria Alvarez, RN: Not clinically appropriate: "
                                   "lives alone, stairs; PT recommends more support")
        assert active(s, PLAN_TASK) == [] and len(active(s, "home", "proposal")) == 1
        decision = s.scalars(select(Decision)).one()
        assert (decision.rule_id, decision.output_key, decision.by, decision.reason_code) == (
            "confirm-discharge-plan", "confirm-discharge-plan/task/confirm-discharge-plan",
            "cm.alvarez", "not-clinically-appropriate")
        assert decision.holds_on == {"care_status": "observation", "diagnoses": []}
        steps = [(e.action, e.actor, e.to_status, e.text) for e in s.scalars(
            select(TaskEvent).where(TaskEvent.output_id == declined).order_by(TaskEvent.id))]
    assert steps[-1] == ("declined", "cm.alvarez", "rejected", "Not clinically appropriate: "
                         "lives alone, stairs; PT recommends more support")
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=6), all_open=True)
    rt.intake.hl7(adt("A02", "202603021200", patient_class="O", patient_type="OBS",
                      location="5EAST^501^A^GENHOSP", prior_location="4WEST^412^A^GENHOSP"))
    with rt.readers() as s:
        assert active(s, PLAN_TASK) == [] and len(rows(s, PLAN_TASK)) == 1
    # admitted as an inpatient: the plan is to be confirmed again, once
    rt.intake.hl7(adt("A06", "202603021300", patient_class="I"))
    with rt.readers() as s:
        assert len(active(s, PLAN_TASK)) == 1 and len(rows(s, PLAN_TASK)) == 2


def test_a_decline_needs_a_coded_reason_and_other_needs_words(observed):
    rt = observed
    with rt.sessions() as s, s.begin():
        row = active(s, PLAN_TASK)[0]
        with pytest.raises(Refused, match="needs a reason: one of not-clinically-appropriate"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW)
        with pytest.raises(Refused, match="unknown decline reason 'nope'"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW, reason_code="nope")
        with pytest.raises(Refused, match="in words"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW, reason_code="other")
        assert (row.task_status, row.version) == ("ready", 1)
        proposal = active(s, "home", "proposal")[0]
        with pytest.raises(Refused, match="needs a reason"):
            proposals.decline(s, proposal, ALVAREZ, now=NOW, reason_code=None)
        assert (proposal.status, proposal.version) == ("active", 1)
        s.rollback()


def test_a_failed_attempt_is_not_a_decision_the_work_stays_owed(observed):
    rt = observed
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, active(s, PLAN_TASK)[0].id)
        lifecycle.transition(s, row, "fail", ALVAREZ, now=NOW, reason="family not reachable")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        assert s.get(RuleOutput, row.id).task_status == "failed"
        assert len(active(s, PLAN_TASK)) == 1  # still owed: raised again
        assert s.scalars(select(Decision)).all() == []


def test_only_a_role_that_works_the_case_manager_queue_declines_a_proposal(observed):
    """As the plan task's own decline is: a UR nurse may not decline a disposition."""
    rt = observed
    nurse = Principal(name="ur.chen", kind="user", role="ur_nurse")
    with pytest.raises(Forbidden, match="work for a case manager; a UR nurse may not decline"):
        decline_proposal(rt, "home", NOW, actor=nurse)
    with rt.readers() as s:
        assert len(active(s, "home", "proposal")) == 1 and s.scalars(select(Decision)).all() == []
    with rt.sessions() as s, s.begin():
        task = lifecycle.load(s, active(s, PLAN_TASK)[0].id)
        with pytest.raises(Forbidden, match="a UR nurse may not decline"):
            lifecycle.transition(s, task, "decline", nurse, now=NOW,
                                 reason_code="duplicate", staffing=rt.staffing)
        s.rollback()
    supervisor = Principal(name="sup.okafor", kind="user", role="supervisor")
    decline_proposal(rt, "home", NOW, actor=supervisor)
    with rt.readers() as s:
        assert active(s, "home", "proposal") == []


@pytest.fixture
def ventilated(runtime_factory):
    """A Medicare inpatient with acute respiratory failure, in the ICU four days (3 ICU days
    or more, 42 CFR 412.522(b)): the plan's primary recommendation is long-term acute care."""
    start = NOW - timedelta(days=4)
    rt = runtime_factory(clock=FixedClock(NOW))
    stamp = start.strftime("%Y%m%d%H%M")
    rt.intake.hl7(adt("A01", stamp, admit_time=stamp, location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE]))
    tick(rt.sessions, rt.rules.current, NOW, all_open=True)
    with rt.readers() as s:
        assert len(active(s, "ltach", "proposal")) == 1, [
            r.code for r in s.scalars(select(RuleOutput))]
        (task,) = active(s, PLAN_TASK)
        assert task.detail["discharge_plan"]["primary"] == "ltach"
    return rt


def test_declined_ltach_holds_as_hours_pass_and_reopens_on_a_new_matching_diagnosis(
        ventilated):
    rt = ventilated
    decline_proposal(rt, "ltach", NOW, reason_code="not-clinically-appropriate",
                     reason="extubated today, weaning not needed")
    tick(rt.sessions, rt.rules.current, NOW + timedelta(days=1), all_open=True)
    with rt.readers() as s:
        assert active(s, "ltach", "proposal") == []
        # no setting past home is proposed now: home is the default again, the plan to confirm
        assert len(active(s, "home", "proposal")) == 1
        (task,) = active(s, PLAN_TASK)
        assert task.detail["discharge_plan"]["primary"] == "home"
        assert task.detail["discharge_plan"]["alternatives"] == []
        assert "Long-term acute care" not in task.detail["instructions"]
        assert s.scalars(select(Decision)).one().holds_on == {
            "care_status": "inpatient", "diagnoses": ["J96.00"]}
    # a new lab and a diagnosis the rule does not read: not material, still declined
    soon = NOW + timedelta(hours=20)
    rt.intake.hl7(oru(soon.strftime("%Y%m%d%H%M"), "718-7|9.8|g/dL"))
    rt.intake.hl7(adt("A08", soon.strftime("%Y%m%d%H%M"), location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE, DIABETES]))
    with rt.readers() as s:
        assert active(s, "ltach", "proposal") == []
        assert s.scalars(select(Decision)).one().lapsed_at is None
    # the team documents hypoxic respiratory failure: the rule now fires on a new code
    later = NOW + timedelta(days=1, hours=1)
    rt.intake.hl7(adt("A08", later.strftime("%Y%m%d%H%M"), location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE, RESP_FAILURE_HYPOXIC]))
    with rt.readers() as s:
        assert len(active(s, "ltach", "proposal")) == 1 and len(rows(s, "ltach", "proposal")) == 2
        assert active(s, "home", "proposal") == []
        (task,) = active(s, PLAN_TASK)
        assert task.detail["discharge_plan"]["primary"] == "ltach"
        assert s.scalars(select(Decision)).one().lapsed_because == "changed: diagnoses"


def test_a_decline_in_words_alone_sticks_too(observed):
    """As measured before decisions: a decline with a reason raised a fresh Ready copy in the
    same second, and the task said `failed`. Words alone are the reason "other"."""
    rt = observed
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, active(s, PLAN_TASK)[0].id)
        lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW,
                             reason="home with daughter already arranged")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        assert s.get(RuleOutput, row.id).task_status == "rejected"
        assert active(s, PLAN_TASK) == []


# A rule that says its decisions rest on the payer alone (`reconsider_when`).
PAYER_RULE = """\
name: decision_tests
version: "test-1"
owner: tests
description: A decision that rests on the payer only.
rules:
  - id: payer-authorization
    title: Authorization from the payer
    citation: hospital UR plan (test content)
    reconsider_when: [payer_class]
    when:
      all:
        - {fact: encounter_status, in: [in-progress, onleave]}
        - {fact: care_status, in: [observation, inpatient]}
    then:
      - task:
          type: payer-authorization
          title: Request the payer's authorization
          due: {after: fired, hours: 8}
          queue: case_manager
"""


def test_a_rule_names_the_facts_its_decisions_rest_on(runtime_factory, tmp_path):
    folder = tmp_path / "rulesets"
    shutil.copytree(ROOT / "rulesets", folder)
    (folder / "decision_tests.yaml").write_text(PAYER_RULE)
    rt = runtime_factory(clock=FixedClock(NOW), rulesets=folder)
    rt.intake.hl7(adt("A04", "202603020800", admit_time="202603020800", patient_class="O",
                      patient_type="OBS"))
    decline(rt, "payer-authorization", NOW, reason_code="already-done-elsewhere",
            reason="patient access obtained it at registration")
    with rt.readers() as s:
        assert s.scalars(select(Decision)).one().holds_on == {"payer_class": "medicare"}
    # admitted as an inpatient: not a fact this decision rests on
    rt.intake.hl7(adt("A06", "202603021300", patient_class="I"))
    with rt.readers() as s:
        assert active(s, "payer-authorization") == []
    # the insurance changes to a commercial plan: the authorization is asked for again
    rt.intake.hl7(adt("A08", "202603021400", patient_class="I", plan="COM300"))
    with rt.readers() as s:
        assert len(active(s, "payer-authorization")) == 1
        assert s.scalars(select(Decision)).one().lapsed_because == "changed: payer_class"

