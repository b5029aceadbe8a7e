"""Overdue work keeps its owner, and work is done by the people whose work it is.

A Medicare patient on 4WEST: the IM is Maria Alvarez's (case manager), the initial UR review
Anna Fischer's (UR nurse). When the review runs late it stays on Fischer's list, counted
overdue there, and shows on her supervisor Daniel Okafor's page as escalated with Fischer
named as its owner. An overdue MOON raises a stat task that the case manager's supervisor
owns. A case manager cannot complete the UR nurse's review, nor the follow-up IM while the
first IM is open; starting a colleague's task takes it. Real app (the web pages and FHIR
through the ASGI app), SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api.app import create_app
from engine.api.fhir.tasks import render
from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.planning import evaluation
from engine.planning.tick import tick
from engine.security.users import add_user
from engine.storage.models import RuleOutput
from engine.work import lifecycle
from engine.work.history import history
from engine.work.worklist import Filters, worklist
from tests.conftest import auth_headers
from tests.ur_record import review_for

CHICAGO = ZoneInfo("America/Chicago")
ADMITTED = datetime(2026, 3, 2, 10, 15, tzinfo=CHICAGO)  # Monday morning
PASSWORD = "correct horse battery staple"
PEOPLE = {"cm.alvarez": "case_manager", "ur.fischer": "ur_nurse", "ur.grant": "ur_nurse",
          "sup.okafor": "supervisor", "sup.garcia": "supervisor"}
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")
FISCHER = Principal(name="ur.fischer", kind="user", role="ur_nurse")
GRANT = Principal(name="ur.grant", kind="user", role="ur_nurse")
GARCIA = Principal(name="sup.garcia", kind="user", role="supervisor")
GRACE = timedelta(minutes=60)


def admit(rt, *, visit: str = "V7001", mrn: str = "700001", expected: str = "") -> None:
    rt.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan="MCR001",
                      visit=visit, mrn=mrn, location="4WEST^401^A^GENHOSP",
                      expected_discharge=expected))


def open_task(rt, code: str) -> RuleOutput:
    with rt.readers() as s:
        return s.scalars(select(RuleOutput).where(
            RuleOutput.code == code, RuleOutput.kind == "task",
            RuleOutput.status == "active").order_by(RuleOutput.id)).one()


@pytest.fixture
def clock():
    return FixedClock(ADMITTED + timedelta(minutes=15))


@pytest.fixture
def rt(runtime_factory, clock):
    runtime = runtime_factory(clock=clock)
    admit(runtime)
    for name, role in PEOPLE.items():
        add_user(runtime.sessions, name, role, PASSWORD)
    return runtime


@pytest.fixture
def web(rt):
    with TestClient(create_app(rt), base_url="http://testserver") as client:
        yield client


def sign_in(client: TestClient, name: str) -> str:
    """Sign in through /login; returns a CSRF token for the forms."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    answer = client.post("/login", data={"username": name, "password": PASSWORD,
                                         "csrf_token": token.group(1), "next": "/worklist"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/worklist").text)
    assert fresh
    return fresh.group(1)


def late_review(rt, clock) -> RuleOutput:
    """The initial UR review, past its due time and the grace: the clock escalates it."""
    review = open_task(rt, "initial-ur-review")
    assert review.owner == "ur.fischer"
    clock.set(review.due_at + GRACE + timedelta(minutes=1))
    assert rt.escalate_overdue() >= 1
    return open_task(rt, "initial-ur-review")


# -- escalation keeps the owner ---------------------------------------------------------

def test_overdue_review_stays_with_the_ur_nurse_and_goes_up_to_her_supervisor(rt, clock):
    review = late_review(rt, clock)
    assert (review.owner, review.escalated_to) == ("ur.fischer", "sup.okafor")
    assert review.escalated_at == clock.now()
    assert rt.escalate_overdue() == 0  # once
    with rt.readers() as s:
        hers = worklist(s, clock.now(), CHICAGO, Filters(owner="ur.fischer"))
        assert review.id in [i.task_id for i in hers.items] and hers.overdue == 1
        his = worklist(s, clock.now(), CHICAGO, Filters(owner="sup.okafor"))
        assert his.total == 0  # not his work: he owns none of it
        up = worklist(s, clock.now(), CHICAGO, Filters(escalated_to="sup.okafor"))
        assert [(i.task_id, i.owner) for i in up.items] == [(review.id, "ur.fischer")]
        last = history(s, review.id)[-1]
        fhir = render(s, [s.get(RuleOutput, review.id)], rt.staffing)[0]
    assert (last.action, last.actor, last.detail) == (
        "escalated", "engine", {"owner": "ur.fischer", "to": "sup.okafor"})
    # FHIR says who holds it and that it was escalated, and to whom
    assert fhir["owner"]["identifier"]["value"] == "ur.fischer"
    assert fhir["businessStatus"]["coding"][0]["code"] == "escalated"
    assert fhir["businessStatus"]["text"] == "escalated to Daniel Okafor, RN (UR supervisor)"


def test_work_not_yet_past_its_grace_is_not_escalated(rt, clock):
    review = open_task(rt, "initial-ur-review")
    clock.set(review.due_at + GRACE - timedelta(minutes=1))
    rt.escalate_overdue()
    again = open_task(rt, "initial-ur-review")
    assert (again.owner, again.escalated_at, again.escalated_to) == ("ur.fischer", None, None)


def test_the_pages_show_the_late_review_on_both_lists_with_its_owner(rt, clock, web):
    review = late_review(rt, clock)
    sign_in(web, "ur.fischer")
    mine = web.get("/worklist").text
    assert f'data-task="{review.id}"' in mine
    assert re.search(r'id="count-overdue"><strong>1</strong>', mine)
    assert "escalated to" in mine and "Daniel Okafor" in mine

    web.cookies.clear()
    sign_in(web, "sup.okafor")
    page = web.get("/supervisor").text
    escalated = page.split('id="escalated-heading"', 1)[1].split("<h2", 1)[0]
    row = escalated.split(f'data-task="{review.id}"', 1)[1].split("</tr>", 1)[0]
    # the owner by name, the login as a tooltip
    assert '<span title="ur.fischer">Anna Fischer, RN (UR)</span>' in row
    # the reassign list: UR nurses, then supervisors; Fischer chosen; no case managers
    options = re.findall(r'<option value="([^"]*)"( selected)?', row)
    assert [n for n, chosen in options if chosen] == ["ur.fischer"]
    assert {n for n, _ in options} == {"", "ur.fischer", "ur.grant", "ur.hughes",
                                       "sup.garcia", "sup.okafor"}
    people = page.split('data-person="ur.fischer"', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', people)[:2] == ["2", "1"]
    boss = page.split('data-person="sup.okafor"', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', boss)[:2] == ["0", "0"]


def test_a_case_managers_task_is_reassigned_only_among_case_managers(rt, web):
    im = open_task(rt, "im-notice")
    sign_in(web, "sup.garcia")
    page = web.get(f"/encounters/{im.encounter_id}").text
    card = page.split(f'id="output-{im.id}"', 1)[1].split("</article>", 1)[0]
    form = card.split(f'action="/tasks/{im.id}/reassign"', 1)[1].split("</form>", 1)[0]
    options = re.findall(r'<option value="([^"]*)"( selected)?', form)
    assert [n for n, chosen in options if chosen] == ["cm.alvarez"]  # the owner, not me
    offered = {n for n, _ in options}
    assert {"cm.alvarez", "cm.baker", "cm.evans"} <= offered
    assert not {n for n in offered if n.startswith("ur.")}
    # and the server agrees: a UR nurse cannot be given a case manager's IM
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    refused = web.post(f"/tasks/{im.id}/reassign",
                       data={"csrf_token": token.group(1), "owner": "ur.grant"})
    assert refused.status_code == 422 and "work for a case manager" in refused.text
    assert open_task(rt, "im-notice").owner == "cm.alvarez"
    web.post(f"/tasks/{im.id}/reassign", data={"csrf_token": token.group(1),
                                               "owner": "cm.baker"})
    page = web.get(f"/encounters/{im.encounter_id}").text
    assert "owner <span class=\"owner\" title=\"cm.baker\">James Baker, RN</span>" in page
    assert "assigned by Rosa Garcia, RN (case management supervisor)" in page  # timeline


# -- the overdue MOON ----------------------------------------------------------------------

def observe(rt, clock, hours: float) -> RuleOutput | None:
    """A Medicare patient placed in observation on OBS; the clock ticks past 24 hours (the
    MOON is owed) and then at `hours`."""
    rt.intake.hl7(adt("A04", "202603021015", patient_class="O", patient_type="OBS",
                      visit="V7900", mrn="700900", location="OBS^2^A^GENHOSP"))
    for later in (ADMITTED + timedelta(hours=25), ADMITTED + timedelta(hours=hours)):
        clock.set(later)
        tick(rt.sessions, rt.rules.current, later)
    with rt.readers() as s:
        return s.scalars(select(RuleOutput).where(
            RuleOutput.code == "moon-overdue-escalation", RuleOutput.status == "active")).first()


def test_an_overdue_moon_is_stat_work_for_the_case_managers_supervisor(rt, clock):
    stat = observe(rt, clock, 37)  # the MOON was due 36 hours after observation began
    assert stat is not None and stat.priority == "stat"
    moon = open_task(rt, "moon-notice")
    assert (moon.owner, stat.owner) == ("cm.evans", "sup.garcia")  # Evans' supervisor
    with rt.readers() as s:
        # stat work first on her list, ahead of anything overdue for longer
        s.add(RuleOutput(encounter_id=stat.encounter_id, patient_id=stat.patient_id,
                         key="older/task/x", kind="task", code="x", rule_id="x", ruleset="x",
                         ruleset_version="x", status="active", task_status="ready",
                         priority="urgent", owner="sup.garcia", fired_at=clock.now(),
                         updated_at=clock.now(), due_at=clock.now() - timedelta(days=1)))
        s.flush()
        first = worklist(s, clock.now(), CHICAGO, Filters(owner="sup.garcia")).items[0]
        s.rollback()
    assert first.code == "moon-overdue-escalation"


def test_a_moon_still_within_its_36_hours_raises_no_escalation(rt, clock):
    assert observe(rt, clock, 35) is None
    assert open_task(rt, "moon-notice").owner == "cm.evans"


# -- role and order ---------------------------------------------------------------------

def test_a_case_manager_cannot_complete_the_ur_nurses_review(rt, clock, web):
    review = open_task(rt, "initial-ur-review")
    token = sign_in(web, "cm.alvarez")
    refused = web.post(f"/tasks/{review.id}/complete",
                       data={"csrf_token": token, "outcome": "InterQual met, inpatient"})
    assert refused.status_code == 403
    assert "work for a UR nurse; a case manager may not complete it" in refused.text
    card = refused.text.split(f'id="output-{review.id}"', 1)[1].split("</article>", 1)[0]
    assert "UR nurse work" in card and f"/tasks/{review.id}/complete" not in card
    started = web.post(f"/tasks/{review.id}/start", data={"csrf_token": token})
    assert started.status_code == 403
    again = open_task(rt, "initial-ur-review")
    assert (again.task_status, again.owner) == ("ready", "ur.fischer")
    # over FHIR, a case manager's token gets an OperationOutcome
    task = web.get(f"/fhir/Task/{review.id}", headers=auth_headers(web)).json()
    patched = web.patch(f"/fhir/Task/{review.id}",
                        json=[{"op": "replace", "path": "/status", "value": "completed"},
                              {"op": "add", "path": "/output", "value": [
                                  {"type": {"text": "outcome"}, "valueString": "met"}]}],
                        headers={**auth_headers(web, "case_manager"),
                                 "Content-Type": "application/json-patch+json"})
    assert patched.status_code == 403, patched.text
    assert patched.json()["resourceType"] == "OperationOutcome"
    assert task["status"] == "ready"


def test_the_ur_nurse_and_a_supervisor_may_complete_their_teams_work(rt, clock):
    with rt.sessions() as s, s.begin():
        review = lifecycle.load(s, open_task(rt, "initial-ur-review").id)
        review_for(s, review, clock.now(), rt.site)  # the review is documented first
        lifecycle.transition(s, review, "complete", FISCHER, now=clock.now(),
                             outcome="criteria met", staffing=rt.staffing)
        im = lifecycle.load(s, open_task(rt, "im-notice").id)
        lifecycle.transition(s, im, "complete", GARCIA, now=clock.now(),
                             outcome="IM delivered", staffing=rt.staffing)
        assert (review.task_status, im.task_status) == ("completed", "completed")
        assert (review.owner, im.owner) == ("ur.fischer", "cm.alvarez")


def test_starting_a_colleagues_task_takes_it(rt, clock):
    with rt.sessions() as s, s.begin():
        review = lifecycle.load(s, open_task(rt, "initial-ur-review").id)
        with pytest.raises(lifecycle.Forbidden, match="work for a UR nurse"):
            lifecycle.transition(s, review, "start", ALVAREZ, now=clock.now(),
                                 staffing=rt.staffing)
        assert review.owner == "ur.fischer"
        lifecycle.transition(s, review, "start", GRANT, now=clock.now(), staffing=rt.staffing)
        assert review.owner == "ur.grant"
        step = history(s, review.id)[-1]
    assert (step.action, step.actor, step.detail) == (
        "started", "ur.grant", {"claimed": True, "from": "ur.fischer"})


def plan_discharge(rt, clock) -> RuleOutput:
    """The attending sets the expected discharge for Friday; on Thursday the follow-up IM
    is owed."""
    clock.set(datetime(2026, 3, 5, 9, 0, tzinfo=CHICAGO))
    rt.intake.hl7(adt("A08", "202603050900", visit="V7001", mrn="700001",
                      location="4WEST^401^A^GENHOSP", expected_discharge="20260306"))
    return open_task(rt, "im-follow-up-notice")


def test_the_follow_up_im_waits_for_the_first(rt, clock, web):
    follow_up = plan_discharge(rt, clock)
    assert open_task(rt, "im-notice").task_status == "ready"  # the first IM not yet given
    token = sign_in(web, "cm.alvarez")
    refused = web.post(f"/tasks/{follow_up.id}/complete",
                       data={"csrf_token": token, "outcome": "copy given"})
    assert refused.status_code == 409
    assert ("comes after Deliver the Important Message from Medicare, which is still "
            "ready: complete that first") in refused.text
    assert 'value="copy given"' in refused.text  # the form keeps what she typed
    assert open_task(rt, "im-follow-up-notice").task_status == "ready"


def test_the_follow_up_im_is_completed_once_the_first_was_given(rt, clock):
    with rt.sessions() as s, s.begin():  # the IM given on the day of admission
        im = lifecycle.load(s, open_task(rt, "im-notice").id)
        lifecycle.transition(s, im, "complete", ALVAREZ, now=clock.now(),
                             outcome="IM signed", staffing=rt.staffing)
        evaluation.after_work(s, rt.rules.current, im, clock.now())
    follow_up = plan_discharge(rt, clock)
    with rt.sessions() as s, s.begin():
        row = lifecycle.load(s, follow_up.id)
        lifecycle.transition(s, row, "complete", ALVAREZ, now=clock.now(),
                             outcome="copy given", staffing=rt.staffing)
        assert row.task_status == "completed"
