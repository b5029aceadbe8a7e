"""FHIR search as EHRs and FHIR libraries use it, against a real `engine serve` process, on
SQLite and PostgreSQL: fhirpy asks for every Task status FHIR defines, an EHR adds parameters
the server does not know, polls with _lastUpdated, asks for a few elements or for readable
JSON, and POSTs its search as a form. Every search the CapabilityStatement declares runs
through fhirpy (and some through fhirclient) and answers a valid searchset.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhirclient import client as fhirclient
from fhirclient.models.encounter import Encounter as FcEncounter
from fhirclient.models.patient import Patient as FcPatient
from fhirclient.models.task import Task as FcTask
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.storage.models import (
    Encounter,
    PatientIdentifier,
    PayerAuthorization,
    PayerCommunication,
    RuleOutput,
    UtilizationReview,
)
from engine.work.ur_record import authorizations, reviews
from engine.work.ur_record.inputs import AuthorizationInput, CommunicationInput, ReviewInput
from harness.launch import ServerProcess, start_server
from tests.conftest import BOTH_STORES, auth_headers, fresh_database, make_settings

CHICAGO = ZoneInfo("America/Chicago")
QUIET = {"ENGINE_ESCALATION_GRACE_MINUTES": "100000000", "ENGINE_CLOCK_INTERVAL_S": "3600"}
SOCIAL_RISK = "DG1|1||Z59.01^Sheltered homelessness^I10||20260101|A"
STRICT = {"Prefer": "handling=strict"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MRNS = [f"93000{n}" for n in range(5)]


def _stamp(when: datetime) -> str:
    return when.astimezone(CHICAGO).strftime("%Y%m%d%H%M")


@pytest.fixture(scope="module", params=BOTH_STORES)
def store(request, tmp_path_factory) -> Iterator[Runtime]:
    """Five Medicare inpatients on 4WEST admitted yesterday (tasks, scores, one flag)."""
    for url in fresh_database(request.param, tmp_path_factory.mktemp("search")):
        rt = Runtime.open(make_settings(url))
        admitted = _stamp(datetime.now(CHICAGO) - timedelta(hours=20))
        for n, mrn in enumerate(MRNS):
            receipt = rt.intake.hl7(adt(
                "A01", admitted, admit_time=admitted, mrn=mrn, visit=f"VS{n}",
                name=f"TESTSEARCH^ALPHA{n}^Q", location=f"4WEST^42{n}^A^GENHOSP",
                extra=[SOCIAL_RISK] if n == 0 else None))
            assert receipt.outcome == "accepted", receipt.reason
        ur_record(rt)
        yield rt
        rt.close()


def ur_record(rt: Runtime) -> None:
    """The first patient's UR record: a review, an authorization and a call to the payer."""
    now = rt.clock.now()
    nurse = Principal("test.ur-nurse", "user", "ur_nurse")
    with rt.sessions() as session, session.begin():
        stay = session.scalars(select(Encounter).where(Encounter.visit_number == "VS0")).one()
        reviews.record(session, stay, ReviewInput("initial", now.astimezone(CHICAGO).date(),
                                                  "inpatient", "met"), nurse, now, rt.site)
        auth = authorizations.record(session, stay, AuthorizationInput(
            "approved", reference_number="SEARCH-1", approved_days=2), nurse, now, rt.site)
        authorizations.communicate(session, stay, auth, CommunicationInput(
            now, "outbound", "portal", "Clinicals uploaded"), nurse, now)


def ur_rows(store: Runtime) -> tuple[int, int, int]:
    with store.readers() as session:
        return (session.scalars(select(UtilizationReview.id)).first() or 0,
                session.scalars(select(PayerAuthorization.id)).first() or 0,
                session.scalars(select(PayerCommunication.id)).first() or 0)


@pytest.fixture(scope="module")
def api(store) -> Iterator[ServerProcess]:
    srv = start_server(store.settings.database_url, mllp=False, env=QUIET)
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def smart(api):
    """fhirclient (SMART on FHIR's Python client) with the integration client's token."""
    app = fhirclient.FHIRClient(settings={"app_id": "engine-tests", "api_base": api.fhir + "/"})
    app.server.session.headers.update(auth_headers(api))
    return app.server


def patient_of(store: Runtime, mrn: str) -> int:
    with store.readers() as session:
        return session.scalars(select(PatientIdentifier.patient_id).where(
            PatientIdentifier.value == mrn)).one()


def encounter_of(store: Runtime, visit: str) -> Encounter:
    with store.readers() as session:
        return session.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()


def outputs(store: Runtime, kind: str) -> list[RuleOutput]:
    with store.readers() as session:
        return list(session.scalars(select(RuleOutput).where(RuleOutput.kind == kind)
                                    .order_by(RuleOutput.id)))


def searchset(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    valid(body)
    return body


def valid(body: dict) -> None:
    """A searchset Bundle whose every resource is valid FHIR R4."""
    Bundle.model_validate(body)
    assert body["type"] == "searchset"
    for entry in body.get("entry", ()):
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def self_params(body: dict) -> list[tuple[str, str]]:
    url = next(link["url"] for link in body["link"] if link["relation"] == "self")
    return [(k, v) for k, v in parse_qsl(urlsplit(url).query) if k != "_count"]


def ids(body: dict) -> list[str]:
    return [e["resource"]["id"] for e in body.get("entry", ())]


# -- codes FHIR defines but the engine never keeps -----------------------------------------------
def test_fhirpy_asking_for_every_open_task_status_gets_the_ready_ones(fhir, store):
    ready = {str(t.id) for t in outputs(store, "task") if t.task_status == "ready"}
    assert ready
    found = fhir.resources("Task").search(status="ready,requested,in-progress").fetch_all()
    assert {t["id"] for t in found} == ready
    assert fhir.resources("Task").search(status="requested").fetch_all() == []
    assert fhir.resources("Encounter").search(status="unknown").fetch_all() == []
    assert fhir.resources("Encounter").search(**{"class": "HH"}).fetch_all() == []
    assert fhir.resources("Flag").search(status="entered-in-error").fetch_all() == []
    assert fhir.resources("RiskAssessment").search(status="preliminary").fetch_all() == []
    assert fhir.resources("ServiceRequest").search(status="draft").fetch_all() == []


def test_a_code_outside_the_fhir_value_set_is_still_a_typo(http):
    for path, params in (("/Task", {"status": "done"}), ("/Encounter", {"status": "walking"}),
                         ("/Encounter", {"class": "NOPE"}), ("/Flag", {"status": "on"})):
        response = http.get(path, params=params)
        assert response.status_code == 400, (path, params)
        assert "value set" in response.json()["issue"][0]["diagnostics"]


# -- unknown parameters: lenient unless Prefer: handling=strict ----------------------------------
def test_unknown_parameters_are_ignored_and_left_out_of_the_self_link(http, store):
    pid = patient_of(store, MRNS[1])
    body = searchset(http.get("/Encounter", params=[
        ("patient", f"Patient/{pid}"), ("colour", "blue"), ("_sort", "date"),
        ("_include", "Encounter:practitioner"), ("_summary", "true"), ("status", "in-progress")]))
    assert ids(body) == [str(encounter_of(store, "VS1").id)]
    assert self_params(body) == [("patient", f"Patient/{pid}"), ("status", "in-progress")]
    lenient = http.get("/Patient", params={"nonsense": "x", "identifier": MRNS[1]},
                       headers={"Prefer": "handling=lenient"})
    assert ids(searchset(lenient)) == [str(pid)]


@pytest.mark.parametrize("params", [
    {"colour": "blue"}, {"_sort": "date"}, {"_include": "Encounter:practitioner"},
    {"_summary": "true"}, {"participant.identifier": "x"}])
def test_strict_handling_refuses_what_lenient_handling_ignores(http, fhir, api, params):
    response = http.get("/Encounter", params=params,
                        headers={"Prefer": "return=representation, handling=strict"})
    assert response.status_code == 400, response.text
    assert "handling=strict" in response.json()["issue"][0]["diagnostics"]
    strict = SyncFHIRClient(api.fhir, authorization=auth_headers(api)["Authorization"],
                            extra_headers=STRICT)
    with pytest.raises(FhirpyOutcome):
        strict.resources("Encounter").search(**params).fetch()


def test_an_unsupported_modifier_is_refused_whatever_the_handling(http):
    response = http.get("/Patient", params={"name:fuzzy": "TESTSEARCH"})
    assert response.status_code == 400
    assert "modifier :fuzzy" in response.json()["issue"][0]["diagnostics"]


# -- _lastUpdated: polling for changes -----------------------------------------------------------
def test_an_ehr_polls_for_changes_with_last_updated(http, store):
    newest = searchset(http.get("/Encounter", params={"_sort": "-_lastUpdated",
                                                      "_count": 1}))
    assert self_params(newest) == [("_sort", "-_lastUpdated")]
    seen = newest["entry"][0]["resource"]["meta"]["lastUpdated"]
    poll = {"_lastUpdated": f"gt{seen}", "_sort": "_lastUpdated"}
    assert ids(searchset(http.get("/Encounter", params=poll))) == []  # nothing new yet
    assert ids(searchset(http.get("/Encounter", params={"_lastUpdated": f"ge{seen}"}))) == \
        ids(newest)
    enc = {"id": str(encounter_of(store, "VS2").id)}
    time.sleep(0.05)
    transfer = adt("A02", _stamp(datetime.now(CHICAGO)), mrn=MRNS[2], visit="VS2",
                   name="TESTSEARCH^ALPHA2^Q", location="ICU^1^A^GENHOSP",
                   prior_location="4WEST^422^A^GENHOSP")
    assert store.intake.hl7(transfer).outcome == "accepted"
    changed = searchset(http.get("/Encounter", params=poll))
    assert ids(changed) == [enc["id"]]
    for partial in (f"ge{datetime.now(UTC).year}", f"le{datetime.now(UTC):%Y-%m-%d}",
                    f"lt{datetime.now(UTC).year + 1}"):
        assert enc["id"] in ids(searchset(http.get("/Encounter", params={
            "_lastUpdated": partial, "_count": 500}))), partial
    assert ids(searchset(http.get("/Encounter", params={"_lastUpdated": "lt2001"}))) == []
    for kind in ("Patient", "Task", "Flag", "RiskAssessment", "ServiceRequest"):
        newest = searchset(http.get(f"/{kind}", params={"_sort": "-_lastUpdated",
                                                        "_lastUpdated": "ge2020-01"}))
        stamps = [e["resource"]["meta"]["lastUpdated"] for e in newest.get("entry", ())]
        assert stamps == sorted(stamps, reverse=True), kind
        if kind != "ServiceRequest":
            assert stamps, kind


def test_audit_events_are_polled_by_last_updated_too(api):
    with api.client("admin") as admin:
        body = searchset(admin.get("/AuditEvent", params={"_lastUpdated": "ge2020",
                                                          "_sort": "-_lastUpdated",
                                                          "_count": 5}))
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in body["entry"]]
    assert stamps and stamps == sorted(stamps, reverse=True)


# -- _elements and _pretty -----------------------------------------------------------------------
def test_elements_returns_those_elements_the_mandatory_ones_and_says_subsetted(http):
    body = searchset(http.get("/Encounter", params={"identifier": "VS3",
                                                    "_elements": "subject,period"}))
    [enc] = [e["resource"] for e in body["entry"]]
    assert set(enc) == {"resourceType", "id", "meta", "status", "class", "subject", "period"}
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
            "code": "SUBSETTED", "display": "subsetted"} in enc["meta"]["tag"]
    assert ("_elements", "subject,period") in self_params(body)
    tasks = searchset(http.get("/Task", params={"_elements": "Task.owner", "_count": 3}))
    for entry in tasks["entry"]:
        assert set(entry["resource"]) <= {"resourceType", "id", "meta", "status", "intent",
                                          "owner"}


def test_pretty_json_for_people(http):
    compact = http.get("/Patient", params={"identifier": MRNS[0]})
    pretty = http.get("/Patient", params={"identifier": MRNS[0], "_pretty": "true"})
    assert pretty.status_code == 200 and pretty.headers["content-type"].startswith(
        "application/fhir+json")
    assert "\n  " in pretty.text and "\n" not in compact.text
    assert ids(pretty.json()) == ids(compact.json())


# -- POST [type]/_search -------------------------------------------------------------------------
def test_a_search_posted_as_a_form_merges_with_the_query_string(http, store, fhir):
    pid = patient_of(store, MRNS[3])
    body = searchset(http.post("/Encounter/_search?status=in-progress",
                               content=f"patient=Patient/{pid}&_count=1", headers=FORM))
    assert ids(body) == [str(encounter_of(store, "VS3").id)]
    assert self_params(body) == [("status", "in-progress"), ("patient", f"Patient/{pid}")]
    for kind in ("Patient", "Task", "Flag", "RiskAssessment", "ServiceRequest"):
        searchset(http.post(f"/{kind}/_search", content=f"patient={pid}&_count=2",
                            headers=FORM))
    by_mrn = searchset(http.post("/Patient/_search", data={"identifier": MRNS[3]}))
    assert ids(by_mrn) == [str(pid)]
    assert http.post("/Patient/_search").status_code == 200  # no parameters: every patient
    refused = http.post("/Patient/_search", json={"identifier": MRNS[3]})
    assert refused.status_code == 415
    assert refused.json()["resourceType"] == "OperationOutcome"


# -- what the acceptance searches use ------------------------------------------------------------
def test_the_searches_an_ehr_starts_with(http, store):
    pid = str(patient_of(store, MRNS[4]))
    visit = str(encounter_of(store, "VS4").id)
    for identifier in (MRNS[4], f"urn:engine:id:GENHOSP|{MRNS[4]}"):
        assert ids(searchset(http.get("/Patient", params={"identifier": identifier}))) == [pid]
    for params in ({"patient": f"Patient/{pid}"}, {"subject": f"Patient/{pid}"},
                   {"patient": pid}, {"identifier": "VS4"}, {"identifier": "VS4",
                                                             "status": "in-progress"}):
        assert ids(searchset(http.get("/Encounter", params=params))) == [visit], params
    seen, url = [], "/Encounter?status=in-progress&_count=2"
    while url:
        page = searchset(http.get(url))
        assert len(page.get("entry", ())) <= 2
        seen += ids(page)
        url = next((lnk["url"] for lnk in page["link"] if lnk["relation"] == "next"), "")
    assert len(seen) == len(set(seen)) == page["total"] >= 5


# -- every declared search, through real clients --------------------------------------------------
def samples(store: Runtime) -> dict[tuple[str, str], str]:
    """A value that matches something for every (type, parameter) the server has data for."""
    pid = patient_of(store, MRNS[0])
    enc = encounter_of(store, "VS0")
    task = next(t for t in outputs(store, "task") if t.patient_id == pid)
    out: dict[tuple[str, str], str] = {
        ("Patient", "_id"): str(pid), ("Patient", "identifier"): MRNS[0],
        ("Patient", "name"): "testsearch", ("Patient", "family"): "TESTSEARCH",
        ("Patient", "given"): "ALPHA0", ("Patient", "birthdate"): "le2000",
        ("Patient", "gender"): "female",
        ("Encounter", "_id"): str(enc.id), ("Encounter", "identifier"): "VS0",
        ("Encounter", "patient"): f"Patient/{pid}", ("Encounter", "subject"): str(pid),
        ("Encounter", "status"): "in-progress", ("Encounter", "class"): "IMP",
        ("Encounter", "location"): "4WEST", ("Encounter", "date"): "ge2020-01-01",
        ("AuditEvent", "_id"): "1", ("AuditEvent", "date"): "ge2020",
        ("AuditEvent", "agent"): "test.integration", ("AuditEvent", "patient"): str(pid),
        ("AuditEvent", "entity-type"): "Patient", ("AuditEvent", "action"): "E",
        ("AuditEvent", "outcome"): "0",
        ("Task", "owner"): task.owner or "", ("Task", "status"): "ready",
        ("Task", "priority"): task.priority or "routine", ("Task", "code"): task.code,
        ("Task", "focus"): f"Encounter/{enc.id}", ("Task", "period"): "ge2020",
        ("Flag", "status"): "active", ("Flag", "code"): "social-risk",
        ("RiskAssessment", "status"): "final", ("RiskAssessment", "method"): "lace",
        ("ServiceRequest", "status"): "active", ("ServiceRequest", "code"): "snf",
    }
    review, auth, call = ur_rows(store)
    out.update({("Observation", "_id"): f"review-{review}",
                ("Observation", "code"): "urn:engine:ur-record|utilization-review",
                ("Observation", "status"): "final", ("ClaimResponse", "_id"): str(auth),
                ("ClaimResponse", "status"): "active", ("ClaimResponse", "outcome"): "complete",
                ("ClaimResponse", "identifier"): "SEARCH-1", ("Communication", "_id"): str(call),
                ("Communication", "status"): "completed",
                ("Communication", "about"): f"ClaimResponse/{auth}"})
    ur_types = ("Observation", "ClaimResponse", "Communication")
    for kind, name in ((k, n) for k in ("Task", "Flag", "RiskAssessment", "ServiceRequest",
                                        *ur_types)
                       for n in ("patient", "subject")):
        out[(kind, name)] = f"Patient/{pid}"
    for kind in ("Task", "Flag", "RiskAssessment", "ServiceRequest"):
        out[(kind, "encounter")] = f"Encounter/{enc.id}"
        rows = outputs(store, {"Task": "task", "Flag": "flag", "RiskAssessment": "score",
                               "ServiceRequest": "proposal"}[kind])
        out[(kind, "_id")] = str(rows[0].id) if rows else "1"
    for kind in ur_types:
        out[(kind, "encounter")] = f"Encounter/{enc.id}"
    for kind in ("Patient", "Encounter", "AuditEvent", "Task", "Flag", "RiskAssessment",
                 "ServiceRequest", *ur_types):
        out[(kind, "_lastUpdated")] = "ge2020-01-01T00:00:00Z"
    for kind in ("Encounter", "Task", "Flag", "RiskAssessment", "ServiceRequest", *ur_types):
        for chain in ("patient.identifier", "subject.identifier"):
            out[(kind, chain)] = MRNS[0]
    return out


def declared(api: ServerProcess) -> list[tuple[str, str, str]]:
    statement = httpx.get(f"{api.fhir}/metadata").json()
    [rest] = statement["rest"]
    assert "handling=strict" in rest["documentation"]
    return [(r["type"], p["name"], p["type"]) for r in rest["resource"]
            if any(i["code"] == "search-type" for i in r["interaction"])
            for p in r.get("searchParam", ())]


def test_fhirpy_runs_every_search_the_capability_statement_declares(api, fhir, store):
    values = samples(store)
    params = declared(api)
    declared_here = {(kind, name) for kind, name, _ in params}
    assert declared_here <= set(values), f"add samples for {declared_here - set(values)}"
    assert set(values) <= declared_here, f"no longer declared: {set(values) - declared_here}"
    assert all(name == "_lastUpdated" and kind == "date" for t, name, kind in params
               if name.startswith("_") and name != "_id")
    assert {t for t, name, _ in params if name == "_lastUpdated"} == {t for t, _, _ in params}
    admin = SyncFHIRClient(api.fhir, authorization=auth_headers(api, "admin")["Authorization"])
    empty = []
    for kind, name, _ in params:
        client = admin if kind == "AuditEvent" else fhir
        search = client.resources(kind).search(**{name: values[(kind, name)]}).limit(5)
        body = search.fetch_raw()
        valid(dict(body))
        if not body.get("total"):
            empty.append((kind, name))
        for resource in search.fetch():
            assert resource["resourceType"] == kind
    # every declared search finds what the store has (no work started, no proposals yet)
    assert {k for k in empty if k[0] != "ServiceRequest"} <= {("Task", "period")}, empty


def test_fhirclient_searches_patients_encounters_and_tasks(smart, store):
    pid = str(patient_of(store, MRNS[0]))
    [patient] = list(FcPatient.where(struct={"identifier": MRNS[0]}).perform_resources_iter(smart))
    assert patient.id == pid and patient.name[0].family == "TESTSEARCH"
    visits = list(FcEncounter.where(struct={"patient": f"Patient/{pid}", "status":
                                            "in-progress"}).perform_resources_iter(smart))
    assert [e.identifier[0].value for e in visits] == ["VS0"]
    polled = list(FcEncounter.where(struct={"_lastUpdated": "ge2020-01-01",
                                            "_count": "2"}).perform_resources_iter(smart))
    assert len(polled) >= 5 and len({e.id for e in polled}) == len(polled)  # followed next
    ready = list(FcTask.where(struct={"status": "ready,requested", "patient": pid,
                                      "colour": "blue"}).perform_resources_iter(smart))
    assert ready and all(t.status == "ready" for t in ready)
