"""An avoidable-day proposal that runs on is a new version of it, on both stores.

The story: a pneumonia patient admitted on Monday, expected home on Wednesday; on Wednesday
morning the case manager opens a barrier: no skilled nursing bed (PA01). Friday night the
engine proposes Thursday as avoidable. The UR nurse opens it; before she confirms, Saturday
night the engine runs it on to Friday (the barrier is still open). Confirming what she read
(Thursday only) is refused as stale, the Thursday-only proposal is kept as a revision, and
she confirms Thursday and Friday.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import StoryStep, site_message
from engine.storage.models import AvoidableDay, Encounter
from engine.work.ur_record import avoidable_days, barriers, revisions
from engine.work.ur_record.inputs import BarrierInput
from engine.work.ur_record.problems import RecordStale

CASE_MANAGER = Principal(name="cm.alvarez", kind="user", role="case_manager")
UR_NURSE = Principal(name="ur.hughes", kind="user", role="ur_nurse")


@pytest.fixture
def rt(runtime_factory):
    runtime = runtime_factory(clock=FixedClock(datetime(2026, 3, 7, 17, 0, tzinfo=UTC)))
    zone = runtime.site.zone
    steps = [(StoryStep("A01", visit="V8801", mrn="MRN8801", payer="commercial",
                        diagnoses=[("J18.9", "A")]), datetime(2026, 3, 2, 10, 0, tzinfo=zone)),
             (StoryStep("A08", visit="V8801", mrn="MRN8801", status="inpatient",
                        expected_discharge=date(2026, 3, 4)),
              datetime(2026, 3, 3, 9, 0, tzinfo=zone))]
    for n, (step, when) in enumerate(steps):
        assert runtime.intake.hl7(site_message(step, when, runtime.site, f"AR{n}")
                                  ).ack_code == "AA"
    return runtime


def _derive(rt, when: datetime) -> list[tuple[int, date, date]]:
    """The engine's nightly pass: the proposals it made (id, first day, last day)."""
    reference = rt.rules.current.book.reference
    with rt.sessions() as session, session.begin():
        enc = session.query(Encounter).filter_by(visit_number="V8801").one()
        made = avoidable_days.derive(session, enc, when, rt.site.zone, reference)
        return [(d.id, d.first_day, d.last_day) for d in made]


def test_a_proposal_that_runs_on_is_a_new_version_and_keeps_the_shorter_run(rt):
    zone = rt.site.zone
    wednesday = datetime(2026, 3, 4, 9, 0, tzinfo=zone)
    with rt.sessions() as session, session.begin():
        enc = session.query(Encounter).filter_by(visit_number="V8801").one()
        barriers.open_barrier(session, enc, BarrierInput(reason_code="PA01"), CASE_MANAGER,
                              wednesday, rt.site, rt.rules.current.book.reference)

    made = _derive(rt, datetime(2026, 3, 6, 0, 10, tzinfo=zone))
    # the expected discharge day itself is the first day past it (its night is not needed)
    assert [(first, last) for _, first, last in made] == [(date(2026, 3, 4),
                                                           date(2026, 3, 5))]
    proposal_id = made[0][0]
    with rt.sessions() as session:
        read_version = session.get(AvoidableDay, proposal_id).version  # the nurse opens it

    assert _derive(rt, datetime(2026, 3, 7, 0, 10, tzinfo=zone)) == []  # runs on, not new

    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=zone)
    with rt.sessions() as session, session.begin():
        day = session.get(AvoidableDay, proposal_id)
        assert (day.first_day, day.last_day) == (date(2026, 3, 4), date(2026, 3, 6))
        assert day.version == read_version + 1
        with pytest.raises(RecordStale):
            avoidable_days.decide(session, day, True, UR_NURSE, saturday,
                                  expected_version=read_version)
    with rt.sessions() as session, session.begin():
        day = session.get(AvoidableDay, proposal_id)
        kept = revisions.history(session, AvoidableDay.__tablename__, proposal_id)
        assert [r.body["last_day"] for r in kept] == ["2026-03-05"]
        avoidable_days.decide(session, day, True, UR_NURSE, saturday,
                              expected_version=day.version)
    with rt.sessions() as session:
        day = session.get(AvoidableDay, proposal_id)
        assert (day.status, day.decided_by, day.last_day) == ("confirmed", "ur.hughes",
                                                              date(2026, 3, 6))
