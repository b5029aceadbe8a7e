"""Tasks, flags, scores and proposals over FHIR, against a real server process, on SQLite and
PostgreSQL: the EHR searches a case manager's work, reads the evidence, and records work
done, without ever overwriting someone else's change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from fhirpy import SyncFHIRClient
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.hl7.build import adt
from engine.storage.models import RuleOutput, TaskEvent
from tests.conftest import BOTH_STORES, fresh_database, make_settings
from tests.conftest import start_server as start

CHICAGO = ZoneInfo("America/Chicago")
SOCIAL_RISK = "DG1|1||Z59.01^Sheltered homelessness^I10||20260101|A"
QUIET = {"ENGINE_ESCALATION_GRACE_MINUTES": "100000000", "ENGINE_CLOCK_INTERVAL_S": "3600"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def _stamp(when: datetime) -> str:
    return when.astimezone(CHICAGO).strftime("%Y%m%d%H%M")


@pytest.fixture(scope="module", params=BOTH_STORES)
def store(request, tmp_path_factory) -> Iterator[Runtime]:
    """Six Medicare inpatients on 4WEST admitted yesterday; one has a social risk flag."""
    for url in fresh_database(request.param, tmp_path_factory.mktemp("tasks")):
        rt = Runtime.open(make_settings(url))
        admitted = _stamp(datetime.now(CHICAGO) - timedelta(hours=20))
        for n in range(6):
            extra = [SOCIAL_RISK] if n == 0 else None
            rt.intake.hl7(adt("A01", admitted, admit_time=admitted, mrn=f"91000{n}",
                              visit=f"VT{n}", location=f"4WEST^41{n}^A^GENHOSP", extra=extra))
        yield rt
        rt.close()


@pytest.fixture(scope="module")
def http(store) -> Iterator[httpx.Client]:
    """`engine serve` on the store (clock and escalation quiet), and an HTTP client on /fhir."""
    server = start(store.settings.database_url, mllp=False, env=QUIET)
    try:
        with server.client() as client:
            yield client
    finally:
        server.kill()


def tasks_of(store: Runtime, owner: str) -> list[RuleOutput]:
    with store.readers() as s:
        return list(s.scalars(select(RuleOutput).where(
            RuleOutput.kind == "task", RuleOutput.owner == owner).order_by(RuleOutput.id)))


def search_all(http: httpx.Client, url: str, **params) -> list[dict]:
    """Every entry of a search, following next links; each page must be a valid Bundle."""
    found: list[dict] = []
    response = http.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        Bundle.model_validate(page)
        found += page.get("entry", [])
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not following:
            return found
        response = http.get(following[0])


def fresh(http: httpx.Client, tid: int | str) -> tuple[dict, str]:
    response = http.get(f"/Task/{tid}")
    assert response.status_code == 200, response.text
    return response.json(), response.headers["etag"]


def test_a_case_managers_tasks_page_by_owner(http, store):
    expected = [str(t.id) for t in tasks_of(store, "cm.alvarez")]
    assert len(expected) >= 6
    entries = search_all(http, "/Task", owner="cm.alvarez", _count=2)
    assert [e["resource"]["id"] for e in entries] == expected
    for entry in entries:
        task = entry["resource"]
        Task.model_validate(task)
        assert task["owner"]["identifier"]["value"] == "cm.alvarez"
        assert task["owner"]["display"] == "Maria Alvarez, RN"
        assert task["intent"] == "order" and task["for"]["reference"].startswith("Patient/")
    same = search_all(http, "/Task", owner="Practitioner/cm.alvarez", status="ready,in-progress")
    assert {e["resource"]["id"] for e in same} <= set(expected)


def test_a_task_carries_its_rule_due_time_and_evidence(http, store):
    im = next(t for t in tasks_of(store, "cm.alvarez") if t.code == "im-notice")
    task, etag = fresh(http, im.id)
    assert etag == f'W/"{im.version}"' and task["meta"]["versionId"] == str(im.version)
    assert task["status"] == "ready" and task["priority"] == "routine"
    assert task["code"]["coding"][0]["code"] == "im-notice"
    assert task["restriction"]["period"]["end"].endswith("Z")
    assert task["reasonCode"]["coding"][0]["code"] == "notice-im-first"
    assert task["focus"] == task["encounter"] == {"reference": f"Encounter/{im.encounter_id}"}
    facts = {i["type"]["text"]: i for i in task["input"]}
    assert facts["payer_class"]["valueString"] == "medicare"
    rule = {e["url"]: e.get("valueString") for e in task["extension"][0]["extension"]}
    assert rule["rule"] == "notice-im-first" and rule["ruleset"] == "utilization_review"


def test_sorting_by_due_and_priority_pages_in_order(http, store):
    mine = tasks_of(store, "cm.baker")
    by_due = search_all(http, "/Task", owner="cm.baker", _sort="due", _count=2)
    expected = [str(t.id) for t in sorted(mine, key=lambda t: (t.due_at is None, t.due_at,
                                                                t.id))]
    assert [e["resource"]["id"] for e in by_due] == expected
    newest = search_all(http, "/Task", owner="cm.baker", _sort="-_lastUpdated,priority",
                        _count=3)
    assert sorted(e["resource"]["id"] for e in newest) == sorted(expected)
    rank = {"stat": 0, "asap": 1, "urgent": 2, "routine": 3}
    by_priority = search_all(http, "/Task", _sort="priority", _count=4, status="ready")
    ranks = [rank[e["resource"]["priority"]] for e in by_priority]
    assert ranks == sorted(ranks) and len(by_priority) > 4


def test_include_brings_the_patient_and_the_encounter(http, store):
    im = next(t for t in tasks_of(store, "cm.alvarez") if t.code == "im-notice")
    page = http.get("/Task", params=[("_id", str(im.id)), ("_include", "Task:patient"),
                                     ("_include", "Task:encounter")]).json()
    Bundle.model_validate(page)
    kinds = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in page["entry"]]
    assert kinds == [("match", "Task"), ("include", "Patient"), ("include", "Encounter")]
    assert page["total"] == 1
    assert page["entry"][1]["fullUrl"].endswith(f"/Patient/{im.patient_id}")


def test_searches_refuse_what_they_do_not_understand(http):
    for params, words in [({"status": "done"}, "status='done'"),
                          ({"_sort": "title"}, "_sort='title'"),
                          ({"_include": "Task:owner"}, "_include='Task:owner'"),
                          ({"priority": "high"}, "priority='high'")]:
        response = http.get("/Task", params=params, headers={"Prefer": "handling=strict"})
        assert response.status_code == 400, params
        assert words in response.json()["issue"][0]["diagnostics"]


def test_flags_scores_and_proposals_are_valid_fhir(http, store):
    flagged = http.get("/Flag", params={"code": "social-risk"}).json()
    flags = [e["resource"] for e in flagged.get("entry", [])]
    assert len(flags) == 1 and flags[0]["status"] == "active"
    Flag.model_validate(flags[0])
    scores = search_all(http, "/RiskAssessment", method="lace")
    assert len(scores) == 6
    lace = scores[0]["resource"]
    RiskAssessment.model_validate(lace)
    assert lace["prediction"][0]["extension"][0]["valueDecimal"] >= 0
    assert any(b["display"].startswith("Length of stay: ") for b in lace["basis"])
    proposals = search_all(http, "/ServiceRequest", patient=flags[0]["subject"]["reference"])
    assert proposals
    for entry in proposals:
        ServiceRequest.model_validate(entry["resource"])
        assert entry["resource"]["intent"] == "proposal"
    read = http.get(f"/ServiceRequest/{proposals[0]['resource']['id']}")
    assert read.status_code == 200 and read.headers["etag"].startswith('W/"')
    assert http.get(f"/Flag/{proposals[0]['resource']['id']}").status_code == 404


def test_put_changes_status_and_if_match_stops_lost_updates(http, store):
    target = [t for t in tasks_of(store, "cm.alvarez") if t.task_status == "ready"][0]
    task, etag = fresh(http, target.id)
    task["status"] = "in-progress"
    started = http.put(f"/Task/{target.id}", json=task, headers={"If-Match": etag})
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in-progress"
    assert started.headers["etag"] == f'W/"{int(task["meta"]["versionId"]) + 1}"'
    # a second client still holding the old version loses, and nothing changes
    task["status"] = "on-hold"
    task["statusReason"] = {"text": "family meeting tomorrow"}
    stale = http.put(f"/Task/{target.id}", json=task, headers={"If-Match": etag})
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert fresh(http, target.id)[0]["status"] == "in-progress"


def test_put_refuses_what_the_rules_own_and_what_the_lifecycle_forbids(http, store):
    target = [t for t in tasks_of(store, "cm.baker") if t.task_status == "ready"][0]
    task, etag = fresh(http, target.id)
    edited = {**task, "description": "something else", "priority": "stat"}
    refused = http.put(f"/Task/{target.id}", json=edited)
    assert refused.status_code == 422
    assert "description, priority" in refused.json()["issue"][0]["diagnostics"]
    bare = {**task, "status": "completed"}  # no outcome given
    assert http.put(f"/Task/{target.id}", json=bare).status_code == 422
    reopened = {**task, "status": "on-hold"}
    held = http.put(f"/Task/{target.id}", json=reopened)
    assert held.status_code == 200
    back = {**held.json(), "status": "completed",
            "output": [{"type": {"text": "outcome"}, "valueString": "done"}]}
    illegal = http.put(f"/Task/{target.id}", json=back)  # on-hold cannot complete
    assert illegal.status_code == 422
    assert "on-hold" in illegal.json()["issue"][0]["diagnostics"]
    owner = {**held.json(), "owner": {"identifier": {"system": "urn:engine:user",
                                                      "value": "cm.alvarez"}}}
    forbidden = http.put(f"/Task/{target.id}", json=owner)  # the EHR may not reassign
    assert forbidden.status_code == 403
    assert http.put("/Task/999999", json=task).status_code == 404
    wrong_type = http.put(f"/Task/{target.id}", content=b"{}",
                          headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415


def test_json_patch_adds_a_note_and_completes(http, store):
    target = [t for t in tasks_of(store, "cm.baker") if t.task_status == "ready"
              and t.code != "confirm-discharge-plan"][-1]  # that one needs a disposition
    _task, etag = fresh(http, target.id)
    patch = [
        {"op": "test", "path": "/status", "value": "ready"},
        {"op": "replace", "path": "/status", "value": "completed"},
        {"op": "add", "path": "/output",
         "value": [{"type": {"text": "outcome"}, "valueString": "Reviewed with the family"}]},
        {"op": "add", "path": "/note", "value": [{"text": "Daughter is the contact"}]},
    ]
    done = http.patch(f"/Task/{target.id}", json=patch, headers={**JSON_PATCH, "If-Match": etag})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["status"] == "completed" and body["output"][0]["valueString"] == (
        "Reviewed with the family")
    assert [n["text"] for n in body["note"]] == ["Daughter is the contact"]
    assert body["note"][0]["authorString"] == "test.integration"
    failing = http.patch(f"/Task/{target.id}", json=[
        {"op": "test", "path": "/status", "value": "ready"}], headers=JSON_PATCH)
    assert failing.status_code == 422
    with store.readers() as s:
        steps = [e.action for e in s.scalars(select(TaskEvent).where(
            TaskEvent.output_id == target.id).order_by(TaskEvent.id))]
        row = s.get(RuleOutput, target.id)
    assert steps == ["created", "note", "completed"]
    assert (row.status, row.task_status, row.outcome) == ("completed", "completed",
                                                          "Reviewed with the family")


def test_the_capability_statement_lists_the_work_resources(http):
    statement = http.get("/metadata").json()
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert [i["code"] for i in served["Task"]["interaction"]] == [
        "read", "search-type", "update", "patch"]
    assert served["Task"]["searchInclude"] == ["Task:patient", "Task:encounter"]
    assert {"owner", "status", "priority", "code", "patient", "encounter", "focus",
            "period"} <= {p["name"] for p in served["Task"]["searchParam"]}
    for name in ("Flag", "RiskAssessment", "ServiceRequest"):
        assert [i["code"] for i in served[name]["interaction"]] == ["read", "search-type"]


def test_fhirpy_finds_a_case_managers_work_and_completes_it(http, store):
    client = SyncFHIRClient(str(http.base_url).rstrip("/"),
                            authorization=http.headers["Authorization"])
    mine = client.resources("Task").search(owner="cm.alvarez", status="ready").sort(
        "due").limit(10).fetch()
    assert mine and all(t["owner"]["identifier"]["value"] == "cm.alvarez" for t in mine)
    task = mine[0]
    version = int(task["meta"]["versionId"])
    task["status"] = "completed"
    task["output"] = [{"type": {"text": "outcome"}, "valueString": "Done at the bedside"}]
    task.save()  # PUT with the whole resource
    again = client.reference("Task", task.id).to_resource()
    assert again["status"] == "completed" and again["meta"]["versionId"] == str(version + 1)
    # fhirpy's partial save is a merge patch
    other = mine[1]
    other["status"] = "in-progress"
    other.save(fields=["status"])
    assert client.reference("Task", other.id).to_resource()["status"] == "in-progress"
    with store.readers() as s:
        assert s.get(RuleOutput, int(task.id)).status == "completed"


def test_sorted_pages_link_back_to_the_page_before(http):
    first = http.get("/Task", params={"owner": "cm.baker", "_sort": "-priority,due",
                                      "_count": 2}).json()
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    second = http.get(links["next"]).json()
    back = {link["relation"]: link["url"] for link in second["link"]}["previous"]
    again = http.get(back).json()
    assert [e["resource"]["id"] for e in again["entry"]] == [
        e["resource"]["id"] for e in first["entry"]]


def test_the_worklist_as_json(http, store):
    api = str(http.base_url).removesuffix("/fhir/").removesuffix("/fhir") + "/api/worklist"
    page = http.get(api, params={"owner": "cm.alvarez"}).json()
    open_tasks = [t for t in tasks_of(store, "cm.alvarez")
                  if t.task_status in ("ready", "in-progress", "on-hold")]
    assert page["total"] == len(open_tasks) and page["owner"] == "cm.alvarez"
    assert {i["task_id"] for i in page["items"]} == {t.id for t in open_tasks}
    assert page["items"][0]["visit_number"].startswith("VT")
    refused = http.get(api, params={"status": "done"})
    assert refused.status_code == 400
    assert refused.json()["resourceType"] == "OperationOutcome"
