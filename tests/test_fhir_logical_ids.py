"""Bundles whose Patient or Encounter carries no identifier, through a real `engine serve`.

Synthea never sends Encounter.identifier; Medplum-style clients send Patients with no
identifier at all. Such a record is keyed by its logical id (Resource.id, the id a
`PUT <Type>/<id>` names, else the fullUrl's uuid) under `urn:engine:fhir-id:<Type>`, the
entry's response says so in a warning, and a later PUT of the same id reaches the same
record. Only a resource with nothing to key by is refused (422). Fixtures are synthetic.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from engine.api.runtime import Runtime
from engine.storage.models import Encounter

FHIR_JSON = "application/fhir+json"
BUNDLES = Path(__file__).parent / "fixtures" / "fhir"
PATIENT_ID = "urn:engine:fhir-id:Patient"
ENCOUNTER_ID = "urn:engine:fhir-id:Encounter"
SYNTHEA_MRN = "http://hospital.smarthealthit.org"
SYNTHEA_PATIENT = "5a1c0e2b-9d1f-4c3e-8b7a-000000910011"
SYNTHEA_ENCOUNTER = "7c2d1f3a-0e2a-4d4f-9c8b-000000910011"
MEDPLUM_PATIENT = "0b5e7c9d-2a4f-4b6e-9f1a-000000910012"


def bundle(name: str) -> dict:
    return json.loads((BUNDLES / f"{name}.json").read_text())


def post(http: httpx.Client, doc: dict, path: str = "") -> httpx.Response:
    return http.post(path, content=json.dumps(doc).encode(),
                     headers={"Content-Type": FHIR_JSON})


def warnings(entry: dict) -> list[str]:
    outcome = entry["response"].get("outcome") or {"issue": []}
    return [i.get("diagnostics", "") for i in outcome["issue"] if i["severity"] == "warning"]


def stays_keyed(store: Runtime, value: str) -> list[Encounter]:
    with store.sessions() as session:
        return list(session.scalars(select(Encounter).where(
            Encounter.visit_system == ENCOUNTER_ID, Encounter.visit_number == value)))


def test_a_synthea_transaction_lands_with_the_stay_keyed_by_the_encounter_id(http, fhir, store):
    doc = bundle("synthea_transaction_no_encounter_identifier")
    response = post(http, doc)
    assert response.status_code == 200, response.text
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == "transaction-response"
    patient_answer, encounter_answer, condition_answer = answer["entry"]
    assert encounter_answer["response"]["status"] == "201 Created"
    assert any("keyed by its resource id" in w and SYNTHEA_ENCOUNTER in w
               for w in warnings(encounter_answer)), encounter_answer
    # the SNOMED problem is acknowledged, not kept (the engine keeps ICD-10-CM diagnoses)
    assert condition_answer["response"]["status"] == "200 OK"

    [patient] = fhir.resources("Patient").search(
        identifier=f"{SYNTHEA_MRN}|{SYNTHEA_PATIENT}").fetch_all()
    [enc] = fhir.resources("Encounter").search(patient=patient["id"]).fetch_all()
    assert (enc["identifier"][0]["system"], enc["identifier"][0]["value"]) == (
        ENCOUNTER_ID, SYNTHEA_ENCOUNTER)
    [same] = fhir.resources("Encounter").search(
        identifier=f"{ENCOUNTER_ID}|{SYNTHEA_ENCOUNTER}").fetch_all()
    assert same["id"] == enc["id"]

    # Synthea's next snapshot of the same encounter: finished; still no identifier
    later = copy.deepcopy(doc)
    later["entry"] = later["entry"][:2]
    later_enc = later["entry"][1]
    later_enc["resource"]["status"] = "finished"
    later_enc["resource"]["period"]["end"] = "2026-12-03T11:00:00-05:00"
    later_enc["request"] = {"method": "PUT", "url": f"Encounter/{SYNTHEA_ENCOUNTER}"}
    response = post(http, later)
    assert response.status_code == 200, response.text
    [row] = stays_keyed(store, SYNTHEA_ENCOUNTER)
    assert row.status == "finished"
    assert row.discharge_time is not None


def test_a_patient_with_no_identifier_is_keyed_by_its_id_and_its_stay_resolves(
        http, fhir, store):
    doc = bundle("medplum_style_batch_no_identifiers")
    response = post(http, doc)
    assert response.status_code == 200, response.text
    patient_answer, encounter_answer = response.json()["entry"]
    assert patient_answer["response"]["status"] == "201 Created", patient_answer
    assert encounter_answer["response"]["status"] == "201 Created", encounter_answer
    assert any(PATIENT_ID in w for w in warnings(patient_answer))
    assert any(f"{ENCOUNTER_ID}|enc-910012" in w for w in warnings(encounter_answer))

    [patient] = fhir.resources("Patient").search(
        identifier=f"{PATIENT_ID}|{MEDPLUM_PATIENT}").fetch_all()
    assert patient["name"][0]["family"] == "Testmedplum912"
    [enc] = fhir.resources("Encounter").search(patient=patient["id"]).fetch_all()
    assert enc["identifier"][0]["value"] == "enc-910012"
    # sent again (a retry): the same patient and the same stay, nothing new
    assert post(http, doc).status_code == 200
    assert len(fhir.resources("Patient").search(
        identifier=f"{PATIENT_ID}|{MEDPLUM_PATIENT}").fetch_all()) == 1
    assert len(stays_keyed(store, "enc-910012")) == 1


def test_a_resource_with_nothing_to_key_by_is_refused_with_a_clear_reason(http, store):
    with store.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Encounter))
    doc = copy.deepcopy(bundle("synthea_transaction_no_encounter_identifier"))
    enc = doc["entry"][1]
    del enc["fullUrl"], enc["resource"]["id"]
    doc["entry"] = doc["entry"][:2]
    response = post(http, doc)
    assert response.status_code == 422, response.text
    [issue] = response.json()["issue"]
    assert "nothing to key the stay by" in issue["diagnostics"]

    doc = copy.deepcopy(bundle("medplum_style_batch_no_identifiers"))
    doc["type"] = "transaction"
    del doc["entry"][0]["fullUrl"]
    doc["entry"][1]["resource"]["subject"] = {"display": "no reference"}
    doc["entry"] = doc["entry"][:1]
    response = post(http, doc)
    assert response.status_code == 422, response.text
    assert "nothing to key the patient by" in response.json()["issue"][0]["diagnostics"]
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Encounter)) == before


def test_a_standalone_encounter_with_no_identifier_is_keyed_and_updated_in_place(
        http, fhir, store):
    assert post(http, bundle("medplum_style_batch_no_identifiers")).status_code == 200
    [patient] = fhir.resources("Patient").search(
        identifier=f"{PATIENT_ID}|{MEDPLUM_PATIENT}").fetch_all()
    body = {"resourceType": "Encounter", "id": "enc-910013", "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                      "code": "OBSENC"},
            "subject": {"reference": f"Patient/{patient['id']}"},
            "meta": {"lastUpdated": "2026-12-02T08:00:00Z"},
            "period": {"start": "2026-12-02T08:00:00Z"}}
    created = post(http, body, "Encounter")
    assert created.status_code == 201, created.text
    [row] = stays_keyed(store, "enc-910013")
    # the client PUTs the server's record back, still with no identifier: the same stay
    server_id = created.json()["id"]
    update = {**body, "id": server_id, "status": "finished",
              "meta": {"lastUpdated": "2026-12-02T20:00:00Z"},
              "period": {"start": "2026-12-02T08:00:00Z", "end": "2026-12-02T19:00:00Z"}}
    response = http.put(f"Encounter/{server_id}", content=json.dumps(update).encode(),
                        headers={"Content-Type": FHIR_JSON})
    assert response.status_code == 200, response.text
    [row] = stays_keyed(store, "enc-910013")
    assert row.status == "finished"


def test_a_conditional_put_with_no_identifier_in_the_body_is_keyed_by_its_url(http, fhir):
    doc = copy.deepcopy(bundle("medplum_style_batch_no_identifiers"))
    doc["type"] = "transaction"
    pat, enc = doc["entry"]
    pat["fullUrl"] = "urn:uuid:0b5e7c9d-2a4f-4b6e-9f1a-000000910014"
    pat["request"] = {"method": "PUT",
                      "url": "Patient?identifier=urn:engine:id:GENHOSP|910014"}
    enc["resource"]["subject"] = {"reference": pat["fullUrl"]}
    enc["request"] = {"method": "PUT",
                      "url": "Encounter?identifier=urn:engine:id:GENHOSP|V910014"}
    response = post(http, doc)
    assert response.status_code == 200, response.text
    [patient] = fhir.resources("Patient").search(
        identifier="urn:engine:id:GENHOSP|910014").fetch_all()
    [stay] = fhir.resources("Encounter").search(patient=patient["id"]).fetch_all()
    assert stay["identifier"][0]["value"] == "V910014"
