"""A case manager's decline through the real server, on SQLite and PostgreSQL: Maria Alvarez
declines "Confirm the discharge plan" on the encounter page with a coded reason; the EHR sees
a FHIR Task `rejected` with its statusReason; re-evaluation, the clock and a transfer raise no
new copy; admission as an inpatient (a material change) raises it once more. The EHR can
decline over FHIR too, declining the home proposal withdraws it (and, home being the only
disposition, the plan task), and `engine rules explain` says what was decided."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fhir.resources.R4B.task import Task
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.hl7.build import adt
from engine.planning.tick import tick
from engine.security.users import add_user
from engine.storage.models import Encounter, RuleOutput
from tests.conftest import BOTH_STORES, ROOT, fresh_database, make_settings
from tests.conftest import start_server as start

CHICAGO = ZoneInfo("America/Chicago")
QUIET = {"ENGINE_ESCALATION_GRACE_MINUTES": "100000000", "ENGINE_CLOCK_INTERVAL_S": "3600"}
PASSWORD = "correct horse battery staple"
PLAN_TASK = "confirm-discharge-plan"
WEB_VISIT, FHIR_VISIT, PROPOSAL_VISIT, PATCH_VISIT = "VD100", "VD200", "VD300", "VD400"


def _stamp(when: datetime) -> str:
    return when.astimezone(CHICAGO).strftime("%Y%m%d%H%M")


def observe(rt: Runtime, visit: str, mrn: str, when: datetime) -> None:
    """A Medicare patient placed in observation on 4WEST: discharge home is proposed, the
    only disposition of the plan the case manager is asked to confirm."""
    rt.intake.hl7(adt("A04", _stamp(when), admit_time=_stamp(when), visit=visit, mrn=mrn,
                      patient_class="O", patient_type="OBS"))


@pytest.fixture(scope="module", params=BOTH_STORES)
def store(request, tmp_path_factory) -> Iterator[Runtime]:
    for url in fresh_database(request.param, tmp_path_factory.mktemp("decisions")):
        rt = Runtime.open(make_settings(url))
        earlier = datetime.now(CHICAGO) - timedelta(hours=2)
        observe(rt, WEB_VISIT, "930001", earlier)
        observe(rt, FHIR_VISIT, "930002", earlier)
        observe(rt, PROPOSAL_VISIT, "930003", earlier)
        observe(rt, PATCH_VISIT, "930004", earlier)
        add_user(rt.sessions, "cm.alvarez", "case_manager", PASSWORD)
        yield rt
        rt.close()


@pytest.fixture(scope="module")
def server(store):
    srv = start(store.settings.database_url, mllp=False, env=QUIET)
    try:
        yield srv
    finally:
        srv.kill()


@pytest.fixture(scope="module")
def fhir(server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def encounter_id(store: Runtime, visit: str) -> int:
    with store.readers() as s:
        return s.scalars(select(Encounter.id).where(Encounter.visit_number == visit)).one()


def plan_tasks(store: Runtime, visit: str) -> list[RuleOutput]:
    with store.readers() as s:
        return list(s.scalars(select(RuleOutput).join(Encounter).where(
            Encounter.visit_number == visit, RuleOutput.code == PLAN_TASK)
            .order_by(RuleOutput.id)))


def ready(store: Runtime, visit: str) -> list[int]:
    return [t.id for t in plan_tasks(store, visit) if t.task_status == "ready"]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def signed_in(server) -> httpx.Client:
    web = httpx.Client(base_url=server.base_url, timeout=30)
    login = web.get("/login")
    answer = web.post("/login", data={"username": "cm.alvarez", "password": PASSWORD,
                                      "csrf_token": csrf(login.text), "next": "/worklist"})
    assert answer.status_code == 303, answer.text
    return web


def test_case_manager_declines_the_plan_and_it_is_not_asked_again(server, store, fhir):
    stay = encounter_id(store, WEB_VISIT)
    (task_id,) = ready(store, WEB_VISIT)
    web = signed_in(server)
    try:
        page = web.get(f"/encounters/{stay}").text
        assert f'action="/tasks/{task_id}/decline"' in page
        assert '<option value="not-clinically-appropriate"' in page
        # she forgets the reason's words for "other": refused, and her choice stays chosen
        vague = web.post(f"/tasks/{task_id}/decline", data={
            "csrf_token": csrf(page), "reason_code": "other", "reason": ""})
        assert vague.status_code == 422 and '<option value="other" selected>' in vague.text
        done = web.post(f"/tasks/{task_id}/decline", data={
            "csrf_token": csrf(page), "reason_code": "not-clinically-appropriate",
            "reason": "lives alone, two flights of stairs; PT recommends rehab"})
        assert done.status_code == 303 and "done=declined" in done.headers["location"]
        page = web.get(f"/encounters/{stay}").text
    finally:
        web.close()
    said = ("declined by Maria Alvarez, RN: Not clinically appropriate: lives alone, two "
            "flights of stairs; PT recommends rehab")
    assert said in page  # the timeline, by her name, not "failed by cm.alvarez"
    assert "failed by" not in page
    assert "holds until care status or diagnoses change" in page  # the explanation
    # the EHR sees a clinical decision, not a failure
    task = fhir.get(f"/Task/{task_id}").json()
    Task.model_validate(task)
    assert task["status"] == "rejected"
    assert task["statusReason"]["coding"] == [{
        "system": "urn:engine:decline-reason", "code": "not-clinically-appropriate",
        "display": "Not clinically appropriate"}]
    assert ready(store, WEB_VISIT) == []
    proposals = fhir.get("/ServiceRequest", params={"encounter": f"Encounter/{stay}",
                                                    "status": "active"}).json()
    # the task was declined, not the recommendation: discharge home stays proposed
    assert [e["resource"]["code"]["coding"][0]["code"] for e in proposals.get("entry", [])
            ] == ["home"]
    # the clock comes round and a transfer happens: still declined, no fresh copy
    tick(store.sessions, store.rules.current, datetime.now(CHICAGO) + timedelta(hours=3),
         all_open=True)
    store.intake.hl7(adt("A02", _stamp(datetime.now(CHICAGO)), visit=WEB_VISIT, mrn="930001",
                         patient_class="O", patient_type="OBS",
                         location="5EAST^501^A^GENHOSP", prior_location="4WEST^412^A^GENHOSP"))
    assert ready(store, WEB_VISIT) == [] and len(plan_tasks(store, WEB_VISIT)) == 1
    # `engine rules explain` says what was decided and what would reopen it
    explained = subprocess.run(
        [sys.executable, "-m", "engine", "rules", "explain", WEB_VISIT], capture_output=True,
        text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "ENGINE_DATABASE_URL": store.settings.database_url,
             "COLUMNS": "200"})
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert any(x.startswith("      held back: declined by Maria Alvarez, RN at ") for x in lines)
    line = next(x for x in lines if x.startswith("  confirm-discharge-plan: "))
    assert "declined by Maria Alvarez, RN at " in line
    assert line.endswith("holds until care status or diagnoses change  [holding back: "
                         "confirm-discharge-plan/task/confirm-discharge-plan]")
    # the physician admits her as an inpatient: a material change, the question comes back
    store.intake.hl7(adt("A06", _stamp(datetime.now(CHICAGO)), visit=WEB_VISIT, mrn="930001",
                         patient_class="I", location="5EAST^501^A^GENHOSP"))
    again = ready(store, WEB_VISIT)
    assert len(again) == 1 and again[0] != task_id
    found = fhir.get("/Task", params={"code": PLAN_TASK, "status": "ready",
                                      "focus": f"Encounter/{stay}"}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [str(again[0])]


def test_the_ehr_declines_over_fhir_with_a_coded_reason(server, store, fhir):
    (task_id,) = ready(store, FHIR_VISIT)
    task = fhir.get(f"/Task/{task_id}").json()
    unknown = {**task, "status": "rejected", "statusReason": {"coding": [
        {"system": "urn:engine:decline-reason", "code": "feels-wrong"}]}}
    refused = fhir.put(f"/Task/{task_id}", json=unknown)
    assert refused.status_code == 422
    assert "unknown decline reason 'feels-wrong'" in refused.json()["issue"][0]["diagnostics"]
    wanted = {**task, "status": "rejected", "statusReason": {
        "coding": [{"system": "urn:engine:decline-reason", "code": "patient-declined"}],
        "text": "going to her daughter's in another state"}}
    answer = fhir.put(f"/Task/{task_id}", json=wanted)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    Task.model_validate(body)
    assert body["status"] == "rejected"
    assert body["statusReason"]["coding"][0]["code"] == "patient-declined"
    assert body["statusReason"]["text"] == ("Patient or family declined: going to her "
                                            "daughter's in another state")
    assert ready(store, FHIR_VISIT) == []
    rejected = fhir.get("/Task", params={"status": "rejected", "code": PLAN_TASK}).json()
    assert str(task_id) in [e["resource"]["id"] for e in rejected.get("entry", [])]
    # a JSON Patch with words alone: the reason "other", in those words
    (patched_id,) = ready(store, PATCH_VISIT)
    etag = fhir.get(f"/Task/{patched_id}").headers["etag"]
    patched = fhir.patch(f"/Task/{patched_id}", json=[
        {"op": "replace", "path": "/status", "value": "rejected"},
        {"op": "add", "path": "/statusReason", "value": {"text": "family taking her to SNF"}}],
        headers={"Content-Type": "application/json-patch+json", "If-Match": etag})
    assert patched.status_code == 200, patched.text
    assert patched.json()["statusReason"] == {
        "coding": [{"system": "urn:engine:decline-reason", "code": "other",
                    "display": "Other (say why)"}],
        "text": "Other: family taking her to SNF"}
    assert ready(store, PATCH_VISIT) == []


def test_declining_home_on_the_web_withdraws_it_and_the_plan_with_nothing_left(server, store,
                                                                               fhir):
    stay = encounter_id(store, PROPOSAL_VISIT)
    with store.readers() as s:
        (proposal,) = s.scalars(select(RuleOutput.id).where(
            RuleOutput.encounter_id == stay, RuleOutput.kind == "proposal",
            RuleOutput.code == "home", RuleOutput.status == "active")).all()
    web = signed_in(server)
    try:
        page = web.get(f"/encounters/{stay}").text
        assert f'action="/proposals/{proposal}/decline"' in page
        unchosen = web.post(f"/proposals/{proposal}/decline", data={
            "csrf_token": csrf(page), "reason": "going to her daughter's"})
        assert unchosen.status_code == 422 and "choose one from the list" in unchosen.text
        assert 'value="going to her daughter&#39;s"' in unchosen.text  # kept as typed
        done = web.post(f"/proposals/{proposal}/decline", data={
            "csrf_token": csrf(page), "reason_code": "patient-declined",
            "reason": "going to her daughter's"})
        assert done.status_code == 303 and "done=proposal-declined" in done.headers["location"]
    finally:
        web.close()
    said = "declined by Maria Alvarez, RN: Patient or family declined: going to her daughter's"
    (task,) = plan_tasks(store, PROPOSAL_VISIT)  # home was the plan's only disposition
    assert task.task_status == "cancelled"
    revoked = fhir.get(f"/ServiceRequest/{proposal}").json()
    assert revoked["status"] == "revoked"
    assert {"text": f"revoked: {said}"} in revoked["note"]
    tick(store.sessions, store.rules.current, datetime.now(CHICAGO) + timedelta(hours=1),
         all_open=True)
    assert len(plan_tasks(store, PROPOSAL_VISIT)) == 1 and ready(store, PROPOSAL_VISIT) == []
