"""The UR record feeds the rules: clinical stories told through the real path.

Each stay is admitted over HL7 (the real intake), its record is written through the UR
services with the visit locked, and the stay is re-evaluated after each change, as the
record pages and the task forms do. The clock is a FixedClock moved with `advance`, which
stops at every boundary on the way (midnights, due times) as production does. Calendar:
2026-03-02 is a Monday. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import count
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.app import create_app
from engine.api.runtime import Runtime
from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import StoryStep, site_message
from engine.intake.replay import advance
from engine.planning import evaluation
from engine.rules.due import recurring_due
from engine.rules.model import Due
from engine.rules.snapshot import Review, Snapshot
from engine.storage.models import AvoidableDay, Encounter, PayerAuthorization, RuleOutput
from engine.work import lifecycle
from engine.work.ur_record import authorizations, avoidable_days, barriers, reviews
from engine.work.ur_record.inputs import (
    AuthorizationInput,
    AvoidableDayInput,
    BarrierInput,
    ReviewInput,
)
from engine.work.ur_record.stay import locked
from tests.conftest import auth_headers, csrf, sign_in
from tests.ur_record import review_for

CHICAGO = ZoneInfo("America/Chicago")
UR_NURSE = Principal(name="ur.fischer", kind="user", role="ur_nurse")
CASE_MANAGER = Principal(name="cm.alvarez", kind="user", role="case_manager")
_ids = count(1)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)


MONDAY = local(2026, 3, 2, 10, 0)


@dataclass
class Story:
    """One hospital, its clock, and the stays admitted in it (visit numbers of the test's
    own, so a PostgreSQL shared with other runs never holds their locks)."""

    rt: Runtime
    clock: FixedClock
    visits: dict[str, int] = field(default_factory=dict)

    @property
    def site(self):
        return self.rt.site

    @property
    def reference(self):
        return self.rt.rules.current.book.reference

    def send(self, when: datetime, event: str, visit: str, **step) -> None:
        advance(self.rt.intake, self.clock, when)
        raw = site_message(StoryStep(event=event, visit=visit, mrn=f"M{visit}", **step), when,
                           self.site, f"URR{next(_ids):06d}")
        receipt = self.rt.intake.hl7(raw)
        assert receipt.outcome == "accepted", receipt.reason

    def admit(self, visit: str, *, payer: str = "medicare", **step) -> None:
        self.send(MONDAY, "A01", visit, payer=payer, **step)

    def record(self, when: datetime, visit: str,
               write: Callable[[Story, Session, Encounter, datetime], object]) -> None:
        """A person writes the stay's record at `when`; the stay is re-evaluated after."""
        advance(self.rt.intake, self.clock, when)
        with self.rt.sessions() as s, s.begin():
            enc = locked(s, self.encounter_id(s, visit))
            write(self, s, enc, when)
            s.flush()
            evaluation.evaluate(s, self.rt.rules.current, enc, when)

    def at(self, when: datetime) -> None:
        advance(self.rt.intake, self.clock, when)

    def encounter_id(self, s: Session, visit: str) -> int:
        return s.scalars(select(Encounter.id).where(Encounter.visit_number == visit)).one()

    def tasks(self, visit: str, status: str = "active") -> dict[str, RuleOutput]:
        with self.rt.readers() as s:
            rows = s.scalars(select(RuleOutput).join(Encounter).where(
                Encounter.visit_number == visit, RuleOutput.kind == "task",
                RuleOutput.status == status).order_by(RuleOutput.id))
            return {r.code: r for r in rows}

    def days(self, visit: str) -> list[tuple[date, date, str]]:
        with self.rt.readers() as s:
            rows = s.scalars(select(AvoidableDay).join(Encounter).where(
                Encounter.visit_number == visit).order_by(AvoidableDay.first_day))
            return [(d.first_day, d.last_day, d.status) for d in rows]


@pytest.fixture
def story(runtime_factory) -> Story:
    clock = FixedClock(MONDAY)
    return Story(runtime_factory(clock=clock), clock)


def review(on: date, *, next_on: date | None = None, task_id: int | None = None,
           kind: str = "initial"):
    def write(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        reviews.record(s, enc, ReviewInput(
            review_type=kind, reviewed_on=on, level_of_care="inpatient",
            criteria_result="met", criteria_set="InterQual", next_review_on=next_on,
            task_id=task_id), UR_NURSE, now, story.site)
    return write


def approval(through: date):
    def write(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        authorizations.record(s, enc, AuthorizationInput(
            status="approved", reference_number="AUTH-778", approved_through=through,
            decided_at=now), UR_NURSE, now, story.site)
    return write


def open_barrier(reason: str = "PA01"):
    def write(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        barriers.open_barrier(s, enc, BarrierInput(reason_code=reason, owner="cm.alvarez"),
                              CASE_MANAGER, now, story.site, story.reference)
    return write


def resolve(reason: str = "PA01"):
    def write(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        found = [b for b in barriers.of_stay(s, enc.id) if b.reason_code == reason]
        barriers.resolve(s, found[0], CASE_MANAGER, now, resolution="bed found")
    return write


def avoidable(first: date, last: date | None = None):
    def write(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        avoidable_days.record(s, enc, AvoidableDayInput(first_day=first, last_day=last,
                                                        reason_code="PA01"),
                              UR_NURSE, now, story.site, story.reference)
    return write


# -- the next continued-stay review counts from the recorded review ------------------------

def test_the_next_review_is_due_on_the_recorded_reviews_next_review_date(story: Story):
    """Mrs A, Medicare, admitted Monday. On Tuesday at 09:00 the UR nurse documents the
    initial review from its task (criteria met) and completes the task: the continued-stay
    review is due on the review's next review date, the site's Medicare cadence of 3 days
    from Tuesday, at 17:00 (Friday), not 3 days from the moment the task was closed."""
    story.admit("VURR01")
    initial = story.tasks("VURR01")["initial-ur-review"]
    tuesday = local(2026, 3, 3, 9, 0)
    story.at(tuesday)
    with story.rt.sessions() as s, s.begin():
        task = lifecycle.load(s, initial.id)
        assert task is not None
        recorded = review_for(s, task, tuesday, story.site)
        assert recorded.next_review_on == date(2026, 3, 6)
        lifecycle.transition(s, task, "complete", UR_NURSE, now=tuesday,
                             outcome="InterQual met, inpatient", staffing=story.rt.staffing)
        evaluation.after_work(s, story.rt.rules.current, task, tuesday)  # as the forms do
    continued = story.tasks("VURR01")["continued-stay-review"]
    assert continued.due_at == local(2026, 3, 6, 17, 0)
    # the initial review documents its own task, not the continued-stay review
    with story.rt.sessions() as s, s.begin():
        task = lifecycle.load(s, continued.id)
        assert task is not None
        with pytest.raises(lifecycle.Refused, match="record the review"):
            lifecycle.transition(s, task, "complete", UR_NURSE, now=tuesday,
                                 outcome="criteria met", staffing=story.rt.staffing)


def test_the_nurse_overriding_the_next_review_date_moves_the_review(story: Story):
    """The review is recorded with the cadence (Friday), then corrected: the attending
    expects a change on Wednesday, so the nurse sets the next review for Wednesday. The open
    continued-stay review moves to Wednesday 17:00; the record keeps the first version."""
    story.admit("VURR02")
    story.record(local(2026, 3, 3, 9, 0), "VURR02", review(date(2026, 3, 3)))
    assert story.tasks("VURR02")["continued-stay-review"].due_at == local(2026, 3, 6, 17, 0)

    def override(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        first = reviews.of_stay(s, enc.id)[0]
        reviews.correct(s, first, enc, ReviewInput(
            review_type="initial", reviewed_on=date(2026, 3, 3), level_of_care="inpatient",
            criteria_result="met", next_review_on=date(2026, 3, 4)), UR_NURSE, now,
            story.site, reason="attending expects a change Wednesday")

    story.record(local(2026, 3, 3, 9, 30), "VURR02", override)
    assert story.tasks("VURR02")["continued-stay-review"].due_at == local(2026, 3, 4, 17, 0)


# -- approved days ----------------------------------------------------------------------

def test_approved_days_running_out_and_a_new_approval(story: Story):
    """Mr B, commercial, admitted Monday with authorization AUTH-778 in IN1-14: the UR
    record opens it, pending. On Monday afternoon the payer approves through Thursday. At
    Tuesday's midnight two days remain: the UR nurse is asked to request more days or plan
    the discharge, due Wednesday 10:00 (the day before the last approved day). On Wednesday
    morning the payer extends the approval to Monday: the request is withdrawn."""
    story.admit("VURR03", payer="commercial", authorization="AUTH-778")
    story.send(local(2026, 3, 2, 11, 0), "A08", "VURR03", payer="commercial",
               authorization="AUTH-778")  # the same number again: still one authorization
    with story.rt.readers() as s:
        seeded = s.scalars(select(PayerAuthorization)).all()
    assert [(a.reference_number, a.status, a.source) for a in seeded] == [
        ("AUTH-778", "pending", "feed")]

    story.record(local(2026, 3, 2, 14, 0), "VURR03", approval(date(2026, 3, 5)))
    assert "approved-days-ending" not in story.tasks("VURR03")  # three days to go
    story.at(local(2026, 3, 3, 8, 0))
    ending = story.tasks("VURR03")["approved-days-ending"]
    assert ending.fired_at == local(2026, 3, 3, 0, 0, 1)
    assert ending.due_at == local(2026, 3, 4, 10, 0)
    assert (ending.title, ending.queue) == ("Request more days or plan the discharge",
                                            "ur_nurse")

    story.record(local(2026, 3, 4, 8, 0), "VURR03", approval(date(2026, 3, 9)))
    assert "approved-days-ending" not in story.tasks("VURR03")
    assert story.tasks("VURR03", "cancelled")["approved-days-ending"].end_reason == \
        "conditions no longer hold"


# -- barriers -----------------------------------------------------------------------------

def test_a_barrier_open_over_24_hours_goes_to_the_supervisor(story: Story):
    """Two patients wait for a skilled nursing bed from Monday 11:00. For Mrs C no bed is
    found: at Tuesday 11:00 the barrier is a day old and the case-management supervisor gets
    it, naming the reason. For Mr D a bed is found on Tuesday at 07:00 (20 hours): nothing
    is escalated."""
    story.admit("VURR04")
    story.admit("VURR05")
    for visit in ("VURR04", "VURR05"):
        story.record(local(2026, 3, 2, 11, 0), visit, open_barrier())
    story.record(local(2026, 3, 3, 7, 0), "VURR05", resolve())
    story.at(local(2026, 3, 3, 12, 0))

    escalated = story.tasks("VURR04")["barrier-escalation"]
    assert escalated.queue == "case_management_supervisor"
    assert escalated.fired_at == local(2026, 3, 3, 11, 0, 1)
    assert escalated.due_at == local(2026, 3, 3, 15, 0, 1)
    assert escalated.facts["oldest_open_barrier_reason"] == "PA01"
    assert escalated.facts["oldest_open_barrier_category"] == "post_acute_placement"
    assert "barrier-escalation" not in story.tasks("VURR05")


# -- avoidable days -----------------------------------------------------------------------

def test_two_avoidable_days_in_a_row_go_to_the_supervisor_one_does_not(story: Story):
    """On Thursday morning UR marks Tuesday and Wednesday avoidable for Mrs E (no SNF bed):
    two in a row, the supervisor gets the stay. Mr F has only Wednesday: no escalation."""
    story.admit("VURR06")
    story.admit("VURR07")
    thursday = local(2026, 3, 5, 8, 0)
    story.record(thursday, "VURR06", avoidable(date(2026, 3, 3), date(2026, 3, 4)))
    story.record(thursday, "VURR07", avoidable(date(2026, 3, 4)))

    streak = story.tasks("VURR06")["avoidable-days-escalation"]
    assert (streak.queue, streak.facts["avoidable_day_streak"]) == (
        "case_management_supervisor", 2)
    assert "avoidable-days-escalation" not in story.tasks("VURR07")


def test_the_engine_proposes_avoidable_days_past_the_gmlos_and_never_a_rejected_one_again(
        story: Story):
    """Mrs G, MS-DRG 065 (GMLOS 2.8 days), admitted Monday; from Tuesday 09:00 she waits for
    a skilled nursing bed. Thursday is her third day past admission, past the GMLOS: at the
    midnight that ends it the engine proposes it as avoidable, and in the same evaluation the
    UR nurse gets a task to confirm or reject it. She rejects it (the family was still
    choosing, a day UR does not count): the task is withdrawn, and at the next midnight only
    Friday is proposed, Thursday stays rejected."""
    story.admit("VURR08", drg="065")
    story.record(local(2026, 3, 3, 9, 0), "VURR08", open_barrier())
    story.at(local(2026, 3, 5, 23, 0))
    assert story.days("VURR08") == []  # Thursday is not over yet

    story.at(local(2026, 3, 6, 8, 0))
    assert story.days("VURR08") == [(date(2026, 3, 5), date(2026, 3, 5), "proposed")]
    decide = story.tasks("VURR08")["avoidable-days-decision"]
    assert (decide.fired_at, decide.queue) == (local(2026, 3, 6, 0, 0, 1), "ur_nurse")
    assert decide.facts["proposed_avoidable_days"] == 1

    def reject(story: Story, s: Session, enc: Encounter, now: datetime) -> None:
        day = avoidable_days.of_stay(s, enc.id)[0]
        avoidable_days.decide(s, day, False, UR_NURSE, now, note="family still choosing")

    story.record(local(2026, 3, 6, 9, 0), "VURR08", reject)
    assert "avoidable-days-decision" not in story.tasks("VURR08")

    story.at(local(2026, 3, 7, 8, 0))
    assert story.days("VURR08") == [(date(2026, 3, 5), date(2026, 3, 5), "rejected"),
                                    (date(2026, 3, 6), date(2026, 3, 6), "proposed")]
    assert "avoidable-days-decision" in story.tasks("VURR08")


# -- a review task is done by documenting the review -------------------------------------

def test_completing_a_review_task_without_a_recorded_review_is_refused(story: Story):
    """The UR nurse tries to close the initial review on the worklist and a system tries
    over FHIR, with no review on the record: both are refused with the reason, and the task
    stays open. Once the review is recorded on the stay, FHIR completes it."""
    story.admit("VURR09")
    task = story.tasks("VURR09")["initial-ur-review"]
    with TestClient(create_app(story.rt), base_url="http://testserver") as web:
        sign_in(web, "ur_nurse")
        refused = web.post(f"/tasks/{task.id}/complete",
                           data={"csrf_token": csrf(web), "outcome": "InterQual met"})
        assert refused.status_code >= 400
        assert "is completed by recording a utilization review" in refused.text

        patch = [{"op": "replace", "path": "/status", "value": "completed"},
                 {"op": "add", "path": "/output", "value": [
                     {"type": {"text": "outcome"}, "valueString": "criteria met"}]}]
        headers = {**auth_headers(web), "Content-Type": "application/json-patch+json"}
        answer = web.patch(f"/fhir/Task/{task.id}", json=patch, headers=headers)
        assert answer.status_code >= 400, answer.text
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "record the review, then complete the task" in str(outcome)
        assert story.tasks("VURR09")["initial-ur-review"].task_status in (None, "ready")

        story.record(local(2026, 3, 2, 10, 30), "VURR09", review(date(2026, 3, 2)))
        done = web.patch(f"/fhir/Task/{task.id}", json=patch, headers=headers)
        assert done.status_code == 200, done.text
    assert "initial-ur-review" in story.tasks("VURR09", "completed")


def test_without_a_recorded_review_the_cadence_counts_from_the_completion_as_before():
    """A recurring review whose rule counts from the record, on a stay with no review on
    file (a ruleset whose review task does not require one): every_days after the last
    completion, as before the record existed; with a review, its next review date."""
    due = Due(after="inpatient_start")
    done = local(2026, 3, 3, 11, 0)
    bare = Snapshot()
    assert recurring_due(due, 3, done, bare, done, CHICAGO, next_review_at="17:00") == \
        recurring_due(due, 3, done, bare, done, CHICAGO) == local(2026, 3, 6, 11, 0)
    reviewed = Snapshot(reviews=[Review(date(2026, 3, 3), date(2026, 3, 5))])
    assert recurring_due(due, 3, done, reviewed, done, CHICAGO, next_review_at="17:00") == \
        local(2026, 3, 5, 17, 0)
