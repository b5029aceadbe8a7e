"""New work finds its person: by unit, service and payer from the staffing file, balanced by
caseload, sticky across transfers, moved only by a supervisor; overdue work goes up to the
supervisor and stays with its owner."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.api.fhir.tasks import render
from engine.api.web.people import choices
from engine.core.clock import FixedClock
from engine.core.config import DEFAULT_STAFFING, get_settings
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.planning.tick import tick
from engine.storage.models import CaseAssignment, Encounter, RuleOutput
from engine.work import assignment, escalation
from engine.work.history import history
from engine.work.lifecycle import Forbidden
from engine.work.staffing import Person, Staffing, from_file, load_staffing
from tests.conftest import FIXTURES, ROOT

CHICAGO = ZoneInfo("America/Chicago")
GARCIA = Principal(name="sup.garcia", kind="user", role="supervisor")
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)


def owners(rt, visit: str) -> dict[str, str | None]:
    with rt.readers() as s:
        rows = s.scalars(select(RuleOutput).join(Encounter, Encounter.id == RuleOutput.encounter_id)
                         .where(Encounter.visit_number == visit, RuleOutput.kind == "task",
                                RuleOutput.status == "active"))
        return {r.code: r.owner for r in rows}


def admit(rt, n: int, *, unit: str = "4WEST", plan: str = "MCR001") -> str:
    visit = f"V{2000 + n}"
    rt.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan=plan,
                      visit=visit, mrn=f"{300000 + n}", location=f"{unit}^4{n:02d}^A^GENHOSP"))
    return visit


def test_the_demo_staffing_file_covers_the_demo_hospital():
    staffing = load_staffing(FIXTURES / "staffing.yaml")
    units = {u for p in staffing.people for u in p.units}
    assert {"4WEST", "5EAST", "3NORTH", "6SOUTH", "ICU", "OBS", "ED"} <= units
    assert staffing.role_for_queue("ur_nurse") == "ur_nurse"
    # every queue the shipped rules name is worked by a role
    assert staffing.role_for_queue("physician_advisor") == "ur_nurse"
    assert staffing.role_for_queue("case_management_supervisor") == "supervisor"
    assert staffing.unmapped(["case_manager", "physician_advisor", "bed_board"]) == [
        "bed_board"]
    assert staffing.supervisor_of("cm.chen") == "sup.garcia"
    assert staffing.supervisor_of("ur.hughes") == "sup.okafor"


def test_a_staffing_file_naming_an_unknown_supervisor_is_refused():
    with pytest.raises(ValueError, match="not a supervisor"):
        Staffing(people=[Person(name="cm.x", role="case_manager", supervisor="sup.nobody")])


def test_new_work_goes_to_the_unit_case_manager_and_the_payer_ur_nurse(runtime_factory):
    rt = runtime_factory(clock=FixedClock(local(2026, 3, 2, 10, 30)))
    first = owners(rt, admit(rt, 1))
    assert (first["im-notice"], first["initial-ur-review"]) == ("cm.alvarez", "ur.fischer")
    assert first["confirm-discharge-plan"] == "cm.alvarez"  # one case manager per stay
    commercial = owners(rt, admit(rt, 2, unit="3NORTH", plan="COM300"))
    assert commercial["initial-ur-review"] == "ur.hughes"  # the UR nurse for any payer
    assert commercial["authorization-request"] == "ur.hughes"  # same person for the stay


def test_caseload_balances_between_colleagues_on_the_same_units(runtime_factory):
    rt = runtime_factory(clock=FixedClock(local(2026, 3, 2, 10, 30)))
    cms = [owners(rt, admit(rt, n, unit="5EAST"))["im-notice"] for n in range(4)]
    assert cms == ["cm.alvarez", "cm.baker", "cm.alvarez", "cm.baker"]
    with rt.readers() as s:
        assert assignment.caseloads(s, "case_manager") == {"cm.alvarez": 2, "cm.baker": 2}
        assert assignment.caseloads(s, "ur_nurse") == {"ur.fischer": 2, "ur.grant": 2}


def test_no_one_covers_an_unknown_unit_so_the_work_waits_in_the_queue(runtime_factory):
    rt = runtime_factory(clock=FixedClock(local(2026, 3, 2, 10, 30)))
    assert owners(rt, admit(rt, 1, unit="9ZZZ"))["im-notice"] is None
    with rt.readers() as s:
        roles = set(s.scalars(select(CaseAssignment.role)))
    assert roles == {"ur_nurse"}


def test_the_patient_keeps_the_case_manager_across_a_transfer(runtime_factory):
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock)
    visit = admit(rt, 1)
    clock.set(local(2026, 3, 3, 9, 0))
    rt.intake.hl7(adt("A02", "202603030900", visit=visit, mrn="300001",
                      location="3NORTH^310^B^GENHOSP", prior_location="4WEST^401^A^GENHOSP"))
    clock.set(local(2026, 3, 5, 9, 0))
    rt.intake.hl7(adt("A08", "202603050900", visit=visit, mrn="300001",
                      location="3NORTH^310^B^GENHOSP", expected_discharge="20260306"))
    now = owners(rt, visit)
    # raised on 3NORTH (Chen and Dubois' unit), still Alvarez's patient
    assert now["im-follow-up-notice"] == "cm.alvarez"


def test_a_supervisor_reassigns_the_stay_and_its_open_work(runtime_factory):
    now = local(2026, 3, 2, 10, 30)
    rt = runtime_factory(clock=FixedClock(now))
    visit = admit(rt, 1)
    with rt.sessions() as s, s.begin():
        enc = s.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()
        with pytest.raises(Forbidden):
            assignment.reassign_case(s, enc, "case_manager", "cm.baker", ALVAREZ, now=now,
                                     staffing=rt.staffing)
        moved = assignment.reassign_case(s, enc, "case_manager", "cm.baker", GARCIA, now=now,
                                         reason="Alvarez on leave", staffing=rt.staffing)
        assert sorted(t.code for t in moved) == ["confirm-discharge-plan", "im-notice"]
        assert [(e.action, e.text) for e in history(s, moved[0].id)][-1] == (
            "assigned", "Alvarez on leave")
    after = owners(rt, visit)
    assert (after["im-notice"], after["initial-ur-review"]) == ("cm.baker", "ur.fischer")
    with rt.readers() as s:
        held = s.scalars(select(CaseAssignment).where(CaseAssignment.role == "case_manager")).one()
        assert (held.user_name, held.assigned_by) == ("cm.baker", "sup.garcia")


def test_overdue_work_is_escalated_to_the_supervisor_once_and_keeps_its_owner(
    runtime_factory
):
    rt = runtime_factory(clock=FixedClock(local(2026, 3, 2, 10, 30)))
    admit(rt, 1)  # the initial UR review is due one business day after admission
    with rt.readers() as s:
        review = s.scalars(select(RuleOutput).where(RuleOutput.code == "initial-ur-review")).one()
    grace = timedelta(minutes=60)

    def escalated_at(when):
        escalation.escalate_overdue(rt.sessions, when, grace, from_file(DEFAULT_STAFFING))
        with rt.readers() as s:
            return s.get(RuleOutput, review.id).escalated_at

    assert escalated_at(review.due_at + timedelta(minutes=59)) is None
    after = review.due_at + timedelta(minutes=61)
    assert escalated_at(after) == after
    assert escalation.escalate_overdue(rt.sessions, after, grace, from_file(DEFAULT_STAFFING)) == 0
    with rt.readers() as s:
        row = s.get(RuleOutput, review.id)
        assert (row.owner, row.escalated_to, row.escalated_at, row.version) == (
            "ur.fischer", "sup.okafor", after, 2)
        last = history(s, row.id)[-1]
    assert (last.action, last.actor, last.detail) == (
        "escalated", "engine", {"owner": "ur.fischer", "to": "sup.okafor"})


def test_the_server_clock_escalates_with_the_configured_grace(runtime_factory):
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock, escalation_grace_minutes=30)
    admit(rt, 1)
    with rt.readers() as s:
        review = s.scalars(select(RuleOutput).where(RuleOutput.code == "initial-ur-review")).one()
    clock.set(review.due_at + timedelta(minutes=29))
    rt.escalate_overdue()
    with rt.readers() as s:
        assert s.get(RuleOutput, review.id).escalated_at is None
    clock.set(review.due_at + timedelta(minutes=31))
    rt.escalate_overdue()
    with rt.readers() as s:
        row = s.get(RuleOutput, review.id)
        assert (row.owner, row.escalated_to) == ("ur.fischer", "sup.okafor")


NIGHT_SHIFT = """
supervisor: sup.night
people:
  - {name: sup.night, role: supervisor}
  - {name: cm.night, role: case_manager, supervisor: sup.night, display: Night Case Manager}
  - {name: ur.night, role: ur_nurse, supervisor: sup.night}
"""


def test_a_server_started_with_its_own_staffing_file_assigns_by_that_file(
    runtime_factory, tmp_path
):
    """The process-wide settings name the demo hospital's file; this engine was started with
    a night-shift file (one case manager, one UR nurse for everyone). Work raised by a
    message and work raised later by the clock both go to the night shift."""
    night = tmp_path / "night.yaml"
    night.write_text(NIGHT_SHIFT)
    assert get_settings().staffing_file == FIXTURES / "staffing.yaml"
    clock = FixedClock(local(2026, 3, 2, 10, 30))
    rt = runtime_factory(clock=clock, staffing_file=night)

    admitted = owners(rt, admit(rt, 1))  # 4WEST, Medicare: Alvarez and Fischer by day
    assert (admitted["im-notice"], admitted["initial-ur-review"]) == ("cm.night", "ur.night")

    rt.intake.hl7(adt("A04", "202603021015", patient_class="O", patient_type="OBS",
                      visit="V2902", mrn="300902", location="OBS^2^A^GENHOSP"))
    assert not {"moon-notice", "status-review"} & set(owners(rt, "V2902"))
    later = local(2026, 3, 4, 1, 0)  # past 24 h in observation and past the 2nd midnight
    clock.set(later)
    tick(rt.sessions, rt.rules.current, later)
    observed = owners(rt, "V2902")
    assert (observed["moon-notice"], observed["status-review"]) == ("cm.night", "ur.night")
    # Reading the work back names people from the same file (FHIR Task.owner, the
    # supervisor's list of people to assign to).
    with rt.readers() as s:
        moon = s.scalars(select(RuleOutput).where(RuleOutput.code == "moon-notice")).one()
        assert render(s, [moon], rt.staffing)[0]["owner"]["display"] == "Night Case Manager"
        assert [c.name for c in choices(rt.staffing)] == ["cm.night", "ur.night",
                                                            "sup.night"]


def test_rulesets_reloaded_while_running_still_assign_by_the_engines_own_file(
    runtime_factory, tmp_path
):
    """An informaticist edits a ruleset while the night shift is on: the reloaded version
    raises its work for the night-shift people, not for the process-wide (day) file."""
    night = tmp_path / "night.yaml"
    night.write_text(NIGHT_SHIFT)
    folder = tmp_path / "rulesets"
    shutil.copytree(ROOT / "rulesets", folder)
    rt = runtime_factory(clock=FixedClock(local(2026, 3, 2, 10, 30)), staffing_file=night,
                         rulesets=str(folder))
    before = rt.rules.current.version
    first = next(folder.glob("*.yaml"))
    first.write_text(first.read_text() + "\n# reviewed 2026-03-02\n")
    assert rt.reloader.reload("test").outcome == "reloaded"
    assert rt.rules.current.version != before
    admitted = owners(rt, admit(rt, 1))
    assert (admitted["im-notice"], admitted["initial-ur-review"]) == ("cm.night", "ur.night")
