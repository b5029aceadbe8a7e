"""The audit trail as a privacy officer uses it: every read, search, change, refusal and
sign-in is recorded with who, what, when and the outcome, served as FHIR AuditEvent to
admins only, and no patient data reaches the logs."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from engine.hl7.build import adt
from engine.storage.models import AuditRecord, PatientIdentifier
from harness.launch import start_server, token_form
from tests.conftest import auth_headers
from tests.stream import send
from tests.test_fhir_inbound import ENC, PAT, encounter_json, patient_json, transaction

NAMES = ("TESTAUDITFAMILY", "TESTAUDITGIVEN")
MRN = "970001"


def admit(runtime, mrn: str = MRN, visit: str = "VAUD1") -> int:
    receipt = runtime.intake.hl7(adt("A01", "202603021015", mrn=mrn, visit=visit,
                                     name=f"{NAMES[0]}^{NAMES[1]}"), channel="file")
    assert receipt.outcome == "accepted", receipt.reason
    with runtime.readers() as session:
        return session.scalars(select(PatientIdentifier.patient_id)
                               .where(PatientIdentifier.value == mrn)).one()


def trail(runtime) -> list[AuditRecord]:
    with runtime.readers() as session:
        return list(session.scalars(select(AuditRecord).order_by(AuditRecord.id)))


def since(runtime, before: int) -> list[AuditRecord]:
    return [r for r in trail(runtime) if r.id > before]


def last_id(runtime) -> int:
    rows = trail(runtime)
    return rows[-1].id if rows else 0


def test_a_read_is_recorded_with_who_what_when_and_the_outcome(app_client):
    runtime = app_client.app.state.runtime
    pid = admit(runtime)
    headers = auth_headers(app_client, "case_manager")
    before = last_id(runtime)
    started = datetime.now(UTC) - timedelta(seconds=1)
    assert app_client.get(f"/fhir/Patient/{pid}", headers=headers).status_code == 200

    [row] = since(runtime, before)
    assert (row.actor, row.actor_kind, row.role) == ("test.case-manager", "user", "case_manager")
    assert (row.action, row.operation, row.resource_type, row.resource_id, row.patient_id) == (
        "R", "read", "Patient", str(pid), pid)
    assert (row.outcome, row.status_code, row.path) == ("0", 200, f"/fhir/Patient/{pid}")
    assert started <= row.at <= datetime.now(UTC)


def test_a_search_is_recorded_once_and_for_each_patient_it_showed(app_client):
    runtime = app_client.app.state.runtime
    pid = admit(runtime)
    admit(runtime, "970002", "VAUD2")
    headers = auth_headers(app_client, "ur_nurse")
    before = last_id(runtime)
    answer = app_client.get(f"/fhir/Encounter?patient=Patient/{pid}", headers=headers)
    assert answer.status_code == 200

    rows = since(runtime, before)
    assert [(r.operation, r.resource_type, r.resource_id is None) for r in rows][0] == (
        "search", "Encounter", True)
    shown = [r for r in rows if r.resource_id is not None]
    assert [r.patient_id for r in shown] == [pid]
    assert all(r.path == "/fhir/Encounter" for r in rows), "never the query string"


def test_a_write_is_recorded_for_each_resource_it_created(app_client):
    runtime = app_client.app.state.runtime
    headers = {"Content-Type": "application/fhir+json", **auth_headers(app_client)}
    before = last_id(runtime)
    bundle = transaction((PAT, patient_json("970010")),
                         (ENC, encounter_json("VAUD10", {"reference": PAT})))
    answer = app_client.post("/fhir", content=json.dumps(bundle), headers=headers)
    assert answer.status_code == 200, answer.text
    rows = since(runtime, before)
    assert [(r.action, r.operation, r.resource_type) for r in rows] == [
        ("C", "create", "Patient"), ("C", "create", "Encounter")]
    assert rows[0].patient_id == int(rows[0].resource_id)
    assert {r.actor for r in rows} == {"test.integration"}


def test_refusals_and_sign_ins_are_recorded_too(app_client):
    runtime = app_client.app.state.runtime
    pid = admit(runtime)
    before = last_id(runtime)
    assert app_client.get(f"/fhir/Patient/{pid}").status_code == 401
    assert app_client.get("/fhir/AuditEvent",
                          headers=auth_headers(app_client, "case_manager")).status_code == 403
    url = runtime.settings.database_url
    bad = {**token_form(url, "supervisor"), "password": "not-the-password"}
    assert app_client.post("/auth/token", data=bad).status_code == 400

    rows = since(runtime, before)
    anonymous = next(r for r in rows if r.status_code == 401)
    assert (anonymous.actor, anonymous.actor_kind, anonymous.outcome, anonymous.action,
            anonymous.resource_type) == ("anonymous", "anonymous", "4", "R", "Patient")
    forbidden = next(r for r in rows if r.status_code == 403)
    assert (forbidden.actor, forbidden.role, forbidden.outcome, forbidden.path) == (
        "test.case-manager", "case_manager", "4", "/fhir/AuditEvent")
    logins = [r for r in rows if r.operation == "login"]
    assert (logins[-1].actor, logins[-1].actor_kind, logins[-1].outcome) == (
        "test.supervisor", "user", "4")
    assert any(r.outcome == "0" and r.actor == "test.case-manager" for r in logins)


def test_nothing_is_served_when_the_audit_trail_cannot_be_written(app_client):
    runtime = app_client.app.state.runtime
    pid = admit(runtime)
    headers = auth_headers(app_client, "case_manager")

    class Broken:
        def __call__(self):
            raise RuntimeError("database gone")

    working, runtime.sessions = runtime.sessions, Broken()
    try:
        answer = app_client.get(f"/fhir/Patient/{pid}", headers=headers)
    finally:
        runtime.sessions = working
    assert answer.status_code == 503
    assert NAMES[0] not in answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_admins_read_the_trail_as_fhir_audit_events(app_client):
    runtime = app_client.app.state.runtime
    pid = admit(runtime)
    other = admit(runtime, "970003", "VAUD3")
    reader = auth_headers(app_client, "case_manager")
    for patient in (pid, other, pid):
        app_client.get(f"/fhir/Patient/{patient}", headers=reader)
    admin = auth_headers(app_client, "admin")

    answer = app_client.get(f"/fhir/AuditEvent?patient=Patient/{pid}", headers=admin)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/fhir+json")
    bundle = answer.json()
    Bundle.model_validate(bundle)
    events = [e["resource"] for e in bundle["entry"]]
    assert len(events) == 2
    for event in events:
        AuditEvent.model_validate(event)
        assert event["type"]["code"] == "rest"
        assert event["subtype"][0]["code"] == "read"
        assert event["action"] == "R" and event["outcome"] == "0"
        assert event["agent"][0]["who"]["identifier"]["value"] == "test.case-manager"
        assert event["agent"][0]["role"][0]["text"] == "case_manager"
        assert event["entity"][0]["what"]["reference"] == f"Patient/{pid}"

    one = app_client.get(f"/fhir/AuditEvent/{events[0]['id']}", headers=admin)
    assert one.status_code == 200 and one.json() == events[0]
    assert app_client.get("/fhir/AuditEvent/999999", headers=admin).status_code == 404

    # A date without a zone is the site's local date (between 00:00 and 06:00 UTC it is
    # still yesterday in Chicago).
    today = datetime.now(runtime.site.zone).date().isoformat()
    paged = app_client.get(f"/fhir/AuditEvent?agent=test.case-manager&date=ge{today}"
                           "&_count=2", headers=admin).json()
    assert paged["total"] >= 3 and len(paged["entry"]) == 2
    assert any(link["relation"] == "next" for link in paged["link"])
    logins = app_client.get("/fhir/AuditEvent?action=E&outcome=0", headers=admin).json()
    sign_ins = [e["resource"] for e in logins["entry"]
                if e["resource"]["type"]["code"] == "110114"]
    assert sign_ins and sign_ins[0]["subtype"][0]["code"] == "110122"
    for entry in logins["entry"]:
        AuditEvent.model_validate(entry["resource"])
    assert app_client.get("/fhir/AuditEvent?action=X", headers=admin).status_code == 400


def test_a_case_manager_cannot_read_the_trail(app_client):
    headers = auth_headers(app_client, "case_manager")
    assert app_client.get("/fhir/AuditEvent", headers=headers).status_code == 403
    assert app_client.get("/fhir/AuditEvent/1", headers=headers).status_code == 403


def test_the_capability_statement_lists_audit_event_and_oauth(app_client):
    statement = app_client.get("/fhir/metadata").json()
    [rest] = statement["rest"]
    audit = next(r for r in rest["resource"] if r["type"] == "AuditEvent")
    assert {i["code"] for i in audit["interaction"]} == {"read", "search-type"}
    assert {p["name"] for p in audit["searchParam"]} >= {"date", "agent", "patient"}
    assert rest["security"]["service"][0]["coding"][0]["code"] == "OAuth"


@pytest.fixture
def chatty_server(database_url):
    """A server logging at INFO, with MLLP, as an operator would run it."""
    srv = start_server(database_url, env={"ENGINE_LOG_LEVEL": "DEBUG"})
    yield srv
    srv.kill()


def test_no_patient_data_reaches_the_logs(chatty_server):
    srv = chatty_server
    mrns = ("970101", "970102")
    with socket.create_connection(("127.0.0.1", srv.mllp_port), timeout=10) as sock:
        for n, mrn in enumerate(mrns):
            ack = send(sock, adt("A01", "202603021015", mrn=mrn, visit=f"VLOG{n}",
                                 name=f"{NAMES[0]}^{NAMES[1]}"))
            assert b"MSA|AA|" in ack
        assert b"MSA|A" in send(sock, adt("A02", "202603021115", mrn=mrns[0],
                                          visit="VLOGX", name=f"{NAMES[0]}^{NAMES[1]}"))
    fhir = srv.fhir
    with httpx.Client(base_url=fhir, timeout=30) as http:
        headers = auth_headers(srv, "case_manager")
        assert http.get(f"/Patient?name={NAMES[0]}", headers=headers).status_code == 200
        assert http.get(f"/Patient?identifier={mrns[0]}", headers=headers).status_code == 200
        assert http.get(f"/Patient?nonsense={NAMES[1]}", headers={
            **headers, "Prefer": "handling=strict"}).status_code == 400
        assert http.get(f"/Patient?name={NAMES[0]}").status_code == 401
        assert http.post("/Encounter", headers={**auth_headers(srv),
                                                "Content-Type": "application/fhir+json"},
                         content=json.dumps(encounter_json("VLOG9", {
                             "reference": "Patient/999999"}))).status_code in (404, 422)
        http.post(f"{srv.base_url}/auth/token", data={
            "grant_type": "password", "username": NAMES[0], "password": mrns[1]})
        http.post(f"{srv.base_url}/login", data={"username": NAMES[1], "password": mrns[0]})
    srv.stop()
    logged = "".join(srv.output)
    assert "ready" in logged, "the output was captured"
    for secret in (*NAMES, *mrns):
        assert secret not in logged
