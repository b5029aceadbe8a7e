"""Every JSON shape the FHIR API builds by hand is valid FHIR R4 (fhir.resources R4B).

Patients and encounters come from every synthetic HL7 story and event fixture, so merges,
cancelled transfers, discharges, leaves of absence and pre-admissions are all rendered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient as FhirPatient
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine.api.fhir import resources, search
from engine.api.fhir.body import Submitted
from engine.api.fhir.capability import capability_statement
from engine.api.fhir.router import search_registry
from engine.api.fhir.submission import ENCOUNTER_LOAD, submit
from engine.fhir.outcome import outcome
from engine.hl7.framing import split_file
from engine.storage.models import Encounter, Patient
from tests.conftest import HL7
from tests.test_fhir_inbound import observation_bundle

BASE = "http://engine.test/fhir"


def _load_every_fixture(runtime) -> None:
    files = sorted((HL7 / "stories").glob("*.hl7")) + sorted((HL7 / "events").glob("*/*.hl7"))
    assert files, "HL7 fixtures are missing"
    for path in files:
        for message in split_file(path.read_bytes()):
            runtime.intake.hl7(message, channel="file")


def test_patients_and_encounters_from_every_hl7_fixture_are_valid_r4(runtime):
    _load_every_fixture(runtime)
    with runtime.sessions() as session:
        patients = session.scalars(select(Patient).options(
            selectinload(Patient.identifiers))).all()
        encounters = session.scalars(select(Encounter).options(*ENCOUNTER_LOAD)).all()
        merged: dict[int, list[int]] = {}
        for p in patients:
            if p.merged_into_id is not None:
                merged.setdefault(p.merged_into_id, []).append(p.id)
        patient_json = [resources.patient(p, merged.get(p.id)) for p in patients]
        encounter_json = [resources.encounter(e) for e in encounters]
    assert any(p.get("active") is False for p in patient_json), "no merged patient rendered"
    assert {e["status"] for e in encounter_json} >= {"in-progress", "finished", "planned",
                                                     "cancelled"}
    assert any(len(e.get("location", ())) > 1 for e in encounter_json)
    assert any("contained" in e for e in encounter_json)
    for body in patient_json:
        FhirPatient.model_validate(body)
    for body in encounter_json:
        FhirEncounter.model_validate(body)
        # contained Conditions are referenced, as dom-3 requires
        refs = {d["condition"]["reference"] for d in body.get("diagnosis", ())}
        assert refs == {f"#{c['id']}" for c in body.get("contained", ())}


def test_search_pages_capability_and_outcomes_are_valid_r4(runtime):
    _load_every_fixture(runtime)
    registry = search_registry()
    for resource, load in (("Patient", [selectinload(Patient.identifiers)]),
                           ("Encounter", list(ENCOUNTER_LOAD))):
        query = search.parse(registry, resource, [("_count", "2"), ("_cursor", "a1")],
                             runtime.site.zone)
        with runtime.sessions() as session:
            page = search.run(session, query, *load)
            render = resources.patient if resource == "Patient" else resources.encounter
            body = search.bundle(query, page, BASE, [render(r) for r in page.rows])
        assert {link["relation"] for link in body["link"]} >= {"self", "previous", "next"}
        Bundle.model_validate(body)
    CapabilityStatement.model_validate(capability_statement(datetime.now(UTC), BASE, registry))
    OperationOutcome.model_validate(outcome("sample", code="invalid"))


def test_a_transaction_response_is_a_valid_r4_bundle(runtime):
    raw = json.dumps(observation_bundle()).encode()
    answer = submit(runtime, Submitted(raw, "api-client"), "transaction", BASE)
    assert [e["response"]["status"] for e in answer.body["entry"]] == [
        "201 Created", "201 Created", "200 OK", "200 OK"]
    Bundle.model_validate(answer.body)
