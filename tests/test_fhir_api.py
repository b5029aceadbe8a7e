"""The FHIR R4 API as an EHR and an interface analyst meet it: a real `engine serve`
process, real HTTP (httpx) and a real FHIR client (fhirpy), on SQLite and PostgreSQL.

One server per database serves the whole module; each story uses its own MRNs and visit
numbers so the stories do not see each other.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOutcome
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.fhir import vocabulary as v
from engine.hl7 import build
from engine.storage.models import Encounter, InboundMessage, Patient, PatientIdentifier
from harness.launch import ServerProcess, start_server
from tests.conftest import BOTH_STORES, auth_headers, fresh_database, make_settings
from tests.test_fhir_inbound import (
    ENC,
    MRN_SYSTEM,
    PAT,
    encounter_json,
    observation_bundle,
    patient_json,
    transaction,
)

FHIR_JSON = "application/fhir+json"
BODY_LIMIT = 200_000
_control = itertools.count(1)


# -- synthetic HL7 for the state the reads and searches look at ----------------------------------
def hl7(trigger: str, when: str, mrn: str, visit: str, *, family: str = "TESTPATIENT",
        klass: str = "I", ptype: str = "", location: str = "4WEST^412^A^GENHOSP",
        prior: str = "", disposition: str = "", discharge: str = "",
        segments: tuple[str, ...] = ()) -> bytes:
    return build.adt(trigger, when, mrn=mrn, visit=visit, name=f"{family}^SAMPLE^Q",
                     patient_class=klass, patient_type=ptype, location=location,
                     prior_location=prior, admission_type="", disposition=disposition,
                     admit_time=when if trigger in ("A01", "A04") else "",
                     discharge_time=discharge, extra=list(segments), plan="",
                     control_id=f"FA{next(_control):06d}")


def merge(when: str, mrn: str, prior_mrn: str) -> bytes:
    return build.merge(when, mrn=mrn, prior_mrn=prior_mrn, name="TESTSURVIVOR^SAMPLE",
                       control_id=f"FA{next(_control):06d}")


DG1 = "DG1|1||S72.001A^Fracture of neck of right femur^I10||20260302|A"
IN1 = "IN1|1|MCR001|CMS|PAYER MCR001"
STATE = [
    # a hip fracture: admitted to 4WEST, transferred to ICU, discharged to a SNF
    hl7("A01", "20260302101500", "810001", "VA1", family="TESTHIPFX", segments=(DG1, IN1)),
    hl7("A02", "20260303090000", "810001", "VA1", family="TESTHIPFX",
        location="ICU^2^B^GENHOSP", prior="4WEST^412^A^GENHOSP"),
    hl7("A03", "20260305120000", "810001", "VA1", family="TESTHIPFX",
        location="ICU^2^B^GENHOSP", disposition="03", discharge="20260305120000"),
    # chest pain in observation
    hl7("A04", "20260304080000", "810002", "VA2", family="TESTOBSERVE", klass="O", ptype="OBS",
        location="ED^1^A^GENHOSP"),
    # a duplicate record merged into the survivor
    hl7("A01", "20260301080000", "810003", "VA3", family="TESTMERGED"),
    merge("20260301090000", "810004", "810003"),
    # seven inpatients on one unit, for paging
    *(hl7("A01", "20260306080000", f"82000{i}", f"VP{i}", family="TESTPAGING",
          location=f"PAGING^{i}^A^GENHOSP") for i in range(1, 8)),
    # the patient whose visit the EHR will post under a newer MRN (replay story)
    hl7("A01", "20260307080000", "840001", "VQ1", family="TESTREPLAY"),
]


# -- one database and one server per module ----------------------------------------------------
@pytest.fixture(scope="module", params=BOTH_STORES)
def db_url(request, tmp_path_factory) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path_factory.mktemp("fhir"))


@pytest.fixture(scope="module")
def store(db_url) -> Iterator[Runtime]:
    """The same database, opened in the test process: HL7 state in, quarantine rows out."""
    rt = Runtime.open(make_settings(db_url))
    for message in STATE:
        receipt = rt.intake.hl7(message, channel="file")
        assert receipt.outcome == "accepted", receipt.reason
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def api(db_url, store) -> Iterator[ServerProcess]:
    srv = start_server(db_url, mllp=False, env={"ENGINE_MAX_BODY_BYTES": str(BODY_LIMIT)})
    yield srv
    srv.kill()


def patient_id(store: Runtime, mrn: str) -> int:
    with store.sessions() as session:
        return session.scalars(select(PatientIdentifier.patient_id).where(
            PatientIdentifier.value == mrn)).one()


def encounter_row(store: Runtime, visit: str) -> Encounter:
    with store.sessions() as session:
        return session.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()


def last_inbound(store: Runtime) -> InboundMessage:
    with store.sessions() as session:
        return session.scalars(select(InboundMessage).order_by(InboundMessage.id.desc())).first()


def post(http: httpx.Client, path: str, doc: dict | bytes, **headers: str) -> httpx.Response:
    content = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return http.post(path, content=content, headers={"Content-Type": FHIR_JSON, **headers})


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", ())]


def diagnostics(response: httpx.Response) -> str:
    body = response.json()
    OperationOutcome.model_validate(body)
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return body["issue"][0]["diagnostics"]


# -- discovery and security ------------------------------------------------------------------
def test_the_capability_statement_is_public_and_describes_the_api(api):
    response = httpx.get(f"{api.fhir}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    [rest] = statement["rest"]
    by_type = {r["type"]: r for r in rest["resource"]}
    assert {i["code"] for i in by_type["Encounter"]["interaction"]} == {
        "read", "vread", "search-type", "create", "update"}
    assert {p["name"] for p in by_type["Encounter"]["searchParam"]} >= {
        "identifier", "patient", "status", "class", "location", "date"}
    assert {p["name"] for p in by_type["Patient"]["searchParam"]} >= {"identifier", "name"}
    assert [i["code"] for i in rest["interaction"]] == ["transaction", "batch"]


def test_patient_data_needs_the_bearer_token(api, store):
    before = last_inbound(store).id
    calls = [("GET", "/Patient"), ("GET", "/Patient/1"), ("GET", "/Encounter?status=finished"),
             ("GET", "/Encounter/1"), ("POST", "/Encounter"), ("PUT", "/Encounter/1"),
             ("POST", "")]
    for token in (None, "Bearer wrong-token"):
        headers = {"Content-Type": FHIR_JSON, **({"Authorization": token} if token else {})}
        for method, path in calls:
            response = httpx.request(method, api.fhir + path, headers=headers,
                                     content=json.dumps(observation_bundle()))
            assert response.status_code == 401, (method, path)
            assert "token" in diagnostics(response)
    assert last_inbound(store).id == before, "anonymous input must not be stored"


# -- reads ---------------------------------------------------------------------------------------
def test_an_hl7_admitted_patient_reads_back_as_fhir(http, fhir, store):
    pid = patient_id(store, "810001")
    patient = fhir.get("Patient", str(pid))
    FhirPatient.model_validate(dict(patient))
    assert patient["identifier"][0] == {
        "use": "usual", "type": {"coding": [{"system": v.V2_IDENTIFIER_TYPE, "code": "MR"}]},
        "system": MRN_SYSTEM, "value": "810001", "assigner": {"display": "GENHOSP"}}
    assert patient["name"] == [{"use": "official", "family": "TESTHIPFX",
                                "given": ["SAMPLE", "Q"]}]
    assert (patient["gender"], patient["birthDate"], patient["active"]) == (
        "female", "1945-06-12", True)
    assert patient["address"][0]["city"] == "SPRINGFIELD"
    response = http.get(f"/Patient/{pid}")
    assert response.headers["etag"] == f'W/"{patient["meta"]["versionId"]}"'
    assert response.headers["content-type"].startswith(FHIR_JSON)


def test_a_transfer_and_discharge_read_as_location_history(fhir, store):
    row = encounter_row(store, "VA1")
    enc = dict(fhir.get("Encounter", str(row.id)))
    FhirEncounter.model_validate(enc)
    assert enc["status"] == "finished"
    assert enc["class"]["code"] == "IMP"
    assert enc["subject"] == {"reference": f"Patient/{patient_id(store, '810001')}"}
    assert enc["period"] == {"start": "2026-03-02T16:15:00.000Z",
                             "end": "2026-03-05T18:00:00.000Z"}
    assert [(loc["location"]["display"], loc["status"]) for loc in enc["location"]] == [
        ("4WEST 412-A", "completed"), ("ICU 2-B", "completed")]
    assert enc["location"][1]["period"] == {"start": "2026-03-03T15:00:00.000Z",
                                            "end": "2026-03-05T18:00:00.000Z"}
    disposition = enc["hospitalization"]["dischargeDisposition"]["coding"]
    assert {(c["system"], c["code"]) for c in disposition} == {
        (v.NUBC_DISCHARGE, "03"), (v.DISCHARGE_DISPOSITION, "snf")}
    [condition] = enc["contained"]
    assert condition["code"]["coding"][0] == {
        "system": v.ICD10CM, "code": "S72.001A", "display": "Fracture of neck of right femur"}
    assert enc["diagnosis"][0]["condition"] == {"reference": f"#{condition['id']}"}
    assert enc["diagnosis"][0]["use"]["coding"][0]["code"] == "AD"


def test_a_merged_patient_is_inactive_and_points_at_the_survivor(fhir, store):
    survivor = patient_id(store, "810004")
    with store.sessions() as session:
        merged = session.scalars(select(Patient.id).where(
            Patient.merged_into_id == survivor)).one()
    old = dict(fhir.get("Patient", str(merged)))
    FhirPatient.model_validate(old)
    assert old["active"] is False
    assert old["link"] == [{"other": {"reference": f"Patient/{survivor}"},
                            "type": "replaced-by"}]
    new = dict(fhir.get("Patient", str(survivor)))
    assert new["link"] == [{"other": {"reference": f"Patient/{merged}"}, "type": "replaces"}]
    visit = encounter_row(store, "VA3")
    assert fhir.get("Encounter", str(visit.id))["subject"]["reference"] == f"Patient/{survivor}"


def test_unknown_ids_types_and_interactions_answer_with_outcomes(http):
    for path in ("/Patient/99999999", "/Patient/not-a-number", "/Encounter/0",
                 "/Encounter/9223372036854775807", "/MedicationRequest?code=1234-5"):
        response = http.get(path)
        assert response.status_code == 404, path
        assert diagnostics(response)
    for params in ({"status": "walking"}, {"class": "NOPE"}):
        refused = http.get("/Encounter", params=params)  # a typo must not look like "nobody"
        assert refused.status_code == 400, params
        assert diagnostics(refused)
    none = http.get("/Encounter", params={"_id": "99999999999999"})
    assert none.status_code == 200 and none.json()["total"] == 0 and "entry" not in none.json()
    assert http.get("/Observation", params={"code": "718-7"}).status_code == 200  # searched
    response = http.delete("/Encounter/1")
    assert response.status_code == 405
    assert "metadata" in diagnostics(response)


# -- search --------------------------------------------------------------------------------------
def test_a_patient_is_found_by_mrn_however_the_system_is_spelled(fhir, store):
    pid = str(patient_id(store, "810001"))
    for identifier in (f"{MRN_SYSTEM}|810001", "GENHOSP|810001", "810001"):
        found = fhir.resources("Patient").search(identifier=identifier).fetch_all()
        assert [p["id"] for p in found] == [pid], identifier
    assert fhir.resources("Patient").search(identifier="urn:other|810001").fetch_all() == []
    by_name = fhir.resources("Patient").search(name="testhip", gender="female",
                                               birthdate="1945-06-12").fetch_all()
    assert [p["id"] for p in by_name] == [pid]
    assert fhir.resources("Patient").search(birthdate="gt1945-06-12",
                                            name="testhip").fetch_all() == []


def test_encounters_are_found_by_patient_status_class_location_and_identifier(fhir, store):
    hip, obs = encounter_row(store, "VA1"), encounter_row(store, "VA2")
    encounters = fhir.resources("Encounter")

    def found(**params) -> set[str]:
        return {e["id"] for e in encounters.search(**params).fetch_all()}

    assert found(patient=f"Patient/{hip.patient_id}") == {str(hip.id)}
    assert found(patient=str(hip.patient_id), status="finished") == {str(hip.id)}
    assert found(patient=str(hip.patient_id), status="in-progress") == set()
    assert found(**{"class": "OBSENC"}, patient=str(obs.patient_id)) == {str(obs.id)}
    assert found(**{"class": f"{v.V3_ACT_CODE}|OBSENC"}, identifier="VA2") == {str(obs.id)}
    assert found(location="ICU", identifier="VA1") == {str(hip.id)}  # a past location counts
    assert found(identifier="GENHOSP|VA1", status="in-progress,finished") == {str(hip.id)}
    assert len(found(location="PAGING")) >= 7


@pytest.mark.parametrize(("date", "matches"), [
    ("2026-03", True),            # the stay lies within March
    ("2026-03-02", False),        # ... but not within its first day
    ("ge2026-03-05", True),       # it ends on the 5th
    ("ge2026-03-06", False),
    ("gt2026-03-04", True),
    ("le2026-03-02", True),       # it starts on the 2nd (local time)
    ("lt2026-03-02", False),
    ("lt2026-03-02T10:30:00-06:00", True),
    ("sa2026-03-01", True),
    ("eb2026-03-06", True),
    ("ne2026-03", False),
])
def test_the_date_parameter_compares_the_period_of_stay(fhir, date, matches):
    found = fhir.resources("Encounter").search(identifier="VA1", date=date).fetch_all()
    assert bool(found) is matches


def test_paging_visits_every_match_once_even_while_new_admissions_arrive(http, fhir, store):
    first = http.get("/Encounter", params={"location": "PAGING", "_count": 3}).json()
    Bundle.model_validate(first)
    total = first["total"]
    assert total >= 7 and len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links and "next" in links
    # an admission arrives between pages: keyset paging puts it at the end, shifting nothing
    pid = patient_id(store, "820001")
    late = encounter_json("VP-LATE", {"reference": f"Patient/{pid}"}, location="PAGING 9-A")
    assert post(http, "/Encounter", late).status_code == 201
    seen, page = ids(first), first
    while "next" in links:
        page = httpx.get(links["next"], headers=http.headers).json()
        links = {link["relation"]: link["url"] for link in page["link"]}
        seen += ids(page)
    assert len(seen) == len(set(seen)) == total + 1
    assert seen == sorted(seen, key=int)
    back = httpx.get(links["previous"], headers=http.headers).json()
    assert ids(back) == seen[-len(ids(page)) - 3:-len(ids(page))]
    assert len(fhir.resources("Encounter").search(location="PAGING").limit(2).fetch_all()) == \
        total + 1
    assert fhir.resources("Encounter").search(location="PAGING").count() == total + 1


def test_count_is_capped_and_zero_returns_only_the_total(http):
    capped = http.get("/Encounter", params={"location": "PAGING", "_count": 100000}).json()
    assert "_count=500" in capped["link"][0]["url"]
    counted = http.get("/Encounter", params={"location": "PAGING", "_count": 0}).json()
    assert counted["total"] >= 7
    assert "entry" not in counted


@pytest.mark.parametrize(("query", "reason"), [
    ({"colour": "blue"}, "unknown search parameter 'colour'"),
    ({"name:fuzzy": "x"}, "modifier :fuzzy"),
    ({"date": "yesterday"}, "not a FHIR date"),
    ({"date": "ap2026-03-01"}, "'ap'"),
    ({"status": "walking"}, "not a code of its FHIR value set"),
    ({"_count": "-1"}, "_count"),
    ({"_sort": "date"}, "_sort='date' is not supported"),
    ({"_cursor": "zz"}, "next/previous links"),
    ({"name": "TEST\x00"}, "NUL"),
])
def test_search_refuses_what_it_does_not_understand(api, http, query, reason):
    """Under Prefer: handling=strict; lenient handling ignores the unknown ones
    (tests/test_fhir_search.py)."""
    resource = "Patient" if any(k.startswith("name") for k in query) else "Encounter"
    response = http.get(f"/{resource}", params=query, headers={"Prefer": "handling=strict"})
    assert response.status_code == 400
    assert reason in diagnostics(response)
    strict = SyncFHIRClient(api.fhir, authorization=auth_headers(api)["Authorization"],
                            extra_headers={"Prefer": "handling=strict"})
    with pytest.raises(FhirpyOutcome):
        strict.resources(resource).search(**query).fetch()


# -- writes --------------------------------------------------------------------------------------
def test_an_ehr_transaction_for_an_observation_patient_is_searchable_by_class_obsenc(
        http, fhir, store):
    bundle = observation_bundle(mrn="830001", visit="VF8301", identifier="bundle-830001")
    response = post(http, "", bundle)
    assert response.status_code == 200
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "201 Created", "200 OK", "200 OK"]
    enc_location = answer["entry"][1]["response"]["location"]
    assert enc_location.startswith("Encounter/") and enc_location.endswith("/_history/1")

    [enc] = fhir.resources("Encounter").search(**{"class": "OBSENC"},
                                               identifier="VF8301").fetch_all()
    assert enc["status"] == "in-progress"
    assert enc["contained"][0]["code"]["coding"][0]["code"] == "R07.9"
    assert enc["location"][0]["location"]["display"] == "4WEST 401-A"
    [pat] = fhir.resources("Patient").search(identifier=f"{MRN_SYSTEM}|830001").fetch_all()
    assert enc["subject"]["reference"] == f"Patient/{pat['id']}"
    assert pat["name"][0]["family"] == "TESTFHIR"
    row = encounter_row(store, "VF8301")
    assert (row.care_status, row.payer_class, row.payer_plan) == ("observation", "medicare",
                                                                  "MCR001")
    kept = last_inbound(store)
    assert (kept.channel, kept.outcome, kept.control_id, kept.sender) == (
        "fhir", "accepted", "bundle-830001", "test.integration")

    # the same Bundle again (a retry after a lost answer): one effect, the same outcome
    again = post(http, "", bundle)
    assert again.status_code == 200
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 4
    assert encounter_row(store, "VF8301").version == row.version
    with store.sessions() as session:
        first = session.scalars(select(InboundMessage).where(
            InboundMessage.control_id == "bundle-830001")).one()
        assert first.duplicates == 1


def test_an_ehr_creates_then_discharges_an_encounter_for_a_known_patient(http, store):
    pid = patient_id(store, "810002")
    created = post(http, "/Encounter", encounter_json("VF8401", {"reference": f"Patient/{pid}"}))
    assert created.status_code == 201
    enc = created.json()
    FhirEncounter.model_validate(enc)
    assert created.headers["location"].endswith(f"/fhir/Encounter/{enc['id']}/_history/1")
    assert created.headers["etag"] == 'W/"1"'
    assert enc["subject"] == {"reference": f"Patient/{pid}"}

    enc.update(status="finished", period={"start": "2026-03-02T10:00:00-06:00",
                                          "end": "2026-03-04T11:00:00-06:00"},
               hospitalization={"dischargeDisposition": {"coding": [
                   {"system": v.DISCHARGE_DISPOSITION, "code": "home"}]}})
    updated = http.put(f"/Encounter/{enc['id']}", content=json.dumps(enc),
                       headers={"Content-Type": "application/json"})
    assert updated.status_code == 200
    assert updated.headers["etag"] == 'W/"2"'
    body = updated.json()
    assert body["status"] == "finished"
    assert body["period"]["end"] == "2026-03-04T17:00:00.000Z"
    assert body["location"][0]["status"] == "completed"
    assert {c["code"] for c in body["hospitalization"]["dischargeDisposition"]["coding"]} == {
        "01", "home"}
    # POSTing a visit already on file updates it rather than duplicating it
    again = post(http, "/Encounter", encounter_json("VF8401", {"reference": f"Patient/{pid}"},
                                                    status="finished"))
    assert again.status_code == 200 and again.json()["id"] == enc["id"]


def test_a_fhir_client_creates_and_transfers_an_encounter(fhir, store):
    pid = patient_id(store, "810002")
    enc = fhir.resource("Encounter", **encounter_json("VF8501", {"reference": f"Patient/{pid}"},
                                                      location="5NORTH 501-A"))
    enc.save()
    assert enc.id
    enc["location"] = [{"location": {"display": "ICU 3-A"}, "status": "active"}]
    enc.save()  # PUT of what the server returned, with one change
    read = fhir.get("Encounter", enc.id)
    assert [(x["location"]["display"], x["status"]) for x in read["location"]] == [
        ("5NORTH 501-A", "completed"), ("ICU 3-A", "active")]
    assert read["meta"]["versionId"] == "2"


def test_an_update_must_name_an_encounter_on_file_and_keep_its_visit_number(http, store):
    pid = patient_id(store, "810002")
    row = encounter_row(store, "VA2")
    cases = [
        (f"/Encounter/{row.id + 100000}", {"id": str(row.id + 100000)}, 404, "is not known"),
        (f"/Encounter/{row.id}", {}, 400, "Encounter.id must be present"),
        (f"/Encounter/{row.id}", {"id": str(row.id)}, 422, "does not match"),
    ]
    for path, extra, status, reason in cases:
        body = encounter_json("V-NOT-VA2", {"reference": f"Patient/{pid}"}, **extra)
        response = http.put(path, content=json.dumps(body),
                            headers={"Content-Type": FHIR_JSON})
        assert response.status_code == status, response.text
        assert reason in diagnostics(response)
        kept = last_inbound(store)
        assert kept.outcome == "rejected" and reason in kept.reason
        assert json.dumps(body).encode() in kept.raw
    assert encounter_row(store, "VA2").version == row.version


# -- bad input: a reason a person can act on, the input kept, the server up -----------------------
def _invalid_period() -> dict:
    doc = encounter_json("VX1", {"reference": "Patient/1"})
    doc["period"]["start"] = "2026-13-01"
    return doc


def _without_full_url(bundle: dict, index: int) -> dict:
    bundle["entry"][index].pop("fullUrl")
    bundle["entry"][index]["resource"].pop("id", None)
    return bundle


BAD_INPUT = [
    ("/Encounter", FHIR_JSON, b'{"resourceType": "Encounter",', 400, "not valid JSON"),
    ("/Encounter", FHIR_JSON, json.dumps(patient_json("1")).encode(), 400,
     "expected Encounter"),
    ("", FHIR_JSON, json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"status": "active", "intent": "order"},
         "request": {"method": "POST", "url": "MedicationRequest"}}]}).encode(),
     400, "entry[0].resource has no resourceType"),
    ("/Encounter", FHIR_JSON, json.dumps(_invalid_period()).encode(), 400,
     "Encounter.period.start"),
    ("/Encounter", FHIR_JSON, b"[" * 50_000 + b"]" * 50_000, 400, "nested too deeply"),
    ("/Encounter", "text/plain", json.dumps(_invalid_period()).encode(), 415, "Content-Type"),
    ("/Encounter", "application/xml", b"<Encounter/>", 415, "application/fhir+json"),
    # no identifier, no id, no fullUrl: nothing to key the record by
    ("", FHIR_JSON, json.dumps(_without_full_url(transaction(
        (PAT, patient_json("850001")),
        (ENC, {k: val for k, val in encounter_json("VX2", {"reference": PAT}).items()
               if k not in ("identifier", "id")})), 1)).encode(), 422, "visit number"),
    ("", FHIR_JSON, json.dumps(_without_full_url(transaction(
        (PAT, {**patient_json("850002"), "identifier": [{"system": "urn:x"}]}),
        (ENC, encounter_json("VX3", {"reference": PAT}))), 0)).encode(), 422,
     "nothing to key the patient by"),
    ("", FHIR_JSON, json.dumps(transaction(
        (PAT, patient_json("850003", family="TEST\x00NUL")),
        (ENC, encounter_json("VX4", {"reference": PAT})))).encode(), 400, "NUL"),
]


@pytest.mark.parametrize(("path", "content_type", "body", "status", "reason"), BAD_INPUT,
                         ids=["json", "wrong-type", "bundle-entry-type", "r4b", "deep",
                              "text-plain", "xml", "no-visit-number", "no-mrn", "nul"])
def test_bad_input_is_refused_with_a_reason_and_kept(api, http, store, path, content_type,
                                                     body, status, reason):
    response = http.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == status
    said = diagnostics(response)
    assert reason in said
    kept = last_inbound(store)
    assert (kept.channel, kept.outcome, kept.reason) == ("fhir", "rejected", said)
    assert body.strip() in kept.raw
    assert httpx.get(f"{api.base_url}/health").status_code == 200


def test_oversize_bodies_are_refused_and_the_server_stays_up(api, http, store):
    big = json.dumps({"resourceType": "Bundle", "type": "transaction",
                      "id": "x" * 20, "entry": [], "pad": "y" * BODY_LIMIT}).encode()
    declared = post(http, "", big)
    assert declared.status_code == 413
    assert str(BODY_LIMIT) in diagnostics(declared)

    def chunks() -> Iterator[bytes]:  # no Content-Length: only the streaming reader can stop it
        for i in range(0, len(big), 16_384):
            yield big[i:i + 16_384]

    streamed = http.post("", content=chunks(), headers={"Content-Type": FHIR_JSON})
    assert streamed.status_code == 413
    kept = last_inbound(store)
    assert kept.outcome == "rejected" and "over" in kept.reason
    assert kept.raw == big[:BODY_LIMIT]
    assert httpx.get(f"{api.base_url}/health").status_code == 200
    assert http.get("/metadata").status_code == 200


def test_a_refused_encounter_replays_once_the_patients_are_merged(http, store):
    """The EHR knows the patient by a newer MRN than the ADT feed: the visit is refused
    until the A40 merge arrives, then replay applies it from the stored input alone."""
    bundle = transaction(
        (PAT, patient_json("840002", family="TESTREPLAY")),
        (ENC, encounter_json("VQ1", {"reference": PAT}, klass="OBSENC",
                             last_updated="2026-03-07T15:00:00Z")),
        identifier="bundle-840002")
    refused = post(http, "", bundle)
    assert refused.status_code == 422
    assert "belongs to another patient" in diagnostics(refused)
    kept = last_inbound(store)
    assert kept.outcome == "error"
    assert store.intake.hl7(merge("20260307100000", "840002", "840001")).outcome == "accepted"

    receipt = store.intake.replay(kept.id)
    assert receipt.outcome == "accepted", receipt.reason
    row = encounter_row(store, "VQ1")
    assert row.care_status == "observation"
    assert row.patient_id == patient_id(store, "840002")
