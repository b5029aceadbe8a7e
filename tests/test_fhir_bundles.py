"""Bundles as HL7v2-to-FHIR converters and EHRs send them, through a real `engine serve`.

The fixtures under tests/fixtures/fhir/ are hand-written, synthetic Bundles in the shapes
converters emit (Microsoft FHIR-Converter: `batch` of PUTs keyed by urn:uuid; LinuxForHealth
hl7v2-fhir-converter: `transaction` of POSTs with `urn:id:` systems; an EHR's conditional
transaction with absolute URLs and identifier references): a MessageHeader first, a Patient
with several identifiers and US Core extensions, an Encounter pointing at Practitioner and
Location resources, and entries the engine does not keep (AllergyIntolerance, Procedure,
Provenance, Observations with LOINC codes no rule reads). Each must land: its Patient found
by MRN and its Encounter by patient, through httpx, fhirpy and fhirclient, with the location
and attending read from the Bundle.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhirclient import client as smart_client
from fhirclient.models.encounter import Encounter as SmartEncounter
from fhirclient.models.patient import Patient as SmartPatient
from sqlalchemy import select

from engine.api.runtime import Runtime
from engine.storage.models import Encounter, InboundMessage, LabResult
from tests.conftest import auth_headers

FHIR_JSON = "application/fhir+json"
BUNDLES = Path(__file__).parent / "fixtures" / "fhir"
MRN = "urn:engine:id:GENHOSP"


def bundle(name: str) -> dict:
    return json.loads((BUNDLES / f"{name}.json").read_text())


# -- one database and one server per module ------------------------------------------------------
@pytest.fixture(scope="module")
def smart(api) -> smart_client.FHIRClient:
    """fhirclient (SMART on FHIR's Python client), signed in with the integration token."""
    client = smart_client.FHIRClient(settings={"app_id": "dcplan-tests", "api_base": api.fhir})
    client.server.session.headers.update(auth_headers(api))
    return client


def post(http: httpx.Client, doc: dict) -> httpx.Response:
    return http.post("", content=json.dumps(doc).encode(), headers={"Content-Type": FHIR_JSON})


def encounter_row(store: Runtime, visit: str) -> Encounter | None:
    with store.sessions() as session:
        return session.scalars(select(Encounter).where(Encounter.visit_number == visit)).first()


def statuses(answer: dict) -> list[str]:
    return [e["response"]["status"] for e in answer["entry"]]


def notes(entry: dict) -> list[tuple[str, str]]:
    outcome = entry["response"].get("outcome") or {"issue": []}
    return [(i["severity"], i.get("diagnostics", "")) for i in outcome["issue"]]


# -- every converter shape lands, with location and attending from the Bundle ----------------------
LANDINGS = [
    # (fixture, answer type, MRN, visit, care status, location shown, attending id, name)
    ("ms_converter_adt_a01_batch", "batch-response", "910001", "VC910001", "inpatient",
     "4WEST 412-B", "1999000011", "HENRY SAMPLEDOC"),
    ("lfh_converter_adt_a01_transaction", "transaction-response", "910002", "VL910002",
     "inpatient", "ICU 07", "1999000029", "ALICE SAMPLEHOSPITALIST"),
    ("epic_style_conditional_transaction", "transaction-response", "910003", "VE910003",
     "inpatient", "5EAST 520-1", "1999000045", "GRACE L SAMPLEINTERNIST"),
    ("ms_converter_adt_a03_batch_one_bad_entry", "batch-response", "910004", "VM910004",
     "inpatient", "6NORTH 602-A", "DOC7788", "PAT SAMPLESURGEON MD"),
    ("ed_visit_batch_identifier_references", "batch-response", "910005", "VD910005",
     "emergency", "ED", "1999000052", "IVY SAMPLEEMERGENCY"),
    ("observation_stay_transaction_practitioner_role", "transaction-response", "910006",
     "VO910006", "observation", "CDU", "1999000060", "JUNE SAMPLECARDIO"),
]


@pytest.mark.parametrize(("name", "kind", "mrn", "visit", "care", "place", "doc_id", "doctor"),
                         LANDINGS, ids=[row[0] for row in LANDINGS])
def test_a_converter_bundle_lands_with_its_location_and_attending(
        http, fhir, store, name, kind, mrn, visit, care, place, doc_id, doctor):
    doc = bundle(name)
    response = post(http, doc)
    assert response.status_code == 200, response.text
    answer = response.json()
    Bundle.model_validate(answer)
    assert answer["type"] == kind
    assert len(answer["entry"]) == len(doc["entry"])

    [patient] = fhir.resources("Patient").search(identifier=f"{MRN}|{mrn}").fetch_all()
    [enc] = fhir.resources("Encounter").search(patient=patient["id"]).fetch_all()
    assert enc["identifier"][0]["value"] == visit
    assert enc["location"][0]["location"]["display"] == place
    [who] = enc["participant"]
    assert who["individual"]["identifier"]["value"] == doc_id
    assert who["individual"]["display"] == doctor
    row = encounter_row(store, visit)
    assert row is not None and row.care_status == care


def test_fhirclient_finds_the_converted_patient_and_stay(http, smart, store):
    assert post(http, bundle("ms_converter_adt_a01_batch")).status_code == 200
    version = encounter_row(store, "VC910001").version  # type: ignore[union-attr]
    # the converter retries the same batch (same Bundle.identifier): nothing changes twice
    again = post(http, bundle("ms_converter_adt_a01_batch")).json()
    assert set(statuses(again)) == {"200 OK"}
    assert encounter_row(store, "VC910001").version == version  # type: ignore[union-attr]
    [patient] = SmartPatient.where(struct={"identifier": f"{MRN}|910001"}
                                   ).perform_resources_iter(smart.server)
    assert patient.name[0].family == "TESTCONVERTER"
    [enc] = SmartEncounter.where(struct={"patient": patient.id}
                                 ).perform_resources_iter(smart.server)
    assert enc.location[0].location.display == "4WEST 412-B"
    assert enc.participant[0].individual.display == "HENRY SAMPLEDOC"


# -- batch: each entry on its own --------------------------------------------------------------
def test_a_batch_applies_every_entry_it_can_and_answers_the_bad_one_alone(http, store):
    doc = bundle("ms_converter_adt_a03_batch_one_bad_entry")
    answer = post(http, doc).json()
    kinds = [e["resource"]["resourceType"] for e in doc["entry"]]
    by_kind = dict(zip(kinds, answer["entry"], strict=False))
    bad = answer["entry"][kinds.index("Observation")]
    assert bad["response"]["status"].startswith("422")
    [(severity, why)] = notes(bad)
    assert severity == "error" and "valueQuantity" in why
    assert by_kind["Patient"]["response"]["status"] in ("201 Created", "200 OK")
    assert by_kind["Encounter"]["response"]["status"] in ("201 Created", "200 OK")
    row = encounter_row(store, "VM910004")
    assert row is not None and row.status == "finished"
    assert row.unit == "6NORTH"  # the active location, not the completed PACU stop
    # a 66-character disposition code fits the wide columns (engine.core.limits): kept whole
    assert row.discharge_disposition == (
        "DISCHARGED-TO-SKILLED-NURSING-FACILITY-WITH-MEDICARE-CERTIFICATION")
    enc_notes = notes(by_kind["Encounter"])
    assert not any("dischargeDisposition" in d for _s, d in enc_notes)
    # the refused entry is kept for replay, the applied ones are not quarantined
    with store.sessions() as session:
        [kept] = [m for m in session.scalars(select(InboundMessage).where(
            InboundMessage.outcome != "accepted")) if "VM910004" in m.raw.decode()
            and "valueQuantity" in (m.reason or "")][-1:]
    # replayed, the piece is that one entry again: still refused, for the same reason
    receipt = store.intake.replay(kept.id)
    assert receipt.outcome in ("rejected", "error") and "valueQuantity" in (receipt.reason or "")
    assert encounter_row(store, "VM910004").version == row.version  # type: ignore[union-attr]


def test_a_batch_bundle_is_no_longer_refused_whole(http):
    doc = bundle("ed_visit_batch_identifier_references")
    response = post(http, doc)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "batch-response"


# -- transaction: all or nothing ----------------------------------------------------------------
def test_a_transaction_with_one_unusable_entry_changes_nothing(http, fhir):
    doc = copy.deepcopy(bundle("epic_style_conditional_transaction"))
    for entry in doc["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "Patient":
            res["identifier"][0]["value"] = "910093"
            entry["request"]["url"] = f"Patient?identifier={MRN}|910093"
        if res["resourceType"] == "Encounter":
            res["identifier"][1]["value"] = "VE910093"
            entry["request"]["url"] = f"Encounter?identifier={MRN}|VE910093"
        if res["resourceType"] == "Coverage":
            res["beneficiary"] = {"reference": "urn:uuid:00000000-0000-4000-8000-00000000dead"}
    doc.pop("identifier")
    response = post(http, doc)
    assert response.status_code == 422
    assert "neither in this Bundle" in response.json()["issue"][0]["diagnostics"]
    assert fhir.resources("Patient").search(identifier=f"{MRN}|910093").fetch_all() == []


# -- what the engine does not keep is acknowledged, and said so ---------------------------------
def test_entries_the_engine_does_not_keep_are_acknowledged_as_not_kept(http, store):
    doc = bundle("lfh_converter_adt_a01_transaction")
    answer = post(http, doc).json()
    for sent, got in zip(doc["entry"], answer["entry"], strict=True):
        kind = sent["resource"]["resourceType"]
        if kind in ("MessageHeader", "Procedure", "Organization", "Practitioner", "Location"):
            assert got["response"]["status"] == "200 OK"
            assert ("information", f"kept: no, the engine does not store {kind}") in [
                (s, d.split(";")[0]) for s, d in notes(got)], notes(got)
    row = encounter_row(store, "VL910002")
    assert row is not None
    assert (row.payer_name, row.payer_class, row.payer_plan) == (
        "CENTERS FOR MEDICARE SAMPLE", "medicare", "MCR001")
    assert (row.unit, row.room) == ("ICU", "07")
    with store.sessions() as session:  # the height (LOINC 8302-2) is no result a rule reads
        assert session.scalars(select(LabResult).where(LabResult.code == "8302-2")).all() == []


def test_every_patient_identifier_is_kept_and_oids_stay_urn_oid(http, fhir):
    assert post(http, bundle("lfh_converter_adt_a01_transaction")).status_code == 200
    [patient] = fhir.resources("Patient").search(identifier=f"{MRN}|910002").fetch_all()
    systems = {(i["system"], i["value"]) for i in patient["identifier"]}
    assert ("urn:oid:2.16.840.1.113883.3.72.5.9.2", "CRN-0000910002-XQ") in systems
    assert ("urn:id:IL-DMV", "S530-0000-9100") in systems
    [same] = fhir.resources("Patient").search(
        identifier="urn:oid:2.16.840.1.113883.3.72.5.9.2|CRN-0000910002-XQ").fetch_all()
    assert same["id"] == patient["id"]


def test_the_payer_and_diagnoses_come_from_the_bundle(http, store):
    assert post(http, bundle("epic_style_conditional_transaction")).status_code == 200
    row = encounter_row(store, "VE910003")
    assert row is not None
    assert (row.payer_name, row.payer_plan, row.payer_class) == (
        "SAMPLE HEALTH PLAN", "MCD200", "medicaid")
    assert (row.facility, row.unit, row.room, row.bed) == ("GENHOSP", "5EAST", "520", "1")
    assert row.admit_source == "7"  # FHIR admit-source emd, kept as HL7 table 0023


def test_a_practitioner_role_and_a_payor_organization_are_followed(http, store):
    assert post(http, bundle("observation_stay_transaction_practitioner_role")
                ).status_code == 200
    row = encounter_row(store, "VO910006")
    assert row is not None
    assert (row.attending_id, row.attending_name) == ("1999000060", "JUNE SAMPLECARDIO")
    assert (row.payer_name, row.payer_class) == ("SAMPLE MEDICAID PLAN", "medicaid")
    with store.sessions() as session:
        [hgb] = session.scalars(select(LabResult).where(LabResult.code == "718-7",
                                                        LabResult.visit_number == "VO910006"))
        assert hgb.value == pytest.approx(11.8)
