"""FHIR writes as an EHR's interface engine makes them: optimistic locking with If-Match,
conditional create with If-None-Exist, Observations the engine does not keep, Location
headers a client can follow, and `Prefer: return=`. A real `engine serve` process, real
HTTP (httpx) and a real FHIR client (fhirpy), on SQLite and PostgreSQL.

One server per database serves the module; each story uses its own MRNs and visit numbers.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.observation import Observation as FhirObservation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from sqlalchemy import select

from engine.storage.models import LabResult
from tests.test_fhir_api import encounter_row, last_inbound
from tests.test_fhir_inbound import MRN_SYSTEM, PAT, encounter_json, patient_json, transaction
from tests.test_labs import observation

FHIR_JSON = "application/fhir+json"


def send(http: httpx.Client, method: str, path: str, doc: dict, **headers: str
         ) -> httpx.Response:
    return http.request(method, path, content=json.dumps(doc).encode(),
                        headers={"Content-Type": FHIR_JSON, **headers})


def diagnostics(response: httpx.Response) -> str:
    body = response.json()
    OperationOutcome.model_validate(body)
    return " ".join(i.get("diagnostics", "") for i in body["issue"])


def admitted(http: httpx.Client, mrn: str, visit: str, **kw) -> dict:
    """A patient admitted by a transaction (Patient + Encounter); the Encounter as read."""
    bundle = transaction((PAT, patient_json(mrn)),
                         ("urn:uuid:00000000-0000-4000-8000-0000000000e1",
                          encounter_json(visit, {"reference": PAT}, **kw)))
    answer = send(http, "POST", "", bundle)
    assert answer.status_code == 200, answer.text
    found = http.get("/Encounter", params={"identifier": visit}).json()
    return found["entry"][0]["resource"]


def follow(http: httpx.Client, location: str) -> httpx.Response:
    """GET what a Location header names (absolute, as FHIR servers send it)."""
    assert location.startswith("http://"), location
    return http.get(location)


# -- If-Match: an update made from what the client last read, or refused ----------------------
def test_a_stale_encounter_update_is_refused_and_changes_nothing(http, store):
    enc = admitted(http, "910001", "VW1001")
    read = http.get(f"/Encounter/{enc['id']}")
    assert read.headers["etag"] == 'W/"1"'
    # the case manager's system moves the patient, naming the version it read
    enc["location"] = [{"location": {"display": "5NORTH 510-A"}, "status": "active"}]
    moved = send(http, "PUT", f"/Encounter/{enc['id']}", enc, **{"If-Match": 'W/"1"'})
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] == 'W/"2"'
    # the bed board still holds version 1 and discharges from it: refused, nothing applied
    stale = dict(enc, status="finished", period={"start": enc["period"]["start"],
                                                 "end": "2026-03-04T11:00:00-06:00"})
    refused = send(http, "PUT", f"/Encounter/{enc['id']}", stale, **{"If-Match": 'W/"1"'})
    assert refused.status_code == 412, refused.text
    assert "version 2" in diagnostics(refused)
    row = encounter_row(store, "VW1001")
    assert (row.version, row.status) == (2, "in-progress")
    kept = last_inbound(store)
    assert kept.outcome == "rejected" and "version 2" in kept.reason
    # the same change made from the current version, as a plain ETag value, applies
    applied = send(http, "PUT", f"/Encounter/{enc['id']}", stale, **{"If-Match": '"2"'})
    assert applied.status_code == 200, applied.text
    assert applied.json()["status"] == "finished" and applied.headers["etag"] == 'W/"3"'


def test_of_concurrent_updates_from_one_version_exactly_one_applies(api, http, store):
    enc = admitted(http, "910004", "VW1004")
    rooms = [f"5NORTH 5{i:02d}-A" for i in range(4)]

    def move(room: str) -> int:
        body = dict(enc, location=[{"location": {"display": room}, "status": "active"}])
        with api.client() as own:  # one connection each, so the PUTs really overlap
            return send(own, "PUT", f"/Encounter/{enc['id']}", body,
                        **{"If-Match": 'W/"1"'}).status_code

    with ThreadPoolExecutor(len(rooms)) as pool:
        statuses = sorted(pool.map(move, rooms))
    assert statuses == [200, 412, 412, 412]
    assert encounter_row(store, "VW1004").version == 2


def test_an_if_match_that_is_no_etag_is_refused_as_malformed(http, store):
    enc = admitted(http, "910002", "VW1002")
    answer = send(http, "PUT", f"/Encounter/{enc['id']}", enc, **{"If-Match": "yesterday"})
    assert answer.status_code == 400 and "If-Match" in diagnostics(answer)
    assert encounter_row(store, "VW1002").version == 1


def test_a_fhir_client_reads_updates_and_is_told_when_it_is_stale(fhir, http):
    enc = admitted(http, "910003", "VW1003")
    mine = fhir.reference("Encounter", enc["id"]).to_resource()
    theirs = fhir.reference("Encounter", enc["id"]).to_resource()
    mine["location"] = [{"location": {"display": "ICU 2-B"}, "status": "active"}]
    mine.save()
    assert mine["meta"]["versionId"] == "2"
    theirs["status"] = "finished"
    etag = f'W/"{theirs["meta"]["versionId"]}"'
    answer = send(http, "PUT", f"/Encounter/{enc['id']}", theirs.serialize(),
                  **{"If-Match": etag})
    assert answer.status_code == 412
    assert fhir.reference("Encounter", enc["id"]).to_resource()["status"] == "in-progress"


# -- If-None-Exist: create only when nothing matches ------------------------------------------
def test_a_conditional_create_of_a_visit_on_file_answers_it_unchanged(http, store):
    enc = admitted(http, "910011", "VW1011")
    subject = {"reference": f"Patient/{enc['subject']['reference'].rpartition('/')[2]}"}
    again = encounter_json("VW1011", subject, status="finished",
                           end="2026-03-05T09:00:00-06:00")
    answer = send(http, "POST", "/Encounter", again,
                  **{"If-None-Exist": f"identifier={MRN_SYSTEM}|VW1011"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == enc["id"] and answer.json()["status"] == "in-progress"
    assert answer.headers["etag"] == 'W/"1"'
    assert follow(http, answer.headers["location"]).json()["id"] == enc["id"]
    row = encounter_row(store, "VW1011")
    assert (row.version, row.status) == (1, "in-progress")
    kept = last_inbound(store)
    assert kept.outcome == "ignored" and f"Encounter/{enc['id']}" in kept.reason


def test_a_fhir_clients_conditional_create_finds_the_visit_on_file(fhir, http):
    enc = admitted(http, "910013", "VW1017")
    again = fhir.resource("Encounter", **encounter_json(
        "VW1017", {"reference": enc["subject"]["reference"]}, status="finished"))
    again.create(identifier=f"{MRN_SYSTEM}|VW1017")  # POST Encounter?identifier=...
    assert again.id == enc["id"] and again["status"] == "in-progress"
    fresh = fhir.resource("Encounter", **encounter_json(
        "VW1018", {"reference": enc["subject"]["reference"]}))
    fresh.create(identifier=f"{MRN_SYSTEM}|VW1018")
    assert fresh.id != enc["id"] and fresh["meta"]["versionId"] == "1"


def test_a_conditional_create_with_no_match_creates(http):
    enc = admitted(http, "910012", "VW1012")
    subject = {"reference": enc["subject"]["reference"]}
    answer = send(http, "POST", "/Encounter", encounter_json("VW1013", subject),
                  **{"If-None-Exist": f"identifier={MRN_SYSTEM}|VW1013"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["identifier"][0]["value"] == "VW1013"
    # a format parameter on the URL is no condition
    plain = send(http, "POST", "/Encounter?_format=json", encounter_json("VW1019", subject))
    assert plain.status_code == 201, plain.text


def test_a_conditional_create_matching_several_encounters_is_refused(http, store):
    first = admitted(http, "910014", "VW1014")
    patient = first["subject"]["reference"]
    second = send(http, "POST", "/Encounter", encounter_json("VW1015", {"reference": patient}))
    assert second.status_code == 201
    answer = send(http, "POST", "/Encounter", encounter_json("VW1016", {"reference": patient}),
                  **{"If-None-Exist": f"patient={patient}"})
    assert answer.status_code == 412, answer.text
    assert "more than one" in diagnostics(answer)
    assert http.get("/Encounter", params={"identifier": "VW1016"}).json()["total"] == 0


@pytest.mark.parametrize("condition, reason", [
    ("colour=blue", "colour"),
    ("", "If-None-Exist"),
])
def test_a_condition_the_server_cannot_evaluate_is_refused(http, condition, reason):
    enc = admitted(http, f"91002{len(condition)}", f"VW102{len(condition)}")
    body = encounter_json("VW1029", {"reference": enc["subject"]["reference"]})
    answer = send(http, "POST", "/Encounter", body, **{"If-None-Exist": condition})
    assert answer.status_code == 400, answer.text
    assert reason in diagnostics(answer)
    assert http.get("/Encounter", params={"identifier": "VW1029"}).json()["total"] == 0


def test_a_conditional_create_of_an_observation_is_refused_not_applied(http, store):
    admitted(http, "910031", "VW1031")
    obs = observation("718-7", 10.1, "g/dL", mrn="910031")
    answer = send(http, "POST", "/Observation", obs, **{"If-None-Exist": "code=718-7"})
    assert answer.status_code == 400 and "If-None-Exist" in diagnostics(answer)
    with store.sessions() as session:
        assert session.scalars(select(LabResult).where(LabResult.value == 10.1)).all() == []
    assert last_inbound(store).outcome == "rejected"


# -- Observations the engine does not use: acknowledged, not kept ------------------------------
def test_an_observation_the_engine_does_not_use_is_acknowledged_and_not_kept(http, store):
    admitted(http, "910041", "VW1041")
    glucose = observation("2345-7", 250, "mg/dL", mrn="910041")
    answer = send(http, "POST", "/Observation", glucose)
    assert answer.status_code == 200, answer.text
    issue = answer.json()["issue"][0]
    assert issue["severity"] == "information" and "not kept" in issue["diagnostics"]
    assert "2345-7" in issue["diagnostics"] and "location" not in answer.headers
    kept = last_inbound(store)
    assert kept.outcome == "ignored" and "2345-7" in kept.reason
    # a malformed one is still refused: no subject, or not valid FHIR
    no_subject = dict(glucose)
    del no_subject["subject"]
    assert send(http, "POST", "/Observation", no_subject).status_code == 422
    for broken in (dict(glucose, status="bogus"), dict(glucose, effectiveDateTime="soon")):
        answer = send(http, "POST", "/Observation", broken)
        assert answer.status_code == 400, answer.text


# -- Location headers resolve; vread answers the current version --------------------------------
def test_every_location_header_can_be_followed(http, store):
    bundle = transaction((PAT, patient_json("910051")),
                         ("urn:uuid:00000000-0000-4000-8000-0000000000e1",
                          encounter_json("VW1051", {"reference": PAT})))
    answer = send(http, "POST", "", bundle)
    assert answer.status_code == 200, answer.text
    for entry in answer.json()["entry"]:
        location = entry["response"]["location"]
        read = http.get(f"/{location}")  # relative to the base, as in a transaction-response
        assert read.status_code == 200, (location, read.text)
        assert read.headers["etag"] == entry["response"]["etag"]
    patient = answer.json()["entry"][0]["fullUrl"].rpartition("/")[2]
    FhirPatient.model_validate(http.get(f"/Patient/{patient}/_history/1").json())

    created = send(http, "POST", "/Encounter", encounter_json(
        "VW1052", {"reference": f"Patient/{patient}"}))
    assert created.status_code == 201
    first = follow(http, created.headers["location"])
    assert first.status_code == 200 and first.json() == created.json()
    FhirEncounter.model_validate(first.json())
    enc = created.json()
    enc["status"] = "finished"
    updated = send(http, "PUT", f"/Encounter/{enc['id']}", enc)
    assert updated.headers["location"].endswith(f"/Encounter/{enc['id']}/_history/2")
    assert follow(http, updated.headers["location"]).json()["status"] == "finished"
    # only the current version is kept: an earlier one says so
    gone = follow(http, created.headers["location"])
    assert gone.status_code == 404 and "current version is 2" in diagnostics(gone)
    assert http.get(f"/Encounter/{enc['id']}/_history/x").status_code == 404

    lab = send(http, "POST", "/Observation",
               observation("718-7", 10.9, "g/dL", mrn="910051", encounter=f"Encounter/{enc['id']}"))
    assert lab.status_code == 201, lab.text
    kept = follow(http, lab.headers["location"])
    assert kept.status_code == 200, kept.text
    FhirObservation.model_validate(kept.json())
    assert kept.json()["valueQuantity"]["value"] == 10.9
    assert kept.json()["subject"] == {"reference": f"Patient/{patient}"}
    assert kept.json()["encounter"] == {"reference": f"Encounter/{enc['id']}"}


# -- Prefer: return=minimal | representation | OperationOutcome ---------------------------------
def test_prefer_return_shapes_the_answer_of_a_write(http):
    enc = admitted(http, "910061", "VW1061")
    subject = {"reference": enc["subject"]["reference"]}
    minimal = send(http, "POST", "/Encounter", encounter_json("VW1062", subject),
                   Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.content == b""
    assert minimal.headers["etag"] == 'W/"1"'
    assert follow(http, minimal.headers["location"]).status_code == 200
    told = send(http, "PUT", f"/Encounter/{enc['id']}", enc, Prefer="return=OperationOutcome")
    assert told.status_code == 200 and told.headers["etag"] == 'W/"2"'
    assert f"Encounter/{enc['id']}" in diagnostics(told)
    assert told.json()["issue"][0]["severity"] == "information"
    shown = send(http, "PUT", f"/Encounter/{enc['id']}", enc, Prefer="return=representation")
    assert shown.json()["resourceType"] == "Encounter" and shown.json()["meta"]["versionId"] == "3"
    lab = send(http, "POST", "/Observation", observation("2951-2", 131, "mmol/L", mrn="910061"),
               Prefer="return=representation")
    assert lab.status_code == 201
    FhirObservation.model_validate(lab.json())
    assert lab.json()["code"]["coding"][0]["code"] == "2951-2"
    quiet = send(http, "POST", "/Observation", observation("2951-2", 133, "mmol/L", mrn="910061",
                                                           when="2026-03-08T06:00:00-06:00"),
                 Prefer="return=minimal")
    assert quiet.status_code == 201 and quiet.content == b"" and quiet.headers["location"]


def test_the_capability_statement_tells_what_the_writes_do(http):
    meta = http.get("/metadata").json()
    by_type = {r["type"]: r for r in meta["rest"][0]["resource"]}
    encounter = by_type["Encounter"]
    assert {"read", "vread", "create", "update"} <= {i["code"] for i in encounter["interaction"]}
    assert encounter["conditionalCreate"] is True
    assert encounter["versioning"] == "versioned-update"
    assert encounter["readHistory"] is False
    assert {"read", "vread"} <= {i["code"] for i in by_type["Patient"]["interaction"]}
    observation_ = by_type["Observation"]
    # labs are created and read; the UR record's Observations are searched too
    assert {i["code"] for i in observation_["interaction"]} == {"create", "read", "search-type"}
    assert observation_["conditionalCreate"] is False
    assert "not kept" in observation_["documentation"]
