"""FHIR input -> AdtEvents, from the bytes alone: the mapping decisions and their refusals.

The builders at the top are the synthetic FHIR samples the API tests post as well.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.fhir import resources
from engine.core.events import EventError
from engine.core.site import load_site_profile
from engine.fhir import vocabulary as v
from engine.fhir.envelope import Context, wrap
from engine.fhir.inbound import InvalidFhir, map_raw, read
from engine.storage.models import Diagnosis, Encounter, LocationStay, StatusPeriod
from tests.conftest import FIXTURES

SITE = load_site_profile(FIXTURES / "site_profile.yaml")
MRN_SYSTEM = "urn:engine:id:GENHOSP"


# -- synthetic FHIR samples (no real patients) -----------------------------------------------
def patient_json(mrn: str, *, family: str = "TESTFHIR", given: tuple[str, ...] = ("ALPHA",),
                 gender: str = "female", birth: str = "1950-01-02") -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"type": {"coding": [{"system": v.V2_IDENTIFIER_TYPE, "code": "MR"}]},
                        "system": MRN_SYSTEM, "value": mrn}],
        "name": [{"family": family, "given": list(given)}],
        "gender": gender,
        "birthDate": birth,
        "address": [{"line": ["1 SAMPLE RD"], "city": "SPRINGFIELD", "state": "IL",
                     "postalCode": "62701"}],
    }


def encounter_json(visit: str, subject: dict, *, klass: str = "IMP",
                   status: str = "in-progress", start: str = "2026-03-02T10:00:00-06:00",
                   end: str | None = None, location: str | None = "4WEST 401-A",
                   last_updated: str | None = None, **extra) -> dict:
    enc: dict = {
        "resourceType": "Encounter",
        "identifier": [{"system": MRN_SYSTEM, "value": visit}],
        "status": status,
        "class": {"system": v.V3_ACT_CODE, "code": klass},
        "subject": subject,
        "period": {"start": start, **({"end": end} if end else {})},
    }
    if location:
        enc["location"] = [{"location": {"display": location}, "status": "active"}]
    if last_updated:
        enc["meta"] = {"lastUpdated": last_updated}
    enc.update(extra)
    return enc


def condition_json(code: str, encounter_ref: str, display: str = "Sample diagnosis") -> dict:
    return {"resourceType": "Condition",
            "code": {"coding": [{"system": v.ICD10CM, "code": code, "display": display}]},
            "subject": {"reference": "urn:uuid:00000000-0000-4000-8000-000000000001"},
            "encounter": {"reference": encounter_ref}}


def coverage_json(plan: str, beneficiary_ref: str) -> dict:
    return {"resourceType": "Coverage", "status": "active",
            "beneficiary": {"reference": beneficiary_ref},
            "payor": [{"display": f"PAYER {plan}"}],
            "class": [{"type": {"coding": [{"system": v.COVERAGE_CLASS, "code": "plan"}]},
                       "value": plan}]}


def transaction(*resources_: tuple[str, dict], identifier: str | None = None,
                timestamp: str | None = None) -> dict:
    bundle: dict = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": res,
         "request": {"method": "POST", "url": res["resourceType"]}}
        for url, res in resources_]}
    if identifier:
        bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": identifier}
    if timestamp:
        bundle["timestamp"] = timestamp
    return bundle


PAT = "urn:uuid:00000000-0000-4000-8000-000000000001"
ENC = "urn:uuid:00000000-0000-4000-8000-000000000002"


def observation_bundle(mrn: str = "700001", visit: str = "VF7001", **kw) -> dict:
    """Patient + observation Encounter + ICD-10 Condition + Medicare Coverage."""
    return transaction(
        (PAT, patient_json(mrn)),
        (ENC, encounter_json(visit, {"reference": PAT}, klass="OBSENC",
                             last_updated="2026-03-02T16:30:00Z")),
        ("urn:uuid:00000000-0000-4000-8000-000000000003", condition_json("R07.9", ENC,
                                                                         "Chest pain")),
        ("urn:uuid:00000000-0000-4000-8000-000000000004", coverage_json("MCR001", PAT)),
        **kw,
    )


def raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


# -- the mapping -------------------------------------------------------------------------------
def test_an_observation_bundle_becomes_one_event_with_diagnosis_and_medicare_coverage():
    [event] = map_raw(raw(observation_bundle()), SITE)
    assert event.trigger == "FHIR"
    assert event.event_time == datetime(2026, 3, 2, 16, 30, tzinfo=UTC)
    assert (event.patient.mrn.system, event.patient.mrn.value) == ("GENHOSP", "700001")
    assert event.patient.mrn.type_code == "MR"
    assert (event.patient.family, event.patient.given, event.patient.sex) == (
        "TESTFHIR", "ALPHA", "F")
    assert event.patient.birth_date == date(1950, 1, 2)
    assert event.patient.address == {"line": "1 SAMPLE RD", "city": "SPRINGFIELD",
                                     "state": "IL", "postal_code": "62701"}
    visit = event.visit
    assert (visit.visit_number.system, visit.visit_number.value) == ("GENHOSP", "VF7001")
    assert visit.care_status == "observation" and visit.status == "in-progress"
    assert (visit.location.unit, visit.location.room, visit.location.bed) == ("4WEST", "401",
                                                                               "A")
    assert visit.admit_time == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
    [dx] = event.diagnoses
    assert (dx.code, dx.system, dx.display, dx.sequence) == ("R07.9", "I10", "Chest pain", 1)
    assert event.coverage.plan_code == "MCR001"
    assert event.coverage.payer_class == "medicare"
    assert event.coverage.payer_name == "PAYER MCR001"


@pytest.mark.parametrize(("klass", "care_status"), [
    ("IMP", "inpatient"), ("OBSENC", "observation"), ("EMER", "emergency"),
    ("AMB", "outpatient"), ("PRENC", "preadmit"),
])
def test_encounter_class_sets_the_care_status(klass, care_status):
    doc = encounter_json("VC1", {"identifier": {"system": MRN_SYSTEM, "value": "1"}},
                         klass=klass, last_updated="2026-03-02T16:30:00Z")
    [event] = map_raw(raw(doc), SITE)
    assert event.visit.care_status == care_status


def test_event_time_falls_back_to_bundle_timestamp_then_to_receipt():
    bundle = observation_bundle(timestamp="2026-03-03T08:00:00Z")
    del bundle["entry"][1]["resource"]["meta"]
    [event] = map_raw(raw(bundle), SITE)
    assert event.event_time == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    del bundle["timestamp"]
    with pytest.raises(EventError, match="no event time"):
        map_raw(raw(bundle), SITE)
    stored = wrap(raw(bundle), Context("transaction", received="2026-03-04T09:00:00.000Z"))
    [event] = map_raw(stored, SITE)
    assert event.event_time == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


def test_a_server_patient_reference_replays_from_the_stored_envelope_alone():
    doc = encounter_json("VR1", {"reference": "Patient/42"})
    context = Context("create", received="2026-03-02T16:00:00.000Z", references={
        "Patient/42": {"mrn": {"system": "GENHOSP", "value": "424242", "type": "MR"}}})
    [event] = map_raw(wrap(raw(doc), context), SITE)
    assert event.patient.mrn.value == "424242"
    with pytest.raises(EventError, match="neither in this Bundle nor a Patient on this server"):
        map_raw(wrap(raw(doc), Context("create", received="2026-03-02T16:00:00.000Z")), SITE)


def test_an_update_must_name_the_encounter_it_updates():
    doc = encounter_json("V-OTHER", {"identifier": {"system": MRN_SYSTEM, "value": "1"}},
                         id="5", last_updated="2026-03-02T16:30:00Z")
    refs = {"Encounter/5": {"visit": {"system": "GENHOSP", "value": "V-ORIGINAL"}}}
    with pytest.raises(EventError, match="does not match Encounter/5") as err:
        map_raw(wrap(raw(doc), Context("update", "Encounter/5", references=refs)), SITE)
    assert not isinstance(err.value, InvalidFhir)
    doc["id"] = "6"
    with pytest.raises(InvalidFhir, match="Encounter.id"):
        map_raw(wrap(raw(doc), Context("update", "Encounter/5", references=refs)), SITE)


def test_a_bundle_of_only_a_patient_updates_the_person():
    [event] = map_raw(raw(transaction((PAT, patient_json("700002")),
                                      timestamp="2026-03-02T10:00:00Z")), SITE)
    assert event.visit is None and event.patient.mrn.value == "700002"


def test_conditions_listed_by_the_encounter_keep_rank_and_role():
    enc = encounter_json("VD1", {"reference": PAT}, last_updated="2026-03-02T16:30:00Z",
                         diagnosis=[
                             {"condition": {"reference": "urn:uuid:c2"}, "rank": 2},
                             {"condition": {"reference": "#adm"}, "rank": 1, "use": {
                                 "coding": [{"system": v.DIAGNOSIS_ROLE, "code": "AD"}]}},
                         ],
                         contained=[{**condition_json("I63.9", ENC), "id": "adm"}])
    bundle = transaction((PAT, patient_json("700003")), (ENC, enc),
                         ("urn:uuid:c2", condition_json("E11.9", ENC)))
    [event] = map_raw(raw(bundle), SITE)
    assert [(d.sequence, d.code, d.diagnosis_type) for d in event.diagnoses] == [
        (1, "I63.9", "A"), (2, "E11.9", None)]


def test_what_the_server_publishes_maps_back_to_the_same_visit():
    """GET then PUT must not lose or change anything the engine holds."""
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    row = Encounter(id=9, patient_id=3, visit_system="GENHOSP", visit_number="VRT1",
                    status="in-progress", care_status="observation", version=2,
                    updated_at=start, admit_time=start, hospital_service="MED",
                    admit_source="7", attending_id="1234", attending_name="TEST DOCTOR")
    row.locations = [LocationStay(unit="ICU", room="2", bed="B", facility="GENHOSP",
                                  start=start, cancelled=False)]
    row.status_periods = [StatusPeriod(care_status="observation", start=start,
                                       cancelled=False)]
    row.diagnoses = [Diagnosis(sequence=1, code="J18.9", system="I10", display="Pneumonia",
                               diagnosis_type="A")]
    published = resources.encounter(row)
    refs = {"Encounter/9": {"visit": {"system": "GENHOSP", "value": "VRT1"},
                            "mrn": {"system": "GENHOSP", "value": "300003", "type": "MR"}},
            "Patient/3": {"mrn": {"system": "GENHOSP", "value": "300003", "type": "MR"}}}
    [event] = map_raw(wrap(raw(published), Context("update", "Encounter/9",
                                                   references=refs)), SITE)
    visit = event.visit
    assert (visit.location.unit, visit.location.room, visit.location.bed,
            visit.location.facility) == ("ICU", "2", "B", "GENHOSP")
    assert (visit.care_status, visit.status, visit.hospital_service, visit.admit_source) == (
        "observation", "in-progress", "MED", "7")
    assert (visit.attending_id, visit.attending_name) == ("1234", "TEST DOCTOR")
    assert [(d.code, d.diagnosis_type) for d in event.diagnoses] == [("J18.9", "A")]
    assert event.patient.mrn.value == "300003"


def test_entries_report_what_each_became():
    mapping = read(raw(observation_bundle(identifier="bundle-1")), SITE)
    assert mapping.control_id == "bundle-1"
    assert [e.resource_type for e in mapping.entries] == ["Patient", "Encounter", "Condition",
                                                          "Coverage"]
    assert {e.visit.value for e in mapping.entries[1:]} == {"VF7001"}


# -- refusals: InvalidFhir is a 400, any other EventError a 422 ---------------------------------
@pytest.mark.parametrize(("body", "reason"), [
    (b"{not json", "not valid JSON"),
    (b"", "body is empty"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[1, 2]", "not a JSON object"),
    (b"[" * 200 + b"]" * 200, "nested too deeply"),
    (raw(patient_json("1")), "expected Encounter"),
])
def test_what_is_not_fhir_json_is_invalid(body, reason):
    with pytest.raises(InvalidFhir, match=reason):
        map_raw(body, SITE)


def test_fhir_validation_errors_name_the_element():
    bundle = observation_bundle()
    bundle["entry"][1]["resource"]["period"]["start"] = "2026-13-01"
    with pytest.raises(InvalidFhir, match=r"entry\[1\]\.resource\.period\.start") as err:
        map_raw(raw(bundle), SITE)
    assert "2026-13-01" in str(err.value)


def test_types_the_engine_does_not_keep_are_acknowledged_and_bad_codes_are_invalid():
    bundle = observation_bundle()
    bundle["entry"].append({"resource": {"resourceType": "MedicationRequest",
                                         "status": "active", "intent": "order"},
                            "request": {"method": "POST", "url": "MedicationRequest"}})
    mapping = read(raw(bundle), SITE)
    assert len(mapping.events) == 1
    assert (mapping.entries[4].kept, mapping.entries[4].not_kept) == (
        False, "kept: no, the engine does not store MedicationRequest")
    bundle = observation_bundle()
    bundle["entry"][1]["resource"]["status"] = "walking"
    with pytest.raises(InvalidFhir, match="not an R4 Encounter status"):
        map_raw(raw(bundle), SITE)
    bundle = observation_bundle()
    bundle["type"] = "collection"
    with pytest.raises(InvalidFhir, match="transaction or batch"):
        map_raw(raw(bundle), SITE)


def test_a_batch_answers_a_bad_entry_alone():
    bundle = observation_bundle(timestamp="2026-03-02T10:00:00Z")
    bundle["type"] = "batch"
    bundle["entry"][1]["resource"]["period"]["start"] = "2026-13-01"
    mapping = read(raw(bundle), SITE)
    assert mapping.batch
    assert isinstance(mapping.entries[1].error, InvalidFhir)
    # the Patient stands alone; the Condition and Coverage need the refused Encounter
    assert [u.members for u in mapping.units] == [[0]]
    assert "refused" in str(mapping.entries[2].error)
    assert mapping.entries[3].error is not None


def test_a_stored_batch_piece_replays_only_its_own_entries():
    bundle = observation_bundle(timestamp="2026-03-02T10:00:00Z")
    bundle["type"] = "batch"
    piece = wrap(raw(bundle), Context("batch", "Bundle.entry[1]"))
    [event] = map_raw(piece, SITE)
    assert event.visit is not None and event.visit.visit_number.value == "VF7001"
    assert [d.code for d in event.diagnoses] == ["R07.9"]
    [patient_only] = map_raw(wrap(raw(bundle), Context("batch", "Bundle.entry[0]")), SITE)
    assert patient_only.visit is None


def _anonymous(entry: dict) -> None:
    """An entry with no identifier, no id and no fullUrl."""
    for key in ("identifier", "id"):
        entry["resource"].pop(key, None)
    entry.pop("fullUrl", None)


@pytest.mark.parametrize(("change", "reason"), [
    # no identifier is keyed by the resource id (or fullUrl); with neither, nothing keys it
    (lambda b: _anonymous(b["entry"][1]), "nothing to key the stay by"),
    (lambda b: _anonymous(b["entry"][0]),
     "nothing to key the patient by; send an identifier with system urn:engine:id:GENHOSP"),
    (lambda b: b["entry"][1]["resource"]["class"].update(code="HH"), "class 'HH'"),
    (lambda b: b["entry"][2]["resource"].pop("encounter"), "not linked to an Encounter"),
    (lambda b: b["entry"][1]["resource"].update(subject={"reference": "Patient/999"}),
     "Patient/999 is neither in this Bundle"),
])
def test_valid_fhir_that_cannot_be_applied_says_why(change, reason):
    bundle = observation_bundle()
    change(bundle)
    with pytest.raises(EventError, match=reason) as err:
        map_raw(raw(bundle), SITE)
    assert not isinstance(err.value, InvalidFhir)


# -- whatever arrives, the answer is events or a reason -------------------------------------------
def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*prefix, i))


def _rich_bundle() -> dict:
    """Every element the mapping reads, for the fuzzer to break."""
    bundle = observation_bundle(identifier="fuzz", timestamp="2026-03-02T10:00:00Z")
    enc = bundle["entry"][1]["resource"]
    enc.update(
        contained=[{**condition_json("I10", ENC), "id": "dx1"}],
        diagnosis=[{"condition": {"reference": "#dx1"}, "rank": 1,
                    "use": {"coding": [{"system": v.DIAGNOSIS_ROLE, "code": "AD"}]}}],
        participant=[{"type": [{"coding": [{"system": v.V3_PARTICIPATION, "code": "ATND"}]}],
                      "individual": {"reference": "Practitioner/7", "display": "DR SAMPLE"}}],
        serviceType={"coding": [{"system": v.V2_HOSPITAL_SERVICE, "code": "MED"}]},
        hospitalization={
            "admitSource": {"coding": [{"system": v.ADMIT_SOURCE, "code": "emd"}]},
            "dischargeDisposition": {"coding": [{"system": v.NUBC_DISCHARGE, "code": "01"}]}},
    )
    enc["location"].append({"location": {"identifier": {"system": v.LOCATION_SYSTEM,
                                                        "value": "ICU^1^A"}},
                            "status": "completed",
                            "period": {"start": "2026-03-01T10:00:00Z"}})
    bundle["entry"][3]["resource"]["order"] = 1
    return bundle


_SAMPLE = _rich_bundle()
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.sampled_from(["", "IMP", "Patient/1", "#dx1", "urn:uuid:x", "2026-03-02",
                       "2026-03-02T10:00:00Z", "finished", "Encounter", "Bundle"])
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["resourceType", "reference", "code", "system", "value", "x"]),
        inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(_paths(_SAMPLE))[1:]), _JSON)
def test_any_mangled_bundle_maps_to_events_or_a_reason(path, value):
    doc = copy.deepcopy(_SAMPLE)
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    try:
        mapping = read(raw(doc), SITE)
    except EventError as exc:
        assert str(exc)
        assert "internal error" not in str(exc)  # a crash in the mapper is a bug, not a reason
    else:
        assert mapping.events


def test_the_fuzzing_sample_itself_maps():
    [event] = map_raw(raw(_rich_bundle()), SITE)
    assert event.visit.attending_name == "DR SAMPLE" and event.visit.admit_source == "7"
    assert event.visit.discharge_disposition == "01"
    assert [d.code for d in event.diagnoses] == ["I10", "R07.9"]


# -- converter Bundles, mangled: a batch answers each entry, a transaction maps or refuses ------
_CONVERTED = json.loads((FIXTURES.parent / "tests" / "fixtures" / "fhir" /
                         "epic_style_conditional_transaction.json").read_text())


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(list(_paths(_CONVERTED))[1:]), value=_JSON)
def test_any_mangled_converter_bundle_maps_or_says_why(kind, path, value):
    doc = copy.deepcopy(_CONVERTED)
    doc["type"] = kind
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    try:
        mapping = read(raw(doc), SITE)
    except EventError as exc:
        assert str(exc)
        assert "internal error" not in str(exc)
        return
    for entry in mapping.entries:
        assert entry.error is None or "internal error" not in str(entry.error)
    if doc.get("type") == "batch":
        assert mapping.batch and len(mapping.entries) == len(doc["entry"])


def test_urn_id_spellings_of_the_site_authority_key_the_same_patient_and_stay():
    doc = json.loads((FIXTURES.parent / "tests" / "fixtures" / "fhir" /
                      "lfh_converter_adt_a01_transaction.json").read_text())
    patient = next(e for e in doc["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["request"] = {"method": "PUT", "url": "Patient?identifier=urn:id:GENHOSP|910002"}
    [event] = map_raw(raw(doc), SITE)
    assert (event.patient.mrn.system, event.patient.mrn.value) == ("GENHOSP", "910002")
    assert event.visit.visit_number.system == "GENHOSP"
    others = {(i.system, i.value) for i in event.patient.identifiers} - {("GENHOSP", "910002")}
    assert ("urn:id:IL-DMV", "S530-0000-9100") in others  # another authority: kept as sent


def test_a_condition_without_icd10_and_a_partial_birth_date_are_acknowledged_not_refused():
    bundle = observation_bundle()
    bundle["entry"][2]["resource"]["code"]["coding"][0].update(system="http://snomed.info/sct")
    bundle["entry"][0]["resource"]["birthDate"] = "1950"
    mapping = read(raw(bundle), SITE)
    [event] = mapping.events
    assert event.diagnoses is None  # the diagnoses on file are not replaced by nothing
    assert event.patient.birth_date is None
    assert "no ICD-10-CM code" in (mapping.entries[2].not_kept or "")
    assert any("birthDate" in w for w in mapping.entries[0].warnings)
