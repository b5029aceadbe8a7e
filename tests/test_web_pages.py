"""The web worklist over HTTP, on both stores: a case manager's morning at 7:30.

Four patients on the case manager's units with work of controlled due times and
priorities; people sign in through /login with the session cookie and CSRF token, as a
browser would. The browser itself is in test_web_browser.py.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from engine.api import worklist as worklist_api
from engine.api.app import create_app
from engine.api.fhir import router as fhir_router
from engine.api.web import worklist_page
from engine.core.clock import FixedClock
from engine.hl7.build import adt
from engine.security.users import add_user
from engine.storage.models import AuditRecord, RuleOutput
from engine.work.worklist import Filters, worklist
from tests.conftest import auth_headers

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 4, 7, 30, tzinfo=CHICAGO)  # Wednesday, 7:30 in the morning
PASSWORD = "correct horse battery staple"
PEOPLE = {"cm.alvarez": "case_manager", "cm.baker": "case_manager",
          "sup.garcia": "supervisor", "info.kim": "informaticist"}
# (family, unit, plan code): Medicare, commercial, Medicaid, Medicare Advantage
PATIENTS = [("ABBOTT", "4WEST", "MCR001"), ("BRANDT", "5EAST", "COM300"),
            ("CASTRO", "4WEST", "MCD200"), ("DIAZ", "5EAST", "MCA100")]
# (hours from now, priority) for cm.alvarez's tasks, in id order
PLAN = [(-3, "routine"), (-1, "urgent"), (2, "routine"), (5, "stat"), (30, "urgent"),
        (None, "routine"), (1, "asap"), (48, "routine"), (-2, "routine"), (20, "stat")]


def load_ward(runtime) -> None:
    """Admissions two days ago; cm.alvarez owns ten tasks with known due times."""
    for n, (family, unit, plan) in enumerate(PATIENTS):
        runtime.intake.hl7(adt("A01", "202603020915", admit_time="202603020915", plan=plan,
                               visit=f"V{5000 + n}", mrn=f"{500000 + n}",
                               name=f"{family}^PAT^Q", location=f"{unit}^50{n}^A^GENHOSP"))
    with runtime.sessions() as s, s.begin():
        rows = s.scalars(select(RuleOutput).where(RuleOutput.kind == "task",
                                                  RuleOutput.status == "active")
                         .order_by(RuleOutput.id)).all()
        assert len(rows) > len(PLAN)
        for row, (hours, priority) in zip(rows, PLAN, strict=False):
            row.due_at = None if hours is None else NOW + timedelta(hours=hours)
            row.priority, row.owner = priority, "cm.alvarez"
        for row in rows[len(PLAN):]:
            row.owner = "cm.baker"
    for name, role in PEOPLE.items():
        add_user(runtime.sessions, name, role, PASSWORD)


@pytest.fixture
def rt(runtime_factory):
    runtime = runtime_factory(clock=FixedClock(NOW))
    load_ward(runtime)
    return runtime


@pytest.fixture
def web(rt):
    with TestClient(create_app(rt), base_url="http://testserver") as client:
        yield client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, name: str) -> None:
    page = client.get("/login")
    answer = client.post("/login", data={"username": name, "password": PASSWORD,
                                         "csrf_token": csrf(page.text), "next": "/worklist"},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/worklist"


def task_ids(html: str) -> list[int]:
    return [int(t) for t in re.findall(r'<tr class="[^"]*" data-task="(\d+)"', html)]


def count(html: str, what: str) -> int:
    found = re.search(rf'id="count-{what}"><strong>(\d+)</strong>', html)
    assert found, f"no {what} count"
    return int(found.group(1))


def query(rt, **filters):
    with rt.readers() as s:
        return worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez", **filters))


def mine(rt, **filters) -> list[int]:
    return [i.task_id for i in query(rt, **filters).items]


def plain_task(rt) -> int:
    """Her first case-management task that is done with words alone (not the discharge plan,
    which asks for the chosen disposition)."""
    with rt.readers() as s:
        return next(i for i in mine(rt) if (task := s.get(RuleOutput, i)).queue == "case_manager"
                    and "discharge_plan" not in (task.detail or {}))


def test_pages_ask_for_sign_in_first(web):
    for path in ("/worklist", "/worklist/print", "/encounters/1", "/supervisor"):
        answer = web.get(path, follow_redirects=False)
        assert answer.status_code in (302, 303, 307), path
        assert answer.headers["location"].startswith("/login?next=" + path[:4])


def test_case_manager_sees_her_work_stat_and_overdue_first_with_counts(web, rt):
    sign_in(web, "cm.alvarez")
    page = web.get("/worklist")
    assert page.status_code == 200
    html = page.text
    assert "My worklist" in html
    assert task_ids(html) == mine(rt)  # the shared query's order: stat, overdue, priority
    assert (count(html, "overdue"), count(html, "due-today"), count(html, "open")) == (3, 3, 10)
    rows = html.split('data-task="')[1:]
    assert "due in 5 h" in rows[0] and "Stat" in rows[0]  # stat work first, due or not
    first = rows[2]  # then the urgent task one hour late
    assert "overdue by 1 h" in first and "Urgent" in first
    assert "Wed 04 Mar 06:30" in first  # due time on the hospital's clock (Chicago)
    assert re.search(r"rule [a-z0-9-]+", first), "each task says which rule raised it"
    assert "ABBOTT, Pat" in html or "BRANDT, Pat" in html
    for label in ("Unit", "Task type", "Payer", "Status"):
        assert re.search(rf'<label for="f-[a-z]+">{label}</label>', html)
    assert 'scope="col"' in html and 'href="#main"' in html
    with rt.readers() as s:  # one audit entry per patient shown
        seen = {r.patient_id for r in s.scalars(select(AuditRecord).where(
            AuditRecord.actor == "cm.alvarez", AuditRecord.operation == "search"))}
    assert seen == {i.patient_id for i in query(rt).items}


def test_filters_and_column_sorting(web, rt):
    sign_in(web, "cm.alvarez")
    html = web.get("/worklist", params={"unit": "5EAST"}).text
    assert task_ids(html) == mine(rt, unit="5EAST") and task_ids(html)
    assert "4WEST 50" not in html.split("<tbody>")[1]
    html = web.get("/worklist", params={"payer": "commercial"}).text
    assert task_ids(html) == mine(rt, payer_class="commercial")
    html = web.get("/worklist", params={"sort": "patient"}).text
    names = re.findall(r'#output-\d+">([A-Z]+, Pat)</a>', html)
    assert names == sorted(names) and len(names) == 10
    html = web.get("/worklist", params={"sort": "patient", "dir": "desc"}).text
    assert re.findall(r'#output-\d+">([A-Z]+, Pat)</a>', html) == sorted(names, reverse=True)
    assert 'aria-sort="descending"' in html
    html = web.get("/worklist", params={"status": "in-progress"}).text
    assert task_ids(html) == [] and "No open tasks match these filters" in html


def test_the_encounter_page_explains_each_output(web, rt):
    sign_in(web, "cm.alvarez")
    first = plain_task(rt)
    with rt.readers() as s:
        task = s.get(RuleOutput, first)
        encounter_id, rule_id, version = task.encounter_id, task.rule_id, task.ruleset_version
    page = web.get(f"/encounters/{encounter_id}")
    assert page.status_code == 200
    html = page.text
    assert re.search(r"MRN</dt><dd>50000\d", html)
    assert "Length of stay" in html and "midnights" in html
    assert f"<code>{rule_id}</code>" in html and f"<code>{version}</code>" in html
    assert "Citation" in html and "Facts when it fired" in html and "Conditions" in html
    assert "A01" in html  # the ADT timeline
    assert f'action="/tasks/{first}/complete"' in html
    assert f'<label for="outcome-{first}">Outcome</label>' in html
    with rt.readers() as s:
        reads = s.scalars(select(AuditRecord).where(AuditRecord.operation == "read",
                                                    AuditRecord.resource_type == "Encounter"))
        assert any(r.resource_id == str(encounter_id) and r.actor == "cm.alvarez"
                   for r in reads)
    assert web.get("/encounters/999999").status_code == 404


def test_start_then_complete_with_an_outcome(web, rt):
    sign_in(web, "cm.alvarez")
    first = plain_task(rt)
    with rt.readers() as s:
        encounter_id = s.get(RuleOutput, first).encounter_id
    token = csrf(web.get(f"/encounters/{encounter_id}").text)
    done = web.post(f"/tasks/{first}/start", data={"csrf_token": token},
                    follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"/encounters/{encounter_id}?done=started#output-{first}"
    assert "Task started." in web.get(done.headers["location"]).text
    refused = web.post(f"/tasks/{first}/complete", data={"csrf_token": token, "outcome": " "})
    assert refused.status_code == 422
    assert "completing a task needs an outcome" in refused.text
    assert 'role="alert"' in refused.text
    done = web.post(f"/tasks/{first}/complete",
                    data={"csrf_token": token, "outcome": "Discussed with patient",
                          "next": "/worklist"}, follow_redirects=False)
    assert done.headers["location"] == "/worklist?done=completed"
    with rt.readers() as s:
        task = s.get(RuleOutput, first)
        assert (task.task_status, task.outcome) == ("completed", "Discussed with patient")
        trail = [(r.operation, r.action, r.status_code) for r in s.scalars(
            select(AuditRecord).where(AuditRecord.resource_type == "Task",
                                      AuditRecord.resource_id == str(first))
            .order_by(AuditRecord.id))]
    assert trail == [("start", "U", 303), ("complete", "U", 422), ("complete", "U", 303)]
    html = web.get("/worklist?done=completed").text
    assert "Task completed." in html and first not in task_ids(html)
    # completing re-evaluates the stay, so the rules may move other due times: the page
    # agrees with the shared query, one task fewer
    after = query(rt)
    assert (count(html, "open"), count(html, "overdue")) == (after.total, after.overdue)
    assert after.total == 9


def test_decline_needs_a_reason_and_a_note_is_kept(web, rt):
    sign_in(web, "cm.alvarez")
    with rt.readers() as s:  # her own role's work: a UR review is the UR nurse's to decline
        task_id = next(i for i in mine(rt) if s.get(RuleOutput, i).queue == "case_manager")
    token = csrf(web.get("/worklist").text)
    refused = web.post(f"/tasks/{task_id}/decline", data={"csrf_token": token})
    assert refused.status_code == 422 and "a decline needs a reason" in refused.text
    # "other" needs words; what was chosen stays chosen on the page that says so
    vague = web.post(f"/tasks/{task_id}/decline", data={"csrf_token": token,
                                                         "reason_code": "other"})
    assert vague.status_code == 422 and "needs the reason in words" in vague.text
    assert '<option value="other" selected>' in vague.text
    noted = web.post(f"/tasks/{task_id}/note", data={"csrf_token": token, "text": "Called"},
                     follow_redirects=False)
    assert noted.status_code == 303 and "done=noted" in noted.headers["location"]
    assert "note by Maria Alvarez, RN: Called" in web.get(noted.headers["location"]).text
    declined = web.post(f"/tasks/{task_id}/decline",
                        data={"csrf_token": token, "reason_code": "patient-declined",
                              "reason": "Family declined"},
                        follow_redirects=False)
    assert declined.status_code == 303
    with rt.readers() as s:
        task = s.get(RuleOutput, task_id)
        assert (task.task_status, task.outcome) == ("rejected",
                                                    "Patient or family declined: Family declined")


def test_a_change_made_since_the_page_was_read_is_not_overwritten(web, rt):
    sign_in(web, "cm.alvarez")
    task_id = mine(rt)[0]
    with rt.readers() as s:
        seen = s.get(RuleOutput, task_id).version
    token = csrf(web.get("/worklist").text)
    web.post(f"/tasks/{task_id}/note", data={"csrf_token": token, "text": "Paged the MD",
                                              "version": str(seen)})
    stale = web.post(f"/tasks/{task_id}/start", data={"csrf_token": token,
                                                      "version": str(seen)})
    assert stale.status_code == 412
    assert "someone changed this task after you opened the page" in stale.text
    with rt.readers() as s:
        assert s.get(RuleOutput, task_id).task_status == "ready"


def test_a_form_without_the_csrf_token_is_refused(web, rt):
    sign_in(web, "cm.alvarez")
    task_id = mine(rt)[0]
    refused = web.post(f"/tasks/{task_id}/start", data={}, follow_redirects=False)
    assert refused.status_code == 403
    refused = web.post(f"/tasks/{task_id}/start", data={"csrf_token": "forged"},
                       follow_redirects=False)
    assert refused.status_code == 403
    with rt.readers() as s:
        assert s.get(RuleOutput, task_id).task_status == "ready"


def test_roles_without_the_web_ui_or_patient_data_are_refused(web, rt):
    bearer = auth_headers(web, "integration")  # the EHR's client: FHIR, never the web UI
    for path in ("/worklist", "/supervisor", f"/encounters/{1}"):
        assert web.get(path, headers=bearer, follow_redirects=False).status_code == 403
    sign_in(web, "info.kim")  # an informaticist: web UI for rules, no patient data
    assert web.get("/worklist", follow_redirects=False).status_code == 403


def test_a_case_manager_cannot_supervise(web, rt):
    sign_in(web, "cm.alvarez")
    assert web.get("/supervisor").status_code == 403
    assert web.get("/worklist", params={"for": "person:cm.baker"}).status_code == 403
    task_id = mine(rt)[0]
    token = csrf(web.get("/worklist").text)
    refused = web.post(f"/tasks/{task_id}/reassign",
                       data={"csrf_token": token, "owner": "cm.baker"})
    assert refused.status_code == 403 and "may not task:assign" in refused.text
    with rt.readers() as s:
        assert s.get(RuleOutput, task_id).owner == "cm.alvarez"


def test_supervisor_sees_caseloads_and_reassigns(web, rt):
    sign_in(web, "sup.garcia")
    html = web.get("/supervisor").text
    row = html.split('data-person="cm.alvarez"', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="num[^"]*">(\d+)</td>', row)[:3] == ["10", "3", "3"]
    task_id = mine(rt)[0]
    token = csrf(html)
    moved = web.post(f"/tasks/{task_id}/reassign",
                     data={"csrf_token": token, "owner": "cm.baker", "next": "/supervisor"},
                     follow_redirects=False)
    assert moved.headers["location"] == "/supervisor?done=reassigned"
    with rt.readers() as s:
        assert s.get(RuleOutput, task_id).owner == "cm.baker"
    theirs = web.get("/worklist", params={"for": "person:cm.baker"}).text
    assert task_id in task_ids(theirs) and "James Baker" in theirs


def test_the_print_view_has_no_navigation_and_every_row(web, rt):
    sign_in(web, "cm.alvarez")
    html = web.get("/worklist/print", params={"unit": "4WEST"}).text
    assert task_ids(html) == mine(rt, unit="4WEST")
    assert "<nav" not in html and "<form" not in html
    assert "overdue" in html and "filtered: unit 4WEST" in html
    assert "@media print" in web.get("/static/web.css").text


def test_a_failing_page_shows_a_plain_error_page_while_the_api_keeps_operation_outcomes(
    web, rt, monkeypatch, caplog
):
    """A bug behind the worklist whose message quotes a patient: the case manager sees a
    friendly page in the usual layout (no trace, no patient data, a reference to quote);
    the EHR calling /fhir or /api still gets an OperationOutcome."""
    sign_in(web, "cm.alvarez")
    headers = auth_headers(web)

    def broken(*_args, **_kwargs):
        raise RuntimeError("cannot list ABBOTT, MRN 500000")

    monkeypatch.setattr(worklist_page, "worklist", broken)
    monkeypatch.setattr(worklist_api, "worklist", broken)
    monkeypatch.setattr(fhir_router, "capability_statement", broken)

    with caplog.at_level(logging.ERROR, logger="engine"):
        answer = web.get("/worklist")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    html = answer.text
    assert "Something went wrong" in html and 'href="/worklist"' in html
    assert "Signed in as <strong>cm.alvarez</strong>" in html  # the usual page layout
    for leak in ("ABBOTT", "500000", "Traceback", "RuntimeError", ".py"):
        assert leak not in html, leak
    found = re.search(r'id="error-reference">([0-9a-f]{8})<', html)
    assert found, html
    assert found[1] in caplog.text and "ABBOTT" not in caplog.text

    for path in ("/fhir/metadata", "/api/worklist"):
        answer = web.get(path, headers=headers)
        assert answer.status_code == 500, path
        assert answer.headers["content-type"].startswith("application/fhir+json"), path
        issue = answer.json()["issue"][0]
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert issue["code"] == "exception" and "ABBOTT" not in issue["diagnostics"]
