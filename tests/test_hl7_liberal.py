"""Liberal in what it accepts, exact in what it keeps: the shapes real feeds send.

Each test is a message an interface analyst sees from a real sender (long coded fields,
partial dates, 6-digit fractions, batches, an alias before the legal name, local codes)
sent through the real MLLP listener or the one intake path, and the outcome a person can
check: the ACK, what is stored, what the operator can list.
"""

from __future__ import annotations

import socket
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import hl7
import pytest
from sqlalchemy import select

from engine.api.fhir.resources import patient as patient_resource
from engine.hl7.ack import AckIssue, build_ack
from engine.hl7.build import cx, er7, evn, in1, msh, pid, pv1
from engine.hl7.framing import frame
from engine.hl7.message import parse
from engine.storage.models import Encounter, InboundMessage, Patient, PatientIdentifier
from harness.launch import start_server
from tests.test_cli import engine_cli
from tests.test_hl7_ack import hl7apy_parse, incoming
from tests.test_mllp_listener import msa, read_acks, rows, stored

WHEN = "20261203101500"


def admission(control_id: str, *, mrn: str = "910001", visit: str = "V910001",
              when: str = WHEN, evn_when: str | None = None, ids: str | None = None,
              name: str = "TESTPATIENT^LIBERAL", birth_date: str = "19500505",
              address: str = "100 TEST ST^^SPRINGFIELD^IL^62701", patient_class: str = "I",
              location: str = "4WEST^412^A^GENHOSP", admission_type: str = "E",
              attending: str = "1234^DOCTOR^TEST", service: str = "MED", admit_source: str = "7",
              patient_type: str = "", plan: str = "MCR001", version: str = "2.5.1",
              admit_time: str = "", before_pid: tuple[str, ...] = (),
              after_pv1: tuple[str, ...] = ()) -> str:
    """An A01 from GENHOSP's ADT system, as ER7 text with CR terminators."""
    return er7([
        msh("A01", control_id, when, structure="ADT_A01", version=version),
        evn("A01", when if evn_when is None else evn_when),
        *before_pid,
        pid(ids or cx(mrn, "GENHOSP", "MR"), name, birth_date=birth_date, sex="F",
            address=address),
        pv1(patient_class, location, admission_type=admission_type, attending=attending,
            service=service, admit_source=admit_source, patient_type=patient_type,
            visit=cx(visit, "GENHOSP", "VN"), admit_time=admit_time),
        *after_pv1,
        in1(1, plan, company_id="CMS", company_name="PAYER"),
    ])


def the_encounter(session, visit: str) -> Encounter:
    return session.scalars(select(Encounter).where(Encounter.visit_number == visit)).one()


def the_patient(session, mrn: str) -> Patient:
    return session.scalars(select(Patient).join(PatientIdentifier)
                           .where(PatientIdentifier.value == mrn)).one()


def errs(ack: str) -> list[tuple[str, str, str, str]]:
    """(ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 message) of each ERR."""
    return [(e.raw(2), e.value(3, 1), e.value(4), e.value(8)) for e in parse(ack).all("ERR")]


# -- long fields -----------------------------------------------------------------------

ADMIT_SOURCE = "PHYSICIAN REFERRAL FROM OUTPATIENT CLINIC"[:40]
UNIT = "MEDICAL SURGICAL TELEMETRY UNIT FOURTH FLOOR WEST WING"  # 54
SERVICE = "HOSPITAL MEDICINE - GENERAL INTERNAL MEDICINE TEACHING SERVICE"[:61]
ADMISSION_TYPE = "EMERGENCY-TRAUM"  # 15
ATTENDING_ID = "urn:oid:2.16.840.1.113883.4.6:1234567893:NPI:PRACTITIONER:01"  # 60
PLAN = "MEDICARE-ADVANTAGE-PPO-GOLD-PLUS-2026-REGION-CENTRAL-IL-0001"  # 60
OTHER_ID = "ENT-" + "0123456789ABCDEF" * 7 + "0123"  # 120 characters, a non-MRN PID-3


def test_long_coded_and_descriptive_fields_from_a_real_feed_are_kept_whole(database_url):
    """Each of these was answered AE (a whole stay lost) because a column was narrow."""
    assert (len(ADMIT_SOURCE), len(UNIT), len(SERVICE), len(ADMISSION_TYPE), len(ATTENDING_ID),
            len(PLAN), len(OTHER_ID)) == (40, 54, 61, 15, 60, 60, 120)
    message = admission(
        "LONG-0001", ids=f"{cx('910001', 'GENHOSP', 'MR')}~{cx(OTHER_ID, 'ENTERPRISE', 'PI')}",
        location=f"{UNIT}^412^A^GENHOSP", admission_type=ADMISSION_TYPE,
        attending=f"{ATTENDING_ID}^DOCTOR^TEST", service=SERVICE, admit_source=ADMIT_SOURCE,
        plan=PLAN)
    server = start_server(database_url, http=False)
    try:
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            sock.sendall(frame(message))
            ack = read_acks(sock, 1)[0].decode()
    finally:
        server.kill()

    assert msa(ack) == ("AA", "LONG-0001")
    assert errs(ack) == []  # kept whole: nothing to warn about
    with stored(database_url) as session:
        enc = the_encounter(session, "V910001")
        assert (enc.admit_source, enc.unit, enc.hospital_service, enc.admission_type,
                enc.attending_id, enc.payer_plan) == (
            ADMIT_SOURCE, UNIT, SERVICE, ADMISSION_TYPE, ATTENDING_ID, PLAN)
        assert enc.locations[-1].unit == UNIT
        patient = the_patient(session, "910001")
        assert OTHER_ID in {i.value for i in patient.identifiers}
        assert rows(session)[0].warnings is None


def test_a_value_beyond_even_a_wide_column_is_cut_with_a_warning_the_operator_can_list(
    runtime, database_url,
):
    """A 400-character hospital service (a sender pasting a description into a code) is
    applied, cut to 250 with a warning: ERR severity W in the AA, and on the inbound row."""
    receipt = runtime.intake.hl7(admission("CUT-0001", service="S" * 400).encode())
    assert receipt.outcome == "accepted", receipt.reason
    ((location, code, severity, text),) = errs(receipt.ack)
    assert (location, code, severity) == ("PV1^1^10", "102", "W")
    assert text == "PV1-10 is 400 characters long; the first 250 are kept"
    with runtime.sessions() as session:
        assert the_encounter(session, "V910001").hospital_service == "S" * 250

    listing = engine_cli("hl7", "warnings", database_url=database_url)
    assert listing.returncode == 0, listing.stderr
    assert "PV1-10 is 400 characters long" in listing.stdout
    assert "1 input(s) accepted with warnings" in listing.stdout


@pytest.mark.parametrize("version", ["2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.2"])
def test_an_aa_with_warnings_is_a_well_formed_ack_at_every_version_with_err_4(version):
    warnings = [AckIssue(102, "PV1-10 is 400 characters long; the first 250 are kept", "PV1", 10),
                AckIssue(203, "HL7 version 2.9 (MSH-12) is read as 2.8.2 | ok", "MSH", 12)]
    ack = build_ack("AA", incoming(version), our_application="DCPLAN", our_facility="GENHOSP",
                    now=datetime(2026, 12, 3, 16, tzinfo=UTC),
                    zone=ZoneInfo("America/Chicago"), warnings=warnings)
    assert [s.name for s in hl7apy_parse(ack, version).children] == ["MSH", "MSA", "ERR", "ERR"]
    assert [e[2:] for e in errs(ack)] == [
        ("W", warnings[0].text), ("W", warnings[1].text)]


def test_a_key_is_refused_only_beyond_its_generous_bound(runtime):
    """A 250-character visit number is a key: kept whole. At 251 a cut would name another
    stay, so the message is refused (AE) and kept for replay."""
    kept = runtime.intake.hl7(admission("KEY-0001", visit="V" * 250).encode())
    assert kept.outcome == "accepted", kept.reason
    refused = runtime.intake.hl7(admission("KEY-0002", visit="W" * 251).encode())
    assert refused.outcome == "error" and refused.reason.startswith(
        "PV1-19 repetition 1 is too long for a key (value 251 of at most 250")


# -- times -----------------------------------------------------------------------------

def test_partial_birth_dates_six_fractional_digits_offsets_and_minutes_are_read(runtime):
    year_only = runtime.intake.hl7(admission(
        "TS-0001", mrn="920001", visit="V920001", birth_date="1950",
        when="20261203101500.123456", admit_time="202612031010-0500").encode())
    year_month = runtime.intake.hl7(admission(
        "TS-0002", mrn="920002", visit="V920002", birth_date="195003",
        when="20261203101500.1+0000").encode())
    assert (year_only.outcome, year_month.outcome) == ("accepted", "accepted"), (
        year_only.reason, year_month.reason)
    with runtime.sessions() as session:
        year = the_patient(session, "920001")
        month = the_patient(session, "920002")
        assert (year.birth_date, year.birth_precision) == (date(1950, 1, 1), "year")
        assert (month.birth_date, month.birth_precision) == (date(1950, 3, 1), "month")
        # FHIR gives it back as precise as it was sent.
        assert (patient_resource(year)["birthDate"], patient_resource(month)["birthDate"]) == (
            "1950", "1950-03")
        first = the_encounter(session, "V920001")
        assert first.admit_time == datetime(2026, 12, 3, 15, 10, tzinfo=UTC)
        row = session.get(InboundMessage, year_only.message_id)
        assert row.event_time == datetime(2026, 12, 3, 16, 15, 0, 123456, tzinfo=UTC)
        second = session.get(InboundMessage, year_month.message_id)
        assert second.event_time == datetime(2026, 12, 3, 10, 15, 0, 100000, tzinfo=UTC)

    # The full date sent later replaces the year, and is given back whole.
    full = runtime.intake.hl7(admission("TS-0004", mrn="920001", visit="V920001",
                                        birth_date="19500612", when="20261204101500").encode())
    assert full.outcome == "accepted", full.reason
    with runtime.sessions() as session:
        assert patient_resource(the_patient(session, "920001"))["birthDate"] == "1950-06-12"


def test_a_garbled_birth_date_is_a_warning_not_a_lost_stay(runtime):
    receipt = runtime.intake.hl7(admission("TS-0003", mrn="920003", visit="V920003",
                                           birth_date="19500231").encode())
    assert receipt.outcome == "accepted", receipt.reason
    ((location, code, severity, text),) = errs(receipt.ack)
    assert (location, code, severity) == ("PID^1^7", "102", "W")
    assert text.endswith("the birth date is not changed")
    with runtime.sessions() as session:
        assert the_patient(session, "920003").birth_date is None


def test_a_garbled_discharge_time_discharges_at_the_event_time_with_a_warning(runtime):
    """An A03 refused for its PV1-45 would leave the patient in-house on every worklist."""
    assert runtime.intake.hl7(admission("TS-0201", mrn="920201", visit="V920201")
                              .encode()).outcome == "accepted"
    discharge = er7([
        msh("A03", "TS-0202", "20261205140000", structure="ADT_A03"),
        evn("A03", "20261205140000"),
        pid(cx("920201", "GENHOSP", "MR"), "TESTPATIENT^LIBERAL"),
        pv1("I", "4WEST^412^A^GENHOSP", visit=cx("V920201", "GENHOSP", "VN"),
            disposition="01", discharge_time="2026-12-05T14:00"),
    ])
    receipt = runtime.intake.hl7(discharge.encode())
    assert receipt.outcome == "accepted", receipt.reason
    ((location, code, severity, text),) = errs(receipt.ack)
    assert (location, code, severity) == ("PV1^1^45", "102", "W")
    assert text.endswith("the event time stands")
    with runtime.sessions() as session:
        enc = the_encounter(session, "V920201")
        assert (enc.status, enc.discharge_time) == (
            "finished", datetime(2026, 12, 5, 20, tzinfo=UTC))


def test_a_malformed_msh7_is_read_from_evn_and_refused_only_with_no_usable_time(runtime):
    good_evn = runtime.intake.hl7(admission("TS-0101", when="2026-12-03 10:15",
                                            evn_when="20261203101500").encode())
    assert good_evn.outcome == "accepted", good_evn.reason
    ((location, code, severity, text),) = errs(good_evn.ack)
    assert (location, code, severity) == ("MSH^1^7", "102", "W")
    assert "the event time is read from EVN-2" in text
    with runtime.sessions() as session:
        assert session.get(InboundMessage, good_evn.message_id).event_time == datetime(
            2026, 12, 3, 16, 15, tzinfo=UTC)

    no_time = runtime.intake.hl7(admission("TS-0102", mrn="920101", visit="V920101",
                                           when="2026-12-03 10:15", evn_when="").encode())
    assert no_time.outcome == "error" and no_time.reason.startswith("MSH-7")


# -- batches ---------------------------------------------------------------------------

def batch(*messages: str, control_id: str = "BATCH-0001") -> bytes:
    """A file of messages in FHS/BHS ... BTS/FTS envelopes, as batch senders write it."""
    return (f"FHS|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|{WHEN}||||FILE-{control_id}\r"
            f"BHS|^~\\&|ADTSYS|GENHOSP|DCPLAN|GENHOSP|{WHEN}||||{control_id}\r"
            + "".join(messages)
            + f"BTS|{len(messages)}\rFTS|1\r").encode()


def test_a_batch_in_one_frame_is_answered_message_by_message_in_a_batch_ack(database_url):
    first = admission("B-0001", mrn="930001", visit="V930001")
    broken = admission("B-0002", mrn="930002", visit="W" * 251)  # a key too long: AE alone
    third = admission("B-0003", mrn="930003", visit="V930003")
    server = start_server(database_url, http=False)
    try:
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            sock.sendall(frame(batch(first, broken, third)))
            answer = read_acks(sock, 1)[0].decode()
    finally:
        server.kill()

    # A batch of ACKs, as python-hl7's batch reader (a third party) reads it.
    (reply,) = hl7.parse_file(answer)
    assert str(reply.header[12]) == "BATCH-0001"  # BHS-12 names the sender's batch
    assert str(reply.trailer) == "BTS|3"
    assert [(str(m.segment("MSA")[1]), str(m.segment("MSA")[2])) for m in reply] == [
        ("AA", "B-0001"), ("AE", "B-0002"), ("AA", "B-0003")]
    with stored(database_url) as session:
        kept = rows(session)
        assert [(r.control_id, r.outcome) for r in kept] == [
            ("B-0001", "accepted"), ("B-0002", "error"), ("B-0003", "accepted")]
        assert bytes(kept[0].raw).decode().startswith("MSH|")  # each stored on its own
        assert "BHS" not in bytes(kept[2].raw).decode()
        assert the_encounter(session, "V930003").patient_id is not None


def test_a_batch_file_is_ingested_message_by_message(database_url, tmp_path):
    path = tmp_path / "nightly.hl7"
    path.write_bytes(batch(*(admission(f"F-000{i}", mrn=f"94000{i}", visit=f"V94000{i}")
                             for i in range(1, 4))).replace(b"\r", b"\r\n"))
    result = engine_cli("ingest", str(path), database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert "3 messages from 1 file(s): accepted 3, duplicate 0, ignored 0, errors 0" in (
        result.stdout)


# -- names and addresses by type ---------------------------------------------------------

def test_the_legal_name_and_home_address_are_chosen_by_type_not_position(runtime):
    receipt = runtime.intake.hl7(admission(
        "XPN-0001", mrn="950001", visit="V950001",
        name="STAR^ROCKY^^^^^A~TESTPATIENT^ROBERTA^Q^^^^L",
        address="PO BOX 9^^CHICAGO^IL^60601^^M~22 HOME RD^^SPRINGFIELD^IL^62704^^H").encode())
    assert receipt.outcome == "accepted", receipt.reason
    no_types = runtime.intake.hl7(admission(
        "XPN-0002", mrn="950002", visit="V950002", name="FIRST^ONE~SECOND^TWO").encode())
    assert no_types.outcome == "accepted", no_types.reason
    with runtime.sessions() as session:
        legal = the_patient(session, "950001")
        assert (legal.family, legal.given, legal.middle) == ("TESTPATIENT", "ROBERTA", "Q")
        assert legal.address == {"line": "22 HOME RD", "city": "SPRINGFIELD", "state": "IL",
                                 "postal_code": "62704"}
        assert the_patient(session, "950002").family == "FIRST"  # no L: the first


# -- the business conflict ---------------------------------------------------------------

def test_a_visit_of_another_patient_is_a_duplicate_key_not_an_internal_error(runtime):
    assert runtime.intake.hl7(admission("DUP-0001", mrn="960001", visit="V960001")
                              .encode()).outcome == "accepted"
    other = runtime.intake.hl7(admission("DUP-0002", mrn="960002", visit="V960001").encode())
    assert other.outcome == "error"
    ((_location, code, severity, text),) = errs(other.ack)
    assert (code, severity) == ("205", "E")
    assert "Duplicate key identifier" in other.ack
    assert "visit V960001 belongs to another patient" in text


# -- what real feeds differ in -----------------------------------------------------------

def test_local_patient_classes_are_applied_with_no_care_status_and_a_warning(runtime):
    for n, (klass, kind) in enumerate([("U", ""), ("N", ""), ("LOCALOBS", "")], 1):
        receipt = runtime.intake.hl7(admission(
            f"PC-000{n}", mrn=f"97000{n}", visit=f"V97000{n}", patient_class=klass,
            patient_type=kind).encode())
        assert receipt.outcome == "accepted", receipt.reason
        assert [(e[1], e[2]) for e in errs(receipt.ack)] == [("103", "W")]
    with runtime.sessions() as session:
        enc = the_encounter(session, "V970001")
        assert (enc.patient_class, enc.care_status, enc.status_periods) == ("U", None, [])


def test_versions_around_the_supported_range_are_read_as_the_nearest(runtime):
    for n, version in enumerate(["2.1", "2.2", "2.9", "2.5.1^USA&&ISO3166"], 1):
        receipt = runtime.intake.hl7(admission(
            f"VER-000{n}", mrn=f"98000{n}", visit=f"V98000{n}", version=version).encode())
        assert receipt.outcome == "accepted", (version, receipt.reason)
    with runtime.sessions() as session:
        warned = session.scalars(select(InboundMessage.warnings)
                                 .order_by(InboundMessage.id)).all()
    assert warned[0] == "HL7 version 2.1 (MSH-12) is read as 2.3"
    assert warned[2] == "HL7 version 2.9 (MSH-12) is read as 2.8.2"
    assert warned[3] is None  # 2.5.1 with its components is simply 2.5.1
    assert runtime.intake.hl7(admission("VER-0009", version="3.0").encode()).outcome == (
        "rejected")


def test_line_endings_truncation_character_and_z_segments_anywhere_are_accepted(runtime):
    zpd = "ZPD|1|LOCAL^PATIENT^DATA"
    crlf = admission("SHAPE-0001", mrn="990001", visit="V990001").replace("\r", "\r\n")
    lf = admission("SHAPE-0002", mrn="990002", visit="V990002").replace("\r", "\n")
    truncation = admission("SHAPE-0003", mrn="990003", visit="V990003").replace(
        "MSH|^~\\&|", "MSH|^~\\&#|", 1)
    z_segments = admission("SHAPE-0004", mrn="990004", visit="V990004",
                           before_pid=(zpd, "ZEV|A"),
                           after_pv1=("ZPV|1|X", "ROL|1|AD|AT|1234^DOCTOR", "ROL|2|AD|PP|99",
                                      "NK1|1|KIN^NEXT", "NK1|2|KIN^OTHER", "ZPV|2|Y"))
    for message in (crlf, lf, truncation, z_segments):
        receipt = runtime.intake.hl7(message.encode())
        assert receipt.outcome == "accepted", receipt.reason
        assert errs(receipt.ack) == []
    with runtime.sessions() as session:
        for visit in ("V990001", "V990002", "V990003", "V990004"):
            assert the_encounter(session, visit).unit == "4WEST"
