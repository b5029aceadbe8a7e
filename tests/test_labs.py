"""Lab results for the HOSPITAL score: ORU^R01 and FHIR Observation through the one path."""

from __future__ import annotations

import socket

from sqlalchemy import select

from engine.hl7.build import adt, oru
from engine.storage.models import InboundMessage, LabResult, RuleOutput
from tests.stream import send


def labs(rt) -> list[tuple[str, float, str]]:
    with rt.sessions() as s:
        return [(r.name, r.value, r.unit) for r in s.scalars(
            select(LabResult).order_by(LabResult.name, LabResult.effective_at))]


def score(rt, code: str = "hospital") -> float | None:
    with rt.sessions() as s:
        row = s.scalars(select(RuleOutput).where(RuleOutput.code == code,
                                                 RuleOutput.status == "active")).first()
        return row.value if row is not None else None


def admit(rt) -> None:
    assert rt.intake.hl7(adt("A01", "202603021000", admit_time="202603021000")).outcome == \
        "accepted"


def test_results_for_an_admitted_patient_are_stored_and_feed_the_hospital_score(runtime):
    admit(runtime)
    receipt = runtime.intake.hl7(oru("202603070600", "718-7|10.9|g/dL", "2951-2|131|mmol/L",
                                     "2345-7|250|mg/dL"))  # glucose: not a result we keep
    assert receipt.outcome == "accepted" and receipt.ack_code == "AA"
    assert labs(runtime) == [("hemoglobin", 10.9, "g/dL"), ("sodium", 131.0, "mmol/L")]
    assert score(runtime) is not None


def test_the_same_results_twice_have_one_effect(runtime):
    admit(runtime)
    message = oru("202603070600", "718-7|10.9|g/dL", control_id="LABDUP1")
    first = runtime.intake.hl7(message)
    again = runtime.intake.hl7(message)
    resent = runtime.intake.hl7(oru("202603070600", "718-7|10.9|g/dL|F|202603070600"))
    assert (first.outcome, again.outcome, resent.outcome) == ("accepted", "duplicate", "accepted")
    assert again.ack == first.ack
    assert labs(runtime) == [("hemoglobin", 10.9, "g/dL")]


def test_a_correction_updates_and_a_deletion_withdraws_the_result(runtime):
    admit(runtime)
    runtime.intake.hl7(oru("202603070600", "718-7|10.9|g/dL|F|202603070600"))
    runtime.intake.hl7(oru("202603070700", "718-7|11.4|g/dL|C|202603070600"))
    assert labs(runtime) == [("hemoglobin", 11.4, "g/dL")]
    runtime.intake.hl7(oru("202603070800", "718-7||g/dL|D|202603070600"))
    assert labs(runtime) == []


def test_latest_by_result_time_not_by_arrival_and_units_converted(runtime):
    admit(runtime)
    runtime.intake.hl7(oru("202603071200", "718-7|124|g/L|F|202603071200",
                           "2951-2|138|meq/L|F|202603071200"))
    runtime.intake.hl7(oru("202603071300", "718-7|10.9|g/dL|F|202603070600",
                           "2951-2|131|mmol/L|F|202603070600"))  # older, arrived later
    with runtime.sessions() as s:
        from engine.planning.prefetch import prefetch  # what an evaluation reads
        from engine.storage.models import Encounter
        enc = s.scalars(select(Encounter)).one()
        assert prefetch(s, [enc]).labs[enc.id] == {"hemoglobin": 12.4, "sodium": 138.0}


def test_results_without_a_visit_count_for_the_stay_they_fall_in(runtime):
    admit(runtime)
    assert runtime.intake.hl7(oru("202603070600", "718-7|10.9|g/dL", "2951-2|131|mmol/L",
                                  visit="")).outcome == "accepted"
    assert score(runtime) is not None


def test_unusable_results_are_refused_with_a_reason_and_kept(runtime):
    admit(runtime)
    bad_unit = runtime.intake.hl7(oru("202603070600", "718-7|10.9|mg/dL"))
    not_number = runtime.intake.hl7(oru("202603070600", "2951-2|see note|mmol/L"))
    wrong_trigger = runtime.intake.hl7(oru("202603070600", "718-7|10.9|g/dL", trigger="R30"))
    assert bad_unit.outcome == "error" and "unit 'mg/dL'" in bad_unit.reason
    assert "ERR|" in bad_unit.ack
    assert not_number.outcome == "error" and "not a number" in not_number.reason
    assert wrong_trigger.outcome == "rejected" and wrong_trigger.ack_code == "AR"
    assert labs(runtime) == []
    with runtime.sessions() as s:
        kept = s.scalars(select(InboundMessage.outcome).where(
            InboundMessage.message_type == "ORU")).all()
    assert sorted(kept) == ["error", "error", "rejected"]


def test_obx_in_an_adt_message_is_stored_too(runtime):
    runtime.intake.hl7(adt("A01", "202603021000", extra=[
        "OBX|1|NM|718-7^Hemoglobin^LN||11.8|g/dL|||||F|||202603020930"]))
    assert labs(runtime) == [("hemoglobin", 11.8, "g/dL")]


def test_results_over_a_real_mllp_socket(server):
    with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=10) as sock:
        assert b"MSA|AA" in send(sock, adt("A01", "202603021000", mrn="100777", visit="V7771"))
        ack = send(sock, oru("202603070600", "718-7|10.9|g/dL", "2951-2|131|mmol/L",
                             mrn="100777", visit="V7771"))
        assert b"MSA|AA" in ack
        bad = send(sock, oru("202603070600", "718-7|10.9|mg/dL", mrn="100777", visit="V7771"))
        assert b"MSA|AE" in bad and b"ERR|" in bad


# -- FHIR Observation --------------------------------------------------------------------------
MRN_SYSTEM = "urn:engine:id:GENHOSP"
LOINC = "http://loinc.org"


def observation(code: str, value: float | None, unit: str, *, mrn: str = "100777",
                when: str = "2026-03-07T06:00:00-06:00", status: str = "final",
                encounter: str | None = None) -> dict:
    obs: dict = {"resourceType": "Observation", "status": status,
                 "code": {"coding": [{"system": LOINC, "code": code}]},
                 "subject": {"identifier": {"system": MRN_SYSTEM, "value": mrn}},
                 "effectiveDateTime": when}
    if value is not None:
        obs["valueQuantity"] = {"value": value, "unit": unit,
                                "system": "http://unitsofmeasure.org", "code": unit}
    if encounter:
        obs["encounter"] = {"reference": encounter}
    return obs


def test_observations_map_to_lab_results_like_obx():
    import json

    from engine.core.site import load_site_profile
    from engine.fhir.inbound import read
    from tests.conftest import FIXTURES

    site = load_site_profile(FIXTURES / "site_profile.yaml")
    [event] = read(json.dumps(observation("718-7", 124, "g/L")).encode(), site).events
    assert event.trigger == "R01" and event.visit is None
    assert [(lab.name, lab.value, lab.unit) for lab in event.labs] == [
        ("hemoglobin", 12.4, "g/dL")]
    try:
        read(json.dumps(observation("2951-2", 131, "mg/dL")).encode(), site)
    except Exception as exc:  # noqa: BLE001 - the reason is what matters
        assert "unit 'mg/dL'" in str(exc)
    else:
        raise AssertionError("a sodium in mg/dL must be refused")


def test_results_over_http_fhir_and_a_real_mllp_socket(server):
    with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=10) as sock:
        assert b"MSA|AA" in send(sock, adt("A01", "202603021000", mrn="100777", visit="V7771"))
    with server.client() as http:
        headers = {"Content-Type": "application/fhir+json"}
        created = http.post("/Observation", headers=headers,
                            json=observation("718-7", 10.9, "g/dL"))
        assert created.status_code == 201, created.text
        assert "/Observation/" in created.headers["Location"]
        other = http.post("/Observation", headers=headers,
                          json=observation("2345-7", 250, "mg/dL"))  # glucose: not kept
        assert other.status_code == 200 and "not kept" in other.json()["issue"][0]["diagnostics"]
        refused = http.post("/Observation", headers=headers,
                            json=observation("2951-2", 131, "mg/dL"))
        assert refused.status_code == 422
        assert "unit" in refused.json()["issue"][0]["diagnostics"]
        enc_id = http.get("/Encounter", params={"identifier": "V7771"}).json()["entry"][0][
            "resource"]["id"]
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": observation("2951-2", 131, "mmol/L", encounter=f"Encounter/{enc_id}"),
             "request": {"method": "POST", "url": "Observation"}}]}
        answer = http.post("", headers=headers, json=bundle)
        assert answer.status_code == 200, answer.text
        assert "lab result" in answer.json()["entry"][0]["response"]["outcome"]["issue"][0][
            "diagnostics"]
        meta = http.get("/metadata").json()
        assert any(r["type"] == "Observation" for r in meta["rest"][0]["resource"])
    from engine.api.runtime import Runtime
    from tests.conftest import make_settings
    rt = Runtime.open(make_settings(server.database_url))
    try:
        assert labs(rt) == [("hemoglobin", 10.9, "g/dL"), ("sodium", 131.0, "mmol/L")]
        assert score(rt) is not None  # both labs on file: the HOSPITAL score is computed
        with rt.sessions() as s:
            kept = s.scalars(select(InboundMessage.outcome).where(
                InboundMessage.channel == "fhir")).all()
        assert kept.count("rejected") + kept.count("error") == 1  # the mg/dL sodium
        assert kept.count("ignored") == 1  # the glucose: acknowledged, not kept
    finally:
        rt.close()


def test_an_observation_in_a_bundle_belongs_to_the_bundles_encounter():
    import json

    from engine.core.site import load_site_profile
    from engine.fhir.inbound import read
    from tests.conftest import FIXTURES
    from tests.test_fhir_inbound import ENC, PAT, observation_bundle

    site = load_site_profile(FIXTURES / "site_profile.yaml")
    bundle = observation_bundle(mrn="100777", visit="VB1")
    obs = observation("2951-2", 131, "mmol/L", encounter=ENC)
    obs["subject"] = {"reference": PAT}
    bundle["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000009",
                            "resource": obs, "request": {"method": "POST", "url": "Observation"}})
    mapping = read(json.dumps(bundle).encode(), site)
    assert [e.trigger for e in mapping.events] == ["FHIR", "R01"]  # results after the visit
    result = mapping.events[-1]
    assert result.visit is not None and result.visit.visit_number.value == "VB1"
    assert mapping.entries[-1].visit.value == "VB1"
