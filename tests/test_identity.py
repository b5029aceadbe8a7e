"""Identity as hospitals describe it: MRN authorities by namespace or OID, two MRN
authorities after a merger, senders whose authority names the site does not know, and
every identifier findable through FHIR as the sender wrote it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, Table, func, insert, select

from engine.api.app import create_app
from engine.core.site import SiteProfileError, load_site_profile
from engine.hl7.framing import exchange
from engine.storage import migrate
from engine.storage.db import make_engine
from engine.storage.models import Encounter, InboundMessage, Patient, PatientIdentifier
from harness.launch import start_server
from tests.conftest import auth_headers

FIXTURES = Path(__file__).parent.parent / "fixtures"
GENERAL = FIXTURES / "site_profile.yaml"
RIVERSIDE = FIXTURES / "site_profile_riverside.yaml"
RMC_OID = "2.16.840.1.113883.3.9901.1"
CVH_OID = "2.16.840.1.113883.3.9902.1"


def hl7(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode()


def admit(pid3: str, *, control: str, trigger: str = "A01", when: str = "20260302101500",
          receiver: str = "DCPLAN", pv1_19: str = "V500^^^GENHOSP^VN", pid18: str = "",
          pid2: str = "", pv1_class: str = "I", version: str = "2.5.1") -> bytes:
    """An ADT as an outside interface engine writes it (not the test builder)."""
    return hl7(
        f"MSH|^~\\&|EPIC|NORTHSIDE|{receiver}|GENHOSP|{when}||ADT^{trigger}|{control}|P|{version}",
        f"EVN|{trigger}|{when}",
        f"PID|1|{pid2}|{pid3}||DOE^JANE^Q||19500101|F" + ("|" * 10 + pid18 if pid18 else ""),
        f"PV1|1|{pv1_class}|4WEST^401^A||||||||||||||||{pv1_19}",
    )


def radmit(pid3: str, **fields) -> bytes:
    """The same, with Riverside's local inpatient class."""
    return admit(pid3, pv1_class="IN", **fields)


@pytest.fixture
def general(runtime_factory) -> Iterator[TestClient]:
    with TestClient(create_app(runtime_factory(rulesets="", site_profile=GENERAL)),
                    follow_redirects=False) as client:
        yield client


@pytest.fixture
def riverside(runtime_factory) -> Iterator[TestClient]:
    with TestClient(create_app(runtime_factory(rulesets="", site_profile=RIVERSIDE)),
                    follow_redirects=False) as client:
        yield client


def send(client: TestClient, raw: bytes):
    return client.app.state.runtime.intake.hl7(raw)


def search(client: TestClient, query: str) -> list[dict]:
    response = client.get(f"/fhir/{query}", headers=auth_headers(client))
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def count(client: TestClient, model) -> int:
    with client.app.state.runtime.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


# -- MRN authorities by namespace or OID -------------------------------------------------------

@pytest.mark.parametrize("authority", ["RMC", f"RMC&{RMC_OID}&ISO", f"&{RMC_OID}&ISO",
                                       f"&{RMC_OID}", f"rmc&{RMC_OID}&ISO"])
def test_an_oid_authority_is_one_identity_however_the_sender_spells_it(riverside, authority):
    first = send(riverside, radmit(f"4711^^^RMC&{RMC_OID}&ISO^MR", control="1",
                                  pv1_19="V9^^^RMC^VN"))
    again = send(riverside, radmit(f"4711^^^{authority}^MR", control="2", trigger="A08",
                                  when="20260302111500", pv1_19="V9^^^RMC^VN"))

    assert (first.outcome, again.outcome) == ("accepted", "accepted"), again.reason
    assert count(riverside, Patient) == 1 and count(riverside, Encounter) == 1
    [patient] = search(riverside, f"Patient?identifier=urn:oid:{RMC_OID}|4711")
    mrn = patient["identifier"][0]
    assert (mrn["system"], mrn["value"], mrn["use"]) == (f"urn:oid:{RMC_OID}", "4711", "usual")


def test_fhir_urn_oid_is_the_same_patient_as_hl7_namespace_and_oid(riverside):
    send(riverside, radmit(f"4711^^^RMC&{RMC_OID}&ISO^MR", control="1", pv1_19="V9^^^RMC^VN"))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": {"lastUpdated": "2026-03-03T10:00:00Z"},
                      "identifier": [{"system": f"urn:oid:{RMC_OID}", "value": "4711"}],
                      "name": [{"family": "DOE", "given": ["JANE"]}]}},
        {"request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "status": "in-progress",
                      "meta": {"lastUpdated": "2026-03-03T10:00:00Z"},
                      "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9901.2",
                                      "value": "V10"}],
                      "class": {"code": "IMP"}, "subject": {"reference": "urn:uuid:p1"}}},
    ]}
    response = riverside.post("/fhir", json=bundle, headers={
        **auth_headers(riverside), "Content-Type": "application/fhir+json"})

    assert response.status_code == 200, response.text
    assert count(riverside, Patient) == 1 and count(riverside, Encounter) == 2
    assert len(search(riverside, "Patient?identifier=RMC|4711")) == 1
    [encounter] = search(riverside, "Encounter?identifier=V10")
    assert encounter["identifier"][0]["system"] == "urn:oid:2.16.840.1.113883.3.9901.2"


def test_a_merged_hospital_patient_known_by_the_legacy_mrn_keeps_one_record(riverside):
    """Cedar Valley's patient comes back after the merger: the feed now carries both MRNs."""
    legacy = send(riverside, radmit(f"C-77^^^CVH&{CVH_OID}&ISO^PI", control="1", trigger="A28"))
    assert legacy.outcome == "accepted", legacy.reason

    both = send(riverside, radmit("C-77^^^CVH^PI~4711^^^RMC^MR", control="2",
                                 when="20260303080000", pv1_19="V9^^^RMC^VN"))

    assert both.outcome == "accepted", both.reason
    assert count(riverside, Patient) == 1
    with riverside.app.state.runtime.sessions() as s:
        mrn = s.scalars(select(PatientIdentifier).where(PatientIdentifier.is_mrn)).all()
    # Riverside's own MRN is preferred: once it arrives it is the patient's one MRN.
    assert [(i.system, i.value) for i in mrn] == [(f"urn:oid:{RMC_OID}", "4711")]
    for query in (f"urn:oid:{RMC_OID}|4711", f"{RMC_OID}|4711", "RMC|4711", "CVH|C-77",
                  f"urn:oid:{CVH_OID}|C-77", "4711"):
        assert len(search(riverside, f"Patient?identifier={query}")) == 1, query


def test_the_most_preferred_authority_is_the_mrn_wherever_it_stands_in_pid3(riverside):
    send(riverside, radmit("C-78^^^CVH^MR~4712^^^RMC^MR", control="1", pv1_19="V9^^^RMC^VN"))
    [patient] = search(riverside, "Patient?identifier=C-78")
    usual = [i for i in patient["identifier"] if i.get("use") == "usual"]
    assert [(i["system"], i["value"]) for i in usual] == [(f"urn:oid:{RMC_OID}", "4712")]
    assert {i["system"] for i in patient["identifier"]} == {f"urn:oid:{RMC_OID}",
                                                           f"urn:oid:{CVH_OID}"}


# -- senders whose authority names the site does not know -----------------------------------------

def test_an_unknown_authority_is_applied_by_fallback_with_a_warning(general):
    receipt = send(general, admit("88001^^^NORTHSIDE^MR", control="1"))

    assert receipt.outcome == "accepted" and "MSA|AA|" in receipt.ack
    with general.app.state.runtime.sessions() as s:
        row = s.scalars(select(InboundMessage)).one()
    assert row.warnings is not None and "taken as the MRN" in row.warnings
    assert "taken as the MRN" in receipt.ack  # ERR severity W
    [patient] = search(general, "Patient?identifier=NORTHSIDE|88001")
    assert patient["identifier"][0]["system"] == "urn:engine:id:NORTHSIDE"
    assert len(search(general, "Patient?identifier=urn:engine:id:NORTHSIDE|88001")) == 1
    assert len(search(general, "Encounter?patient.identifier=88001")) == 1


def test_every_pid3_repetition_is_kept_and_findable_the_first_too(general):
    pid3 = ("X-1^^^&1.2.840.114350.1.13.99.2.7.5.737384.14&ISO^PI"
            "~88002^^^NORTHSIDE&1.2.840.114350.1.13.99&ISO^MR~999-00-1234^^^SSA^SS")
    assert send(general, admit(pid3, control="1")).outcome == "accepted"

    for query in ("X-1", "urn:oid:1.2.840.114350.1.13.99.2.7.5.737384.14|X-1",
                  "1.2.840.114350.1.13.99.2.7.5.737384.14|X-1", "NORTHSIDE|88002",
                  "urn:oid:1.2.840.114350.1.13.99|88002", "SSA|999-00-1234"):
        assert len(search(general, f"Patient?identifier={query}")) == 1, query
    [patient] = search(general, "Patient?identifier=88002")
    usual = next(i for i in patient["identifier"] if i.get("use") == "usual")
    assert usual["value"] == "88002"  # the first of type MR is the MRN
    assert usual["assigner"] == {"display": "NORTHSIDE"}
    assert len(search(general, "Encounter?patient.identifier=X-1")) == 1
    assert len(search(general, "Encounter?subject.identifier=NORTHSIDE|88002")) == 1
    assert len(search(general, "Encounter?subject:Patient.identifier=X-1")) == 1
    assert len(search(general, "Encounter?patient:Patient.identifier=NORTHSIDE|88002")) == 1
    assert search(general, "Task?patient.identifier=X-1") == []  # no rules here, no tasks


def test_a_pid3_without_authority_gets_the_sites_first_authority(general):
    assert send(general, admit("88003", control="1", version="2.3")).outcome == "accepted"
    assert len(search(general, "Patient?identifier=urn:engine:id:GENHOSP|88003")) == 1


def test_an_empty_pid3_falls_back_to_the_pid2_patient_id(general):
    receipt = send(general, admit("", pid2="88004^^^NORTHSIDE", control="1", version="2.3"))
    assert receipt.outcome == "accepted", receipt.reason
    assert len(search(general, "Patient?identifier=88004")) == 1


def test_a_site_that_refuses_unknown_authorities_answers_ae(runtime_factory, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text(GENERAL.read_text().replace("mrn_fallback: first", "mrn_fallback: refuse"))
    rt = runtime_factory(site_profile=strict)
    receipt = rt.intake.hl7(admit("88005^^^NORTHSIDE^MR", control="1"))
    assert receipt.outcome == "error" and "PID-3 has no MRN of authority GENHOSP" in receipt.ack


def test_a_long_secondary_identifier_is_kept_or_left_out_with_a_warning(general):
    kept, too_long = "Z" * 120, "Y" * 300  # the store keeps identifiers of 250 characters
    receipt = send(general, admit(f"88006^^^GENHOSP^MR~{kept}^^^NORTHSIDE^PI"
                                  f"~{too_long}^^^NORTHSIDE^PI", control="1"))
    assert receipt.outcome == "accepted"
    assert "too long to keep" in receipt.ack  # ERR severity W
    assert len(search(general, f"Patient?identifier=NORTHSIDE|{kept}")) == 1
    assert len(search(general, "Patient?identifier=88006")) == 1


def test_a_patient_first_known_by_fallback_keeps_one_record_when_the_sites_mrn_arrives(general):
    assert send(general, admit("88011^^^NORTHSIDE^MR", control="1")).outcome == "accepted"
    later = send(general, admit("88011^^^NORTHSIDE^MR~5011^^^GENHOSP^MR", control="2",
                                trigger="A08", when="20260303101500"))
    assert later.outcome == "accepted", later.reason
    assert count(general, Patient) == 1 and count(general, Encounter) == 1
    [patient] = search(general, "Patient?identifier=5011")
    usual = [i["value"] for i in patient["identifier"] if i.get("use") == "usual"]
    assert usual == ["5011"]


def test_a_fhir_patient_under_an_unknown_system_is_applied_and_findable(general):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": {"lastUpdated": "2026-03-03T10:00:00Z"},
                      "identifier": [
                          {"system": "http://northside.example/ids/ssn", "value": "X9"},
                          {"use": "usual", "system": "http://northside.example/ids/mrn",
                           "value": "N-1"}]}},
        {"request": {"method": "POST", "url": "Encounter"},
         "resource": {"resourceType": "Encounter", "status": "in-progress",
                      "meta": {"lastUpdated": "2026-03-03T10:00:00Z"},
                      "identifier": [{"value": "NV1"}], "class": {"code": "IMP"},
                      "subject": {"reference": "urn:uuid:p1"}}},
    ]}
    response = general.post("/fhir", json=bundle, headers={
        **auth_headers(general), "Content-Type": "application/fhir+json"})

    assert response.status_code == 200, response.text
    [patient] = search(general, "Patient?identifier=http://northside.example/ids/mrn|N-1")
    usual = [i["value"] for i in patient["identifier"] if i.get("use") == "usual"]
    assert usual == ["N-1"]  # use usual, as no identifier is of type MR
    assert len(search(general, "Encounter?patient.identifier=X9")) == 1
    assert "taken as the MRN" in response.text  # the entry's warning


# -- visit number ---------------------------------------------------------------------------------

def test_a_visit_without_pv1_19_is_the_pid18_account(general):
    receipt = send(general, admit("88007^^^GENHOSP^MR", control="1", pv1_19="",
                                  pid18="ACC-55^^^GENHOSP^AN"))
    assert receipt.outcome == "accepted", receipt.reason
    [encounter] = search(general, "Encounter?identifier=ACC-55")
    assert encounter["identifier"][0]["system"] == "urn:engine:id:GENHOSP"
    assert "PID-18" in receipt.ack


def test_an_admission_with_neither_visit_number_nor_account_is_kept_under_a_synthetic_key(
        general):
    receipt = send(general, admit("88008^^^GENHOSP^MR", control="1", pv1_19=""))
    assert receipt.outcome == "accepted", receipt.reason
    assert receipt.warnings.startswith(
        "no visit number (PV1-19, PID-18): the stay is kept under visit number ")
    assert receipt.warnings.endswith(" of urn:engine:visit-key")


# -- receiver -------------------------------------------------------------------------------------

def test_any_receiver_is_accepted_unless_the_site_lists_its_names(runtime_factory, tmp_path):
    rt = runtime_factory(site_profile=GENERAL)
    assert rt.intake.hl7(admit("88009^^^GENHOSP^MR", control="1",
                               receiver="CM_INTERFACE")).outcome == "accepted"

    listed = tmp_path / "listed.yaml"
    listed.write_text(GENERAL.read_text() + '\naccepted_receiving_applications: [DCPLAN, ""]\n')
    rt2 = runtime_factory(site_profile=listed)
    refused = rt2.intake.hl7(admit("88010^^^GENHOSP^MR", control="2", receiver="CM_INTERFACE"))
    assert refused.outcome == "rejected" and "MSA|AR|" in refused.ack


# -- canonical systems (engine.core.identity) ------------------------------------------------------

@pytest.mark.parametrize(("namespace", "universal", "kind", "stored"), [
    ("GENHOSP", "", "", "GENHOSP"),
    ("NS", "1.2.3", "ISO", "urn:oid:1.2.3"),
    ("", "1.2.3", "ISO", "urn:oid:1.2.3"),
    ("", "1.2.3", "", "urn:oid:1.2.3"),
    ("1.2.3", "", "", "urn:oid:1.2.3"),
    ("", "urn:oid:1.2.3", "ISO", "urn:oid:1.2.3"),
    ("NS", "http://example.org/mrn", "URI", "http://example.org/mrn"),
    ("NS", "ns.example.org", "DNS", "NS"),
    ("RMC", "", "", f"urn:oid:{RMC_OID}"),  # listed: the namespace alone is the OID identity
    ("cvh", "", "", f"urn:oid:{CVH_OID}"),
])
def test_an_hl7_authority_is_stored_under_one_canonical_system(namespace, universal, kind,
                                                                stored):
    assert load_site_profile(RIVERSIDE).id_system(namespace, universal, kind) == stored


@pytest.mark.parametrize(("system", "stored"), [
    (f"urn:oid:{RMC_OID}", f"urn:oid:{RMC_OID}"), (RMC_OID, f"urn:oid:{RMC_OID}"),
    ("urn:engine:id:RMC", f"urn:oid:{RMC_OID}"), ("RMC", f"urn:oid:{RMC_OID}"),
    ("urn:engine:id:OTHER", "OTHER"), ("http://example.org/mrn", "http://example.org/mrn"),
])
def test_a_fhir_system_is_read_to_the_same_stored_system(system, stored):
    assert load_site_profile(RIVERSIDE).fhir_id_system(system) == stored


# -- the profile --------------------------------------------------------------------------------

def test_the_first_profiles_single_mrn_mapping_still_loads(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(GENERAL.read_text().replace(
        "mrn:\n  - namespace: GENHOSP\n    identifier_type: MR\n",
        "mrn:\n  assigning_authority: GENHOSP\n"))
    site = load_site_profile(old)
    assert [(a.namespace, a.identifier_type) for a in site.mrn] == [("GENHOSP", "MR")]


def test_an_authority_with_a_malformed_oid_is_a_profile_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RIVERSIDE.read_text().replace(f"oid: {RMC_OID}", "oid: not-an-oid"))
    with pytest.raises(SiteProfileError, match="not an OID"):
        load_site_profile(bad)


# -- a feed from others, through the real listener and server --------------------------------------

def test_a_mixed_feed_over_mllp_is_applied_and_findable_by_the_first_identifier(database_url):
    """Several senders, versions and identifier shapes; each patient found by PID-3's first."""
    feed = [
        radmit(f"R-1^^^RMC&{RMC_OID}&ISO^MR", control="F1", receiver="DCP", version="2.3"),
        radmit(f"R-2^^^&{RMC_OID}&ISO^MR~C-2^^^CVH^PI", control="F2", pv1_19="V2^^^RMC^VN"),
        radmit("OUT-3^^^OUTSIDE^MR", control="F3", pv1_19="V3", version="2.4"),
        radmit("R-4", control="F4", pv1_19="", pid18="ACC4", version="2.3"),
        radmit("", pid2="EXT-5", control="F5", pv1_19="V5", version="2.3"),
        radmit("PI-6^^^&1.2.3.4.5&ISO^PI~R-6^^^RMC^MR", control="F6", pv1_19="V6",
               version="2.8"),
    ]
    first_ids = ["R-1", "R-2", "OUT-3", "R-4", "EXT-5", "PI-6"]
    srv = start_server(database_url, env={"ENGINE_SITE_PROFILE": str(RIVERSIDE)})
    try:
        with socket.create_connection(("127.0.0.1", srv.mllp_port)) as sock:
            acks = [exchange(sock, raw) for raw in feed]
        assert all(b"MSA|AA|" in ack for ack in acks), acks
        with srv.client() as http:
            for value in first_ids:
                patients = http.get("/Patient", params={"identifier": value}).json()
                assert patients["total"] == 1, value
                stays = http.get("/Encounter", params={"patient.identifier": value}).json()
                assert stays["total"] == 1, value
    finally:
        srv.kill()


# -- the store ----------------------------------------------------------------------------------

def test_identities_kept_before_with_a_bare_oid_system_become_urn_oid(database_url):
    """Rows stored by earlier versions (CX-4.2 kept as a bare OID) join the canonical form."""
    engine = make_engine(database_url)
    try:
        migrate.upgrade(engine, "0006_liberal")  # the revision before this one
        meta = MetaData()
        patient = Table("patient", meta, autoload_with=engine)
        ident = Table("patient_identifier", meta, autoload_with=engine)
        with engine.begin() as conn:
            pid = conn.execute(insert(patient).values(
                version=1, updated_at=datetime.now(UTC))).inserted_primary_key[0]
            conn.execute(insert(ident).values(patient_id=pid, system=RMC_OID, value="4711",
                                              type_code="MR", is_mrn=True))
        migrate.upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(select(ident.c.system, ident.c.value)).all()
        assert [tuple(r) for r in rows] == [(f"urn:oid:{RMC_OID}", "4711")]
    finally:
        engine.dispose()

