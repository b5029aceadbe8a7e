"""Messages written by others that name no stay, or have a sloppy envelope, are applied.

A probe with library samples and vendor guides found messages a liberal receiver must take:
an A08 with no PV1, a discharge or transfer that names no visit number, an admission with
none, an empty MSH-10, and an MSH-2 whose escape character a Java string doubled. Each is
applied with a warning (ERR severity W in the AA, listed by `engine hl7 warnings`), and a
visit event is refused only when the patient's stay cannot be told: none open, or several.
"""

from __future__ import annotations

import socket

from sqlalchemy import select

from engine.hl7.build import cx, er7, evn, msh, pid, pv1
from engine.hl7.framing import frame
from engine.intake.encounters import SYNTHETIC_VISIT_SYSTEM
from engine.storage.models import Encounter
from harness.launch import start_server
from tests.test_cli import engine_cli
from tests.test_hl7_liberal import errs, the_encounter, the_patient
from tests.test_mllp_listener import msa, read_acks, rows, stored

WHEN = "20261203101500"


def adt(trigger: str, control_id: str, *, mrn: str, visit: str | None = None,
        when: str = WHEN, name: str = "TESTPATIENT^LENIENT", patient_class: str = "I",
        location: str = "4WEST^412^A^GENHOSP", with_pv1: bool = True, admit_time: str = "",
        discharge_time: str = "") -> bytes:
    """An ADT message from GENHOSP; `visit=None` leaves PV1-19 (and PID-18) empty."""
    segments = [
        msh(trigger, control_id, when),
        evn(trigger, when),
        pid(cx(mrn, "GENHOSP", "MR"), name, birth_date="19500505", sex="F"),
    ]
    if with_pv1:
        segments.append(pv1(patient_class, location,
                            visit=cx(visit, "GENHOSP", "VN") if visit else "",
                            admit_time=admit_time, discharge_time=discharge_time))
    return er7(segments).encode()


def stays(session, mrn: str) -> list[Encounter]:
    patient = the_patient(session, mrn)
    return list(session.scalars(select(Encounter).where(Encounter.patient_id == patient.id)
                                .order_by(Encounter.id)))


def warnings_of(ack: str) -> list[str]:
    return [text for _loc, _code, severity, text in errs(ack) if severity == "W"]


# -- 1. an A08 with no PV1 --------------------------------------------------------------

def test_an_a08_with_no_pv1_updates_the_patient_and_changes_no_stay(runtime, database_url):
    assert runtime.intake.hl7(adt("A01", "NP-0001", mrn="930001", visit="V930001")) \
        .outcome == "accepted"
    receipt = runtime.intake.hl7(adt("A08", "NP-0002", mrn="930001", with_pv1=False,
                                     name="RENAMED^LENIENT", when="20261203120000"))
    assert receipt.outcome == "accepted", receipt.reason
    assert warnings_of(receipt.ack) == ["no PV1: patient updated, no stay changed"]
    with runtime.sessions() as session:
        assert the_patient(session, "930001").family == "RENAMED"
        (enc,) = stays(session, "930001")
        assert (enc.visit_number, enc.status, enc.unit) == ("V930001", "in-progress", "4WEST")

    listing = engine_cli("hl7", "warnings", database_url=database_url)
    assert listing.returncode == 0, listing.stderr
    assert "no PV1: patient updated, no stay changed" in listing.stdout


# -- 2. a visit event with no visit number ----------------------------------------------

def test_a_transfer_and_a_discharge_with_no_visit_number_go_to_the_one_open_stay(runtime):
    runtime.intake.hl7(adt("A01", "NV-0001", mrn="931001", visit="V931001"))
    moved = runtime.intake.hl7(adt("A02", "NV-0002", mrn="931001", location="5EAST^501^B",
                                   when="20261203110000"))
    assert moved.outcome == "accepted", moved.reason
    assert warnings_of(moved.ack) == [
        "no visit number (PV1-19, PID-18): A02 applied to the patient's one open stay "
        "V931001"]
    gone = runtime.intake.hl7(adt("A03", "NV-0003", mrn="931001", with_pv1=False,
                                  when="20261203150000"))
    assert gone.outcome == "accepted", gone.reason
    assert warnings_of(gone.ack) == [
        "no PV1 segment: A03 has no visit data",
        "no visit number (PV1-19, PID-18): A03 applied to the patient's one open stay "
        "V931001"]
    with runtime.sessions() as session:
        (enc,) = stays(session, "931001")
        assert (enc.status, enc.unit) == ("finished", "5EAST")
        assert enc.discharge_time is not None


def test_a_visit_event_naming_no_stay_is_refused_when_the_stay_cannot_be_told(runtime):
    nothing_open = runtime.intake.hl7(adt("A03", "NS-0001", mrn="932001"))
    assert nothing_open.outcome == "error"
    ((_loc, code, severity, text),) = errs(nothing_open.ack)
    assert (code, severity) == ("101", "E")
    assert text == ("A03 names no visit (PV1-19 and PID-18 are empty) and the patient has "
                    "no open stay to apply it to")

    runtime.intake.hl7(adt("A01", "NS-0002", mrn="932002", visit="V932002A"))
    runtime.intake.hl7(adt("A01", "NS-0003", mrn="932002", visit="V932002B"))
    two_open = runtime.intake.hl7(adt("A03", "NS-0004", mrn="932002", when="20261203150000"))
    assert two_open.outcome == "error"
    ((_loc, code, _sev, text),) = errs(two_open.ack)
    assert code == "101"
    assert text == ("A03 names no visit (PV1-19 and PID-18 are empty) and the patient has "
                    "2 open stays: send the visit number")
    with runtime.sessions() as session:
        assert {e.status for e in stays(session, "932002")} == {"in-progress"}


# -- 3. an admission with no visit number -----------------------------------------------

def test_an_admission_with_no_visit_number_gets_a_synthetic_key_a_resend_finds(runtime):
    first = runtime.intake.hl7(adt("A01", "SK-0001", mrn="933001",
                                   admit_time="202612030955"))
    assert first.outcome == "accepted", first.reason
    (warning,) = warnings_of(first.ack)
    # The admit time (PV1-44), 09:55 at the site (America/Chicago), in UTC to the minute.
    assert warning.startswith("no visit number (PV1-19, PID-18): the stay is kept under "
                              "visit number 202612031555-")
    assert warning.endswith(f" of {SYNTHETIC_VISIT_SYSTEM}")
    resend = runtime.intake.hl7(adt("A01", "SK-0002", mrn="933001",
                                    admit_time="202612030955"))
    assert resend.outcome == "accepted", resend.reason
    discharge = runtime.intake.hl7(adt("A03", "SK-0003", mrn="933001", when="20261205120000"))
    assert discharge.outcome == "accepted", discharge.reason
    with runtime.sessions() as session:
        (enc,) = stays(session, "933001")
        assert enc.visit_system == SYNTHETIC_VISIT_SYSTEM
        assert f" {enc.visit_number} of " in warning
        assert enc.status == "finished"


def test_a_pre_admit_then_an_admit_with_no_visit_numbers_are_one_stay(runtime):
    planned = runtime.intake.hl7(adt("A05", "PA-0001", mrn="934001", with_pv1=False,
                                     when="20261201090000"))
    assert planned.outcome == "accepted", planned.reason
    admitted = runtime.intake.hl7(adt("A01", "PA-0002", mrn="934001", when="20261203101500"))
    assert admitted.outcome == "accepted", admitted.reason
    assert warnings_of(admitted.ack)[-1].startswith(
        "no visit number (PV1-19, PID-18): A01 applied to the patient's one open stay ")
    with runtime.sessions() as session:
        (enc,) = stays(session, "934001")
        assert (enc.visit_system, enc.status, enc.unit) == (
            SYNTHETIC_VISIT_SYSTEM, "in-progress", "4WEST")


# -- 4. an empty MSH-10, through the real listener -------------------------------------

def test_an_empty_msh10_is_applied_with_a_warning_and_an_empty_msa2(database_url):
    server = start_server(database_url, http=False)
    try:
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            sock.sendall(frame(adt("A01", "", mrn="935001", visit="V935001").decode()))
            ack = read_acks(sock, 1)[0].decode()
    finally:
        server.kill()
    assert msa(ack) == ("AA", "")
    assert warnings_of(ack) == ["MSH-10 message control id is empty: applied, but a resend "
                                "cannot be recognised as a duplicate"]
    with stored(database_url) as session:
        assert the_encounter(session, "V935001").status == "in-progress"
        (row,) = rows(session)
        assert (row.outcome, row.control_id) == ("accepted", None)


# -- 5. MSH-2 with a doubled escape character ------------------------------------------

def test_msh2_with_the_escape_character_doubled_by_java_is_read_as_the_standard_one(runtime):
    text = adt("A01", "JE-0001", mrn="936001", visit="V936001").decode()
    doubled = text.replace("MSH|^~\\&|", "MSH|^~\\\\&|", 1)
    assert doubled.startswith("MSH|^~\\\\&|ADTSYS")
    receipt = runtime.intake.hl7(doubled.encode())
    assert receipt.outcome == "accepted", receipt.reason
    assert warnings_of(receipt.ack) == [
        "MSH-2 is '^~\\\\&' (the escape character doubled): read as '^~\\&'"]
    with runtime.sessions() as session:
        enc = the_encounter(session, "V936001")
        assert (enc.unit, enc.room, enc.bed) == ("4WEST", "412", "A")


def test_another_repeated_delimiter_in_msh2_stays_refused_and_is_quoted_as_sent(runtime):
    text = adt("A01", "JE-0002", mrn="936002", visit="V936002").decode()
    receipt = runtime.intake.hl7(text.replace("MSH|^~\\&|", "MSH|^~\\\\&#|", 1).encode())
    assert receipt.outcome == "rejected"
    assert receipt.reason == ("invalid encoding characters '^~\\\\&#' in MSH-2 (need 4 "
                              "distinct delimiters)")
