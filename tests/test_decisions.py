"""A case manager's decline is a decision that sticks: declining "Confirm discharge home" or
"Confirm long-term acute care plan" with a coded reason closes the task as `rejected`,
withdraws the proposal, and the rule does not raise that work again for the stay until a
fact the decision rests on changes (care status, the diagnoses the rule matched); a transfer,
a new lab or time passing is not such a change. SQLite and PostgreSQL."""

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
from engine.work.lifecycle import Refused
from tests.conftest import ROOT

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=CHICAGO)
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")
HOME_TASK = "confirm-transition-home"
RESP_FAILURE = "DG1|1||J96.00^Acute respiratory failure^I10||20260301|A"
RESP_FAILURE_HYPOXIC = "DG1|2||J96.01^Acute respiratory failure with hypoxia^I10||20260303|A"
LTACH_TASK = "confirm-transition-ltach"
DIABETES = "DG1|3||E11.9^Type 2 diabetes mellitus^I10||20260303|A"


def rows(session, code: str, kind: str = "task") -> list[RuleOutput]:
    return list(session.scalars(select(RuleOutput).where(
        RuleOutput.code == code, RuleOutput.kind == kind).order_by(RuleOutput.id)))


def active(session, code: str, kind: str = "task") -> list[RuleOutput]:
    return [r for r in rows(session, code, kind) if r.status == "active"]


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
    home: the rules propose discharge home and ask the case manager to confirm it."""
    rt = runtime_factory(clock=FixedClock(NOW))
    rt.intake.hl7(adt("A04", "202603020800", admit_time="202603020800", patient_class="O",
                      patient_type="OBS"))
    with rt.readers() as s:
        assert len(active(s, HOME_TASK)) == 1 and len(active(s, "home", "proposal")) == 1
    return rt


def test_declined_discharge_home_is_rejected_and_not_raised_again(observed):
    rt = observed
    declined = decline(rt, HOME_TASK, NOW)
    with rt.readers() as s:
        task = s.get(RuleOutput, declined)
        assert (task.task_status, task.status) == ("rejected", "cancelled")
        assert task.end_reason == ("declined by Maria Alvarez, RN: Not clinically appropriate: "
                                   "lives alone, stairs; PT recommends more support")
        # no fresh Ready copy, and the proposal it confirmed is withdrawn with the reason
        assert active(s, HOME_TASK) == [] and active(s, "home", "proposal") == []
        (proposal,) = rows(s, "home", "proposal")
        assert proposal.end_reason.startswith("declined by Maria Alvarez, RN: ")
        decision = s.scalars(select(Decision)).one()
        assert (decision.rule_id, decision.output_key, decision.by, decision.reason_code) == (
            "propose-home", "propose-home/task/confirm-transition-home", "cm.alvarez",
            "not-clinically-appropriate")
        assert decision.holds_on == {"care_status": "observation", "diagnoses": []}
        steps = [(e.action, e.actor, e.to_status, e.text) for e in s.scalars(
            select(TaskEvent).where(TaskEvent.output_id == declined).order_by(TaskEvent.id))]
    assert steps[-1] == ("declined", "cm.alvarez", "rejected", "Not clinically appropriate: "
                         "lives alone, stairs; PT recommends more support")
    # the clock comes round, hours later: still declined, nothing new
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=6), all_open=True)
    with rt.readers() as s:
        assert active(s, HOME_TASK) == [] and len(rows(s, HOME_TASK)) == 1


def test_a_transfer_is_not_a_reason_to_ask_again(observed):
    rt = observed
    decline(rt, HOME_TASK, NOW)
    rt.intake.hl7(adt("A02", "202603021200", patient_class="O", patient_type="OBS",
                      location="5EAST^501^A^GENHOSP", prior_location="4WEST^412^A^GENHOSP"))
    with rt.readers() as s:
        assert active(s, HOME_TASK) == [] and len(rows(s, HOME_TASK)) == 1
        assert s.scalars(select(Decision)).one().lapsed_at is None


def test_admission_as_inpatient_reopens_the_decision_once(observed):
    rt = observed
    decline(rt, HOME_TASK, NOW)
    rt.intake.hl7(adt("A06", "202603021300", patient_class="I"))
    with rt.readers() as s:
        again = active(s, HOME_TASK)
        assert len(again) == 1 and again[0].task_status == "ready"
        assert len(active(s, "home", "proposal")) == 1
        decision = s.scalars(select(Decision)).one()
        assert decision.lapsed_at is not None and decision.lapsed_because == (
            "changed: care_status")
    # raised once: evaluating again changes nothing
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=3), all_open=True)
    with rt.readers() as s:
        assert len(rows(s, HOME_TASK)) == 2 and len(active(s, HOME_TASK)) == 1
    # she decides again, as an inpatient: a new decision on the new facts, and it holds
    decline(rt, HOME_TASK, NOW + timedelta(hours=4), reason_code="duplicate", reason=None)
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=8), all_open=True)
    with rt.readers() as s:
        assert active(s, HOME_TASK) == [] and len(rows(s, HOME_TASK)) == 2
        latest = s.scalars(select(Decision).order_by(Decision.id.desc())).first()
        assert latest.holds_on == {"care_status": "inpatient", "diagnoses": []}
        assert latest.lapsed_at is None


def test_a_decline_needs_a_coded_reason_and_other_needs_words(observed):
    rt = observed
    with rt.sessions() as s, s.begin():
        row = active(s, HOME_TASK)[0]
        with pytest.raises(Refused, match="needs a reason: one of not-clinically-appropriate"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW)
        with pytest.raises(Refused, match="unknown decline reason 'nope'"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW, reason_code="nope")
        with pytest.raises(Refused, match="in words"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW, reason_code="other")
        assert (row.task_status, row.version) == ("ready", 1)
        s.rollback()


def test_a_failed_attempt_is_not_a_decision_the_work_stays_owed(observed):
    rt = observed
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, active(s, HOME_TASK)[0].id)
        lifecycle.transition(s, row, "fail", ALVAREZ, now=NOW, reason="family not reachable")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        assert s.get(RuleOutput, row.id).task_status == "failed"
        assert len(active(s, HOME_TASK)) == 1  # still owed: raised again
        assert s.scalars(select(Decision)).all() == []


def test_declining_the_proposal_withdraws_its_confirm_task(observed):
    rt = observed
    with rt.sessions() as s, s.begin():
        proposal = proposals.load(s, active(s, "home", "proposal")[0].id)
        proposals.decline(s, proposal, ALVAREZ, now=NOW, reason_code="patient-declined",
                          reason="going to her daughter's in another state",
                          by_display="Maria Alvarez, RN")
        evaluation.after_work(s, rt.rules.current, proposal, NOW)
    with rt.readers() as s:
        assert active(s, "home", "proposal") == [] and active(s, HOME_TASK) == []
        (task,) = rows(s, HOME_TASK)
        assert task.task_status == "cancelled"
        assert task.end_reason == ("declined by Maria Alvarez, RN: Patient or family declined: "
                                   "going to her daughter's in another state")
    tick(rt.sessions, rt.rules.current, NOW + timedelta(hours=2), all_open=True)
    with rt.readers() as s:
        assert active(s, "home", "proposal") == [] and len(rows(s, "home", "proposal")) == 1


@pytest.fixture
def ventilated(runtime_factory):
    """A Medicare inpatient with acute respiratory failure, in the ICU, four days in: the
    rules propose long-term acute care."""
    start = NOW - timedelta(days=4)
    rt = runtime_factory(clock=FixedClock(NOW))
    stamp = start.strftime("%Y%m%d%H%M")
    rt.intake.hl7(adt("A01", stamp, admit_time=stamp, location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE]))
    with rt.readers() as s:
        assert len(active(s, LTACH_TASK)) == 1, [r.code for r in s.scalars(select(RuleOutput))]
    return rt


def test_declined_ltach_holds_as_hours_pass_and_reopens_on_a_new_matching_diagnosis(
        ventilated):
    rt = ventilated
    decline(rt, LTACH_TASK, NOW, reason_code="not-clinically-appropriate",
            reason="extubated today, weaning not needed")
    tick(rt.sessions, rt.rules.current, NOW + timedelta(days=1), all_open=True)
    with rt.readers() as s:
        assert active(s, LTACH_TASK) == [] and active(s, "ltach", "proposal") == []
        assert s.scalars(select(Decision)).one().holds_on == {
            "care_status": "inpatient", "diagnoses": ["J96.00"]}
    # a new lab and a diagnosis the rule does not read: not material, still declined
    soon = NOW + timedelta(hours=20)
    rt.intake.hl7(oru(soon.strftime("%Y%m%d%H%M"), "718-7|9.8|g/dL"))
    rt.intake.hl7(adt("A08", soon.strftime("%Y%m%d%H%M"), location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE, DIABETES]))
    with rt.readers() as s:
        assert active(s, LTACH_TASK) == [] and s.scalars(select(Decision)).one().lapsed_at is None
    # the team documents hypoxic respiratory failure: the rule now fires on a new code
    later = NOW + timedelta(days=1, hours=1)
    rt.intake.hl7(adt("A08", later.strftime("%Y%m%d%H%M"), location="ICU^1^A^GENHOSP",
                      extra=[RESP_FAILURE, RESP_FAILURE_HYPOXIC]))
    with rt.readers() as s:
        assert len(active(s, LTACH_TASK)) == 1 and len(active(s, "ltach", "proposal")) == 1
        assert s.scalars(select(Decision)).one().lapsed_because == "changed: diagnoses"


def test_a_decline_in_words_alone_sticks_too(observed):
    """As measured before decisions: a decline with a reason raised a fresh Ready copy in the
    same second, and the task said `failed`. Words alone are the reason "other"."""
    rt = observed
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, active(s, HOME_TASK)[0].id)
        lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW,
                             reason="home with daughter already arranged")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        assert s.get(RuleOutput, row.id).task_status == "rejected"
        assert active(s, HOME_TASK) == [] and active(s, "home", "proposal") == []


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
