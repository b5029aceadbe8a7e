"""The task lifecycle as a case manager lives it: pick up, work, note, complete or decline;
closed work stays closed, and every step is in the history."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.planning import evaluation
from engine.storage.models import RuleOutput
from engine.work import lifecycle
from engine.work.history import history
from engine.work.lifecycle import STATUSES, TRANSITIONS, Conflict, Forbidden, Refused

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=CHICAGO)
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")
GARCIA = Principal(name="sup.garcia", kind="user", role="supervisor")
INFORMATICIST = Principal(name="info.ito", kind="user", role="informaticist")


@pytest.fixture
def rt(runtime_factory):
    """A Medicare inpatient on 4WEST: the IM and the initial UR review are owed."""
    runtime = runtime_factory(clock=FixedClock(NOW))
    runtime.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan="MCR001"))
    return runtime


def task(session, code: str = "im-notice", status: str = "active") -> RuleOutput:
    return session.scalars(select(RuleOutput).where(
        RuleOutput.code == code, RuleOutput.status == status).order_by(RuleOutput.id)).first()


def texts(target: str) -> dict[str, str]:
    if target == "completed":
        return {"outcome": "IM delivered and signed"}
    if target in ("cancelled", "failed"):
        return {"reason": "patient transferred out"}
    if target == "rejected":
        return {"reason_code": "duplicate"}
    return {}


def test_every_transition_in_the_table_is_allowed_and_every_other_refused(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        for source in STATUSES:
            for target in STATUSES:
                row.task_status, row.status, row.version = source, "active", 1
                if target in TRANSITIONS[source]:
                    lifecycle.transition(s, row, target, ALVAREZ, now=NOW, **texts(target))
                    assert row.task_status == target and row.version == 2, (source, target)
                else:
                    with pytest.raises(Refused):
                        lifecycle.transition(s, row, target, ALVAREZ, now=NOW, **texts(target))
                    assert row.task_status == source and row.version == 1, (source, target)
        s.rollback()


def test_the_table_is_what_the_docstring_promises():
    assert TRANSITIONS == {
        "ready": ("in-progress", "on-hold", "completed", "cancelled", "failed", "rejected"),
        "in-progress": ("completed", "failed", "on-hold", "cancelled", "rejected"),
        "on-hold": ("ready", "in-progress", "cancelled", "rejected"),
        "completed": (), "cancelled": (), "failed": (), "rejected": (),
    }
    assert lifecycle.allowed(None) == TRANSITIONS["ready"]  # rows raised before the lifecycle


def test_new_task_is_ready_owned_and_its_creation_is_history(rt):
    with rt.readers() as s:
        row = task(s)
        assert (row.task_status, row.owner) == ("ready", "cm.alvarez")
        steps = history(s, row.id)
    assert [(e.action, e.actor, e.to_status) for e in steps] == [("created", "engine", "ready")]


def test_case_manager_starts_notes_and_completes_the_im(rt):
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, task(s).id)
        lifecycle.transition(s, row, "start", ALVAREZ, now=NOW, expected_version=1)
        lifecycle.add_note(s, row, "Daughter will be present at 14:00", ALVAREZ, now=NOW)
        lifecycle.transition(s, row, "complete", ALVAREZ, now=NOW, outcome="IM signed")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        done = s.get(RuleOutput, row.id)
        assert (done.task_status, done.status, done.outcome) == ("completed", "completed",
                                                                 "IM signed")
        assert done.version == 4 and done.started_at is not None and done.ended_at is not None
        steps = [(e.action, e.actor, e.from_status, e.to_status, e.text)
                 for e in history(s, row.id)]
        # completed work is never raised again by the re-evaluation
        assert s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).all() == [done]
    assert steps == [
        ("created", "engine", None, "ready", None),
        ("started", "cm.alvarez", "ready", "in-progress", None),
        ("note", "cm.alvarez", None, None, "Daughter will be present at 14:00"),
        ("completed", "cm.alvarez", "in-progress", "completed", "IM signed"),
    ]


def test_completion_needs_an_outcome_and_a_decline_a_reason(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        with pytest.raises(Refused, match="outcome"):
            lifecycle.transition(s, row, "completed", ALVAREZ, now=NOW, outcome="  ")
        with pytest.raises(Refused, match="reason"):
            lifecycle.transition(s, row, "decline", ALVAREZ, now=NOW)
        with pytest.raises(Refused, match="reason"):
            lifecycle.transition(s, row, "cancelled", ALVAREZ, now=NOW)
        with pytest.raises(Refused, match="unknown task status"):
            lifecycle.transition(s, row, "archived", ALVAREZ, now=NOW)
        with pytest.raises(Refused, match="needs text"):
            lifecycle.add_note(s, row, " ", ALVAREZ, now=NOW)
        assert (row.task_status, row.version) == ("ready", 1)


def test_failed_work_is_closed_with_the_reason_and_raised_again_while_owed(rt):
    # a failed attempt is not a decision (a decline is: tests/test_decisions.py)
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, task(s).id)
        lifecycle.transition(s, row, "fail", ALVAREZ, now=NOW,
                             reason="patient unable to sign, no representative yet")
        evaluation.after_work(s, rt.rules.current, row, NOW)
    with rt.readers() as s:
        closed = s.get(RuleOutput, row.id)
        assert (closed.task_status, closed.status) == ("failed", "cancelled")
        assert closed.end_reason == ("failed by cm.alvarez: patient unable to sign, "
                                     "no representative yet")
        again = task(s)  # the IM is still owed: the rules raise it as new work
        assert again.id != row.id and again.task_status == "ready"


def test_a_stale_version_is_a_conflict_and_changes_nothing(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        with pytest.raises(Conflict):
            lifecycle.transition(s, row, "start", ALVAREZ, now=NOW, expected_version=7)
        with pytest.raises(Conflict):
            lifecycle.add_note(s, row, "x", ALVAREZ, now=NOW, expected_version=2)
        assert (row.task_status, row.version) == ("ready", 1)


def test_only_supervisors_reassign_and_only_workers_work(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        with pytest.raises(Forbidden):
            lifecycle.reassign(s, row, "cm.baker", ALVAREZ, now=NOW)
        with pytest.raises(Forbidden):
            lifecycle.transition(s, row, "start", INFORMATICIST, now=NOW)
        lifecycle.reassign(s, row, "cm.baker", GARCIA, now=NOW, reason="covering 4WEST")
        assert (row.owner, row.version) == ("cm.baker", 2)
        lifecycle.transition(s, row, "complete", "ehr-interface", now=NOW, outcome="done")
        with pytest.raises(Refused, match="closed work"):
            lifecycle.reassign(s, row, "cm.alvarez", GARCIA, now=NOW)
        steps = [(e.action, e.actor, e.detail) for e in history(s, row.id)][1:]
    assert steps == [("assigned", "sup.garcia", {"from": "cm.alvarez", "to": "cm.baker"}),
                     ("completed", "ehr-interface", None)]


def test_starting_a_queue_task_claims_it(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        lifecycle.reassign(s, row, None, GARCIA, now=NOW)
        assert row.owner is None
        lifecycle.transition(s, row, "in-progress", ALVAREZ, now=NOW)
        assert row.owner == "cm.alvarez"
        assert history(s, row.id)[-1].detail == {"claimed": True}


def test_a_hold_keeps_its_reason_until_work_resumes(rt):
    with rt.sessions() as s, s.begin():
        row = task(s)
        lifecycle.transition(s, row, "hold", ALVAREZ, now=NOW, reason="waiting for family")
        assert (row.task_status, row.outcome) == ("on-hold", "waiting for family")
        lifecycle.transition(s, row, "resume", ALVAREZ, now=NOW)
        assert (row.task_status, row.outcome, row.status) == ("in-progress", None, "active")


def test_rules_withdrawing_a_task_cancel_it_in_the_history(rt):
    rt.intake.hl7(adt("A11", "202603021100"))
    with rt.readers() as s:
        row = task(s, status="cancelled")
        assert row.task_status == "cancelled"
        last = history(s, row.id)[-1]
    assert (last.action, last.actor, last.from_status, last.text) == (
        "cancelled", "engine", "ready", "encounter cancelled")
