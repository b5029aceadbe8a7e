"""Identity and cancel events: every HL7 message is applied or refused, never acknowledged
and dropped. A47/A50/A45 carry the prior key in MRG (v2.5.1 ch. 3: MRG-1 prior patient
identifiers, MRG-5 prior visit number); A38/A27 cancel what A05/A14 created; A29 inactivates
the person. A conflict is answered AE with ERR 204 (unknown key) or 205 (duplicate key)."""

from __future__ import annotations

import socket

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from engine.hl7.build import FACILITY, adt, cx, er7, evn, msh, pid, pv1, segment
from engine.hl7.framing import END, frame
from engine.hl7.message import parse
from engine.storage.db import normalise_url
from engine.storage.models import (
    Encounter,
    InboundMessage,
    Patient,
    PatientIdentifier,
    RuleOutput,
)
from tests.conftest import auth_headers


def identity(trigger: str, when: str, *, mrn: str, prior_mrn: str = "", visit: str = "",
             prior_visit: str = "", control_id: str | None = None) -> bytes:
    """An identity event as senders write it: PID (the new or target patient), PV1 when a
    visit is named, MRG with the prior patient identifier and prior visit number."""
    segments = [
        msh(trigger, control_id or f"ID{trigger}{when}{mrn}{visit}", when),
        evn(trigger, when, pad_to=2),
        pid(cx(mrn, FACILITY, "MR"), "TESTPATIENT^ALPHA^Q", birth_date="19450612", sex="F"),
    ]
    if visit:
        segments.append(pv1("I", "4WEST^412^A^GENHOSP", visit=cx(visit, FACILITY, "VN")))
    segments.append(segment("MRG", {1: cx(prior_mrn, FACILITY, "MR") if prior_mrn else "",
                                    5: cx(prior_visit, FACILITY, "VN") if prior_visit else ""}))
    return er7(segments).encode()


def err_code(ack: str) -> int | None:
    err = parse(ack).segment("ERR")
    return int(err.value(3, 1)) if err is not None else None


def visits(rt) -> list[tuple[str, str, str]]:
    """(visit number, status, MRN of its patient) of every stay on file."""
    with rt.sessions() as s:
        rows = s.execute(select(Encounter.visit_number, Encounter.status, PatientIdentifier.value)
                         .join(PatientIdentifier, (PatientIdentifier.patient_id
                                                   == Encounter.patient_id)
                               & PatientIdentifier.is_mrn)
                         .order_by(Encounter.id)).all()
    return [tuple(r) for r in rows]


def open_tasks_by_mrn(rt) -> dict[str, int]:
    with rt.sessions() as s:
        rows = s.execute(select(PatientIdentifier.value, func.count())
                         .join(RuleOutput, RuleOutput.patient_id == PatientIdentifier.patient_id)
                         .where(PatientIdentifier.is_mrn, RuleOutput.kind == "task",
                                RuleOutput.status == "active")
                         .group_by(PatientIdentifier.value)).all()
    return dict(rows)


def kept(rt, message_id: int) -> InboundMessage:
    with rt.sessions() as s:
        row = s.get(InboundMessage, message_id)
        assert row is not None
        return row


# -- A47 change patient identifier --------------------------------------------------------

def test_after_an_a47_the_stay_is_found_under_the_new_mrn_and_the_old_one_is_history(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))

    change = runtime.intake.hl7(identity("A47", "202603021100", mrn="200002",
                                         prior_mrn="100001"))
    update = runtime.intake.hl7(adt("A08", "202603021200", mrn="200002", visit="V1",
                                    attending="7777^NEWDOC^TEST"))

    assert change.outcome == "accepted", change.reason
    assert update.outcome == "accepted", update.reason
    assert visits(runtime) == [("V1", "in-progress", "200002")]
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 1
        patient = s.scalars(select(Patient)).one()
        assert [(i.value, i.is_mrn) for i in patient.identifiers] == [("200002", True)]
        assert [(h.old_value, h.new_value) for h in patient.identity_changes] == [
            ("100001", "200002")]
    assert open_tasks_by_mrn(runtime)["200002"] > 0


def test_an_a47_to_an_mrn_another_patient_holds_is_refused_205_and_kept(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))
    runtime.intake.hl7(adt("A01", "202603021015", mrn="300003", visit="V3"))

    receipt = runtime.intake.hl7(identity("A47", "202603021100", mrn="300003",
                                          prior_mrn="100001"))

    assert receipt.outcome == "error"
    assert "MSA|AE|" in receipt.ack and err_code(receipt.ack) == 205
    assert "A40" in receipt.reason  # what to send instead: a merge
    assert visits(runtime) == [("V1", "in-progress", "100001"), ("V3", "in-progress", "300003")]
    assert kept(runtime, receipt.message_id).outcome == "error"


def test_an_a47_naming_an_unknown_prior_identifier_is_refused_204(runtime):
    receipt = runtime.intake.hl7(identity("A47", "202603021100", mrn="200002",
                                          prior_mrn="999999"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 204
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Patient)) == 0


def test_an_a47_resent_under_a_new_control_id_changes_nothing_more(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))
    runtime.intake.hl7(identity("A47", "202603021100", mrn="200002", prior_mrn="100001",
                                control_id="C1"))

    again = runtime.intake.hl7(identity("A47", "202603021100", mrn="200002",
                                        prior_mrn="100001", control_id="C2"))

    assert again.outcome == "accepted", again.reason
    assert visits(runtime) == [("V1", "in-progress", "200002")]


# -- A50 change visit number ---------------------------------------------------------------

def test_after_an_a50_the_discharge_on_the_new_number_closes_the_one_stay(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))

    change = runtime.intake.hl7(identity("A50", "202603021100", mrn="100001", visit="V2",
                                         prior_visit="V1"))
    discharge = runtime.intake.hl7(adt("A03", "202603051100", visit="V2",
                                       discharge_time="202603051100", disposition="01"))

    assert change.outcome == "accepted", change.reason
    assert discharge.outcome == "accepted", discharge.reason
    assert visits(runtime) == [("V2", "finished", "100001")]


def test_an_a50_to_a_visit_number_already_on_file_is_refused_205(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))
    runtime.intake.hl7(adt("A01", "202603021015", visit="V2"))

    receipt = runtime.intake.hl7(identity("A50", "202603021100", mrn="100001", visit="V2",
                                          prior_visit="V1"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 205
    assert [v for v, *_ in visits(runtime)] == ["V1", "V2"]


def test_an_a50_for_a_visit_never_seen_is_refused_204(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))

    receipt = runtime.intake.hl7(identity("A50", "202603021100", mrn="100001", visit="V9",
                                          prior_visit="V8"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 204
    assert [v for v, *_ in visits(runtime)] == ["V1"]


# -- A45 move visit -----------------------------------------------------------------------

def test_an_a45_moves_the_stay_with_its_tasks_to_the_right_patient(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))
    runtime.intake.hl7(adt("A28", "202603020900", mrn="400004", visit="X"))
    tasks = open_tasks_by_mrn(runtime)["100001"]

    move = runtime.intake.hl7(identity("A45", "202603021100", mrn="400004", visit="V1",
                                       prior_mrn="100001", prior_visit="V1"))
    later = runtime.intake.hl7(adt("A08", "202603021200", mrn="400004", visit="V1"))

    assert move.outcome == "accepted", move.reason
    assert later.outcome == "accepted", later.reason
    assert visits(runtime) == [("V1", "in-progress", "400004")]
    assert open_tasks_by_mrn(runtime) == {"400004": tasks}


def test_an_a45_for_a_visit_of_a_third_patient_is_refused_204(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))
    runtime.intake.hl7(adt("A28", "202603020900", mrn="400004", visit="X"))
    runtime.intake.hl7(adt("A28", "202603020900", mrn="500005", visit="X"))

    receipt = runtime.intake.hl7(identity("A45", "202603021100", mrn="400004", visit="V1",
                                          prior_mrn="500005", prior_visit="V1"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 204
    assert visits(runtime) == [("V1", "in-progress", "100001")]


# -- A38 cancel pre-admit, A27 cancel pending admit ------------------------------------------

def test_an_a38_cancels_the_pre_admit_and_its_work(runtime):
    runtime.intake.hl7(adt("A05", "202603011015", visit="V1"))
    assert visits(runtime) == [("V1", "planned", "100001")]

    receipt = runtime.intake.hl7(adt("A38", "202603011100", visit="V1"))

    assert receipt.outcome == "accepted", receipt.reason
    assert visits(runtime) == [("V1", "cancelled", "100001")]
    assert open_tasks_by_mrn(runtime) == {}


def test_an_a27_cancels_the_pending_admit(runtime):
    runtime.intake.hl7(adt("A14", "202603011015", visit="V1"))

    receipt = runtime.intake.hl7(adt("A27", "202603011100", visit="V1"))

    assert receipt.outcome == "accepted", receipt.reason
    assert visits(runtime) == [("V1", "cancelled", "100001")]


def test_an_a38_for_a_stay_already_admitted_is_refused_not_applied(runtime):
    runtime.intake.hl7(adt("A01", "202603011015", visit="V1"))

    receipt = runtime.intake.hl7(adt("A38", "202603011100", visit="V1"))

    assert receipt.outcome == "error" and "A11" in receipt.reason
    assert visits(runtime) == [("V1", "in-progress", "100001")]


# -- A29 delete person information ----------------------------------------------------------

def test_an_a29_inactivates_the_person_and_their_open_work_stops(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))
    assert open_tasks_by_mrn(runtime)["100001"] > 0

    receipt = runtime.intake.hl7(identity("A29", "202603021100", mrn="100001"))

    assert receipt.outcome == "accepted", receipt.reason
    with runtime.sessions() as s:
        assert s.scalars(select(Patient.active)).one() is False
    assert open_tasks_by_mrn(runtime) == {}
    # A later message about the person brings nothing back.
    runtime.intake.hl7(adt("A08", "202603021200", visit="V1"))
    assert open_tasks_by_mrn(runtime) == {}


def test_fhir_shows_the_a29_person_inactive_under_their_mrn(app_client):
    intake = app_client.app.state.runtime.intake
    intake.hl7(adt("A01", "202603021015", visit="V1"))
    intake.hl7(identity("A29", "202603021100", mrn="100001"))

    found = app_client.get("/fhir/Patient", params={"identifier": "100001"},
                           headers=auth_headers(app_client))

    assert found.status_code == 200, found.text
    [entry] = found.json()["entry"]
    assert entry["resource"]["active"] is False


def test_an_a29_for_a_person_never_seen_is_refused_204(runtime):
    receipt = runtime.intake.hl7(identity("A29", "202603021100", mrn="100001"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 204


# -- triggers the engine does not apply ------------------------------------------------------

def test_a_harmless_trigger_is_acknowledged_and_recorded_as_ignored_with_why(runtime):
    receipt = runtime.intake.hl7(adt("A60", "202603021015"))  # update allergy information

    assert receipt.outcome == "ignored" and "MSA|AA|" in receipt.ack
    assert "allerg" in kept(runtime, receipt.message_id).reason


def test_an_account_number_change_is_harmless_only_while_pv1_19_names_the_stay(runtime):
    """PID-18 keys a stay sent without PV1-19, so an A49 for such a stay would change its key:
    acknowledging it as harmless would drop that change. It is refused (AR 201) and kept."""
    named = runtime.intake.hl7(adt("A49", "202603021015", visit="V1"))
    assert named.outcome == "ignored" and "MSA|AA|" in named.ack

    raw = er7([msh("A49", "A49-2", "202603021020"), evn("A49", "202603021020", pad_to=2),
               pid(cx("100001", FACILITY, "MR"), "TESTPATIENT^ACCOUNT"),
               pv1("I", "4WEST^401^A")]).encode()
    unnamed = runtime.intake.hl7(raw)
    assert unnamed.outcome == "rejected"
    assert "MSA|AR|" in unnamed.ack and err_code(unnamed.ack) == 201
    assert "PID-18" in kept(runtime, unnamed.message_id).reason


def test_an_alternate_id_change_is_refused_when_pid_3_is_empty_and_pid_4_keys_the_patient(
        runtime):
    with_pid3 = runtime.intake.hl7(adt("A48", "202603021015", visit="V1"))
    assert with_pid3.outcome == "ignored"

    raw = er7([msh("A48", "A48-2", "202603021020"), evn("A48", "202603021020", pad_to=2),
               "PID|1|||ALT777^^^GENHOSP^PI|TESTPATIENT^ALTERNATE"]).encode()
    refused = runtime.intake.hl7(raw)
    assert refused.outcome == "rejected" and err_code(refused.ack) == 201


def test_a_trigger_that_would_change_state_the_engine_does_not_apply_is_refused_201(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))

    receipt = runtime.intake.hl7(adt("A17", "202603021100", visit="V1"))  # swap patients

    assert receipt.outcome == "rejected"
    assert "MSA|AR|" in receipt.ack and err_code(receipt.ack) == 201
    assert kept(runtime, receipt.message_id).outcome == "rejected"


def test_a_person_update_with_pid_only_updates_a_known_patient(runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))
    raw = er7([msh("A31", "A31-1", "202603021100"), evn("A31", "202603021100", pad_to=2),
               pid(cx("100001", FACILITY, "MR"), "TESTPATIENT^RENAMED", birth_date="19450612",
                   sex="F")]).encode()

    receipt = runtime.intake.hl7(raw)

    assert receipt.outcome == "accepted", receipt.reason
    with runtime.sessions() as s:
        assert s.scalars(select(Patient.given)).one() == "RENAMED"


# -- a reused MSH-10 --------------------------------------------------------------------------

def test_a_reused_control_id_with_new_content_is_applied_as_a_new_message(runtime):
    first = runtime.intake.hl7(adt("A01", "202603021015", visit="V1", control_id="RESET-1"))
    # The sender's counter was reset: the same MSH-10, another patient's admission.
    second = runtime.intake.hl7(adt("A01", "202603031015", mrn="600006", visit="V6",
                                    control_id="RESET-1"))

    assert second.outcome == "accepted", second.reason
    assert second.ack != first.ack
    assert [v for v, *_ in visits(runtime)] == ["V1", "V6"]


def test_an_identical_resend_and_one_restamped_in_msh7_are_duplicates(runtime):
    message = adt("A01", "202603021015", visit="V1", control_id="SAME-1")
    first = runtime.intake.hl7(message)
    restamped = message.replace(b"|202603021015|", b"|202603021016|", 1)  # MSH-7 only

    again = runtime.intake.hl7(message)
    resent = runtime.intake.hl7(restamped)

    assert (again.outcome, resent.outcome) == ("duplicate", "duplicate")
    assert again.ack == first.ack == resent.ack
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 1


# -- through the real MLLP listener -------------------------------------------------------------

def _exchange(sock: socket.socket, message: bytes) -> str:
    sock.sendall(frame(message))
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        assert chunk, "the listener closed the connection"
        data += chunk
    return parse(data.strip(b"\x0b\x1c\r").decode()).segment("MSA").value(1)


def test_a_sender_renumbers_and_corrects_over_mllp_and_every_message_lands(server):
    """An admission, its MRN corrected (A47) and its visit renumbered (A50), then an update
    and a discharge under the new keys: every message AA, one patient, one closed stay."""
    feed = [
        adt("A01", "202603021015", mrn="100001", visit="V1"),
        identity("A47", "202603021100", mrn="200002", prior_mrn="100001"),
        adt("A08", "202603021200", mrn="200002", visit="V1"),
        identity("A50", "202603021300", mrn="200002", visit="V2", prior_visit="V1"),
        adt("A03", "202603051100", mrn="200002", visit="V2", discharge_time="202603051100"),
        adt("A60", "202603051200", mrn="200002", visit="V2"),
        adt("A17", "202603051300", mrn="200002", visit="V2"),
    ]
    with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=30) as sock:
        answers = [_exchange(sock, message) for message in feed]

    assert answers == ["AA", "AA", "AA", "AA", "AA", "AA", "AR"]
    engine = create_engine(normalise_url(server.database_url))
    try:
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Patient)) == 1
            stays = s.execute(select(Encounter.visit_number, Encounter.status)).all()
            assert [tuple(r) for r in stays] == [("V2", "finished")]
            outcomes = s.scalars(select(InboundMessage.outcome).order_by(InboundMessage.id))
            assert list(outcomes) == ["accepted"] * 5 + ["ignored", "rejected"]
    finally:
        engine.dispose()


def test_an_a47_naming_the_same_identifier_before_and_after_is_refused_and_keeps_the_mrn(
        runtime):
    runtime.intake.hl7(adt("A01", "202603021015", mrn="100001", visit="V1"))

    receipt = runtime.intake.hl7(identity("A47", "202603021100", mrn="100001",
                                          prior_mrn="100001"))

    assert receipt.outcome == "error" and err_code(receipt.ack) == 204
    assert visits(runtime) == [("V1", "in-progress", "100001")]


def test_a_cancelled_leave_of_absence_puts_the_patient_back_in_and_a_cancelled_return_out(
        runtime):
    runtime.intake.hl7(adt("A01", "202603021015", visit="V1"))
    runtime.intake.hl7(adt("A21", "202603031000", visit="V1"))

    back_in = runtime.intake.hl7(adt("A52", "202603031005", visit="V1"))
    assert back_in.outcome == "accepted" and visits(runtime)[0][1] == "in-progress"

    runtime.intake.hl7(adt("A21", "202603041000", visit="V1"))
    runtime.intake.hl7(adt("A22", "202603041400", visit="V1"))
    out_again = runtime.intake.hl7(adt("A53", "202603041405", visit="V1"))
    assert out_again.outcome == "accepted" and visits(runtime)[0][1] == "onleave"
