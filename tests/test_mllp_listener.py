"""The MLLP listener, as an interface engine meets it: a real `engine serve`, real sockets.

The normal path goes through python-hl7's MLLP client; hostile senders (split writes,
garbage, slowloris, oversize frames) use raw sockets. Every test runs on SQLite and, when
configured, PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hl7.client import MLLPClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from engine.hl7.build import adt
from engine.hl7.framing import END, SB, frame
from engine.hl7.message import parse
from engine.storage.db import normalise_url
from engine.storage.models import Encounter, EncounterEvent, InboundMessage, Patient, RuleOutput
from harness.launch import ServerProcess, start_server

NASTY = Path(__file__).resolve().parent.parent / "fixtures" / "hl7" / "nasty"


# -- a sender's view ---------------------------------------------------------------------


def msa(ack: bytes | str) -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK, framed or not."""
    text = ack.decode() if isinstance(ack, bytes) else ack
    seg = parse(text.strip("\x0b\x1c\r")).segment("MSA")
    assert seg is not None, text
    return seg.value(1), seg.value(2)


def control_id(message: bytes) -> str:
    return parse(message.decode()).msh.value(10)


def read_acks(sock: socket.socket, count: int, timeout: float = 20) -> list[bytes]:
    """Read `count` framed ACKs, in the order they arrive."""
    sock.settimeout(timeout)
    buf = b""
    while buf.count(END) < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {buf.count(END)} of {count} ACKs")
        buf += chunk
    frames = buf.split(END)[:count]
    assert all(f.startswith(SB) for f in frames), buf[:200]
    return [f[1:] for f in frames]


def send(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(frame(message))
    return read_acks(sock, 1)[0]


@contextmanager
def mllp_client(server: ServerProcess) -> Iterator[MLLPClient]:
    with MLLPClient("127.0.0.1", server.mllp_port) as client:
        client.socket.settimeout(20)
        yield client


def closed_by_peer(sock: socket.socket, within: float) -> float:
    """Seconds until the server closes `sock` (recv gives EOF or a reset)."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return time.monotonic() - start


@contextmanager
def stored(database_url: str) -> Iterator[Session]:
    engine = create_engine(normalise_url(database_url))
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def rows(session: Session) -> list[InboundMessage]:
    return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


# -- the normal path and its neighbours ------------------------------------------------


def test_a_sender_gets_every_message_acknowledged_in_order(server, database_url):
    admit = adt("A01", "20260302101500", mrn="700001", visit="V700001")
    update = adt("A08", "20260302111500", mrn="700001", visit="V700001")
    burst = [adt("A08", f"202603021{2 + i}1500", mrn="700001", visit="V700001")
             for i in range(3)]
    split = adt("A08", "20260302161500", mrn="700001", visit="V700001")
    after_noise = adt("A08", "20260302171500", mrn="700001", visit="V700001")

    # An admission through python-hl7's client: AA, and MSA-2 names our message.
    with mllp_client(server) as client:
        ack = client.send_message(admit)
        assert ack.startswith(SB) and ack.endswith(END)
        assert msa(ack) == ("AA", control_id(admit))
        assert msa(client.send_message(update)) == ("AA", control_id(update))

    with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
        # A message dribbled out one byte per write for its first 100 bytes.
        data = frame(split)
        for i in range(100):
            sock.sendall(data[i : i + 1])
            time.sleep(0.001)
        sock.sendall(data[100:])
        assert msa(read_acks(sock, 1)[0]) == ("AA", control_id(split))

        # Three frames in one write: three ACKs, in the order sent.
        sock.sendall(b"".join(frame(m) for m in burst))
        assert [msa(a) for a in read_acks(sock, 3)] == [("AA", control_id(m)) for m in burst]

        # Garbage inside a frame: AR with nothing to echo, and the connection carries on.
        garbage = (NASTY / "garbage_binary.hl7").read_bytes()
        assert SB not in garbage and END not in garbage
        assert msa(send(sock, garbage)) == ("AR", "")

        # Bytes outside any frame are kept for the analyst; the frame after them is answered.
        sock.sendall(b"NOT MLLP\r\n" + frame(after_noise))
        assert msa(read_acks(sock, 1)[0]) == ("AA", control_id(after_noise))

        # The same message again (same sender, same MSH-10): the very same ACK, once stored.
        first = send(sock, admit)
        again = send(sock, admit)
        assert first == again and msa(first) == ("AA", control_id(admit))

    with stored(database_url) as session:
        inbound = rows(session)
        assert [r.control_id for r in inbound] == [
            control_id(m) for m in (admit, update, split, *burst)] + [None, None,
                                                                      control_id(after_noise)]
        # garbage in a frame is a whole (if unreadable) input; stray bytes are only a part
        assert [r.outcome for r in inbound] == ["accepted"] * 6 + ["rejected", "partial"] + [
            "accepted"]
        assert bytes(inbound[0].raw) == admit and inbound[0].duplicates == 2
        assert bytes(inbound[6].raw) == garbage
        assert bytes(inbound[7].raw) == b"NOT MLLP\r\n" and "outside" in inbound[7].reason
        assert inbound[0].ack.encode() == first  # type: ignore[union-attr]


def test_twenty_senders_at_once_each_get_twenty_aas_and_everything_is_stored(
    server, database_url
):
    senders, per_sender = 20, 20
    streams = {
        s: [adt("A01" if i == 0 else "A08", f"20260303{8 + i // 6:02d}{(i % 6) * 10:02d}00",
                mrn=f"71{s:02d}00", visit=f"V71{s:02d}00", control_id=f"MLLP-{s:02d}-{i:02d}")
            for i in range(per_sender)]
        for s in range(senders)
    }
    answers: dict[int, list[tuple[str, str]]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(senders)

    def sender(s: int) -> None:
        try:
            with mllp_client(server) as client:
                start.wait(timeout=30)
                answers[s] = [msa(client.send_message(m)) for m in streams[s]]
        except BaseException as exc:  # noqa: BLE001 - reported below with the others
            failures.append(exc)

    threads = [threading.Thread(target=sender, args=(s,)) for s in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    for s, stream in streams.items():
        assert answers[s] == [("AA", control_id(m)) for m in stream]

    with stored(database_url) as session:
        total = session.scalar(select(func.count()).select_from(InboundMessage))
        accepted = session.scalar(
            select(func.count()).select_from(InboundMessage)
            .where(InboundMessage.outcome == "accepted")
        )
    assert total == accepted == senders * per_sender


# -- limits ------------------------------------------------------------------------------


def test_limits_protect_the_listener_without_dropping_good_messages(database_url):
    """A small size cap, a 1 s frame deadline and a 3 s idle limit, on one server."""
    server = start_server(database_url, http=False, env={
        "ENGINE_MLLP_MAX_MESSAGE_BYTES": "4096",
        "ENGINE_MLLP_FRAME_TIMEOUT_S": "1",
        "ENGINE_MLLP_IDLE_TIMEOUT_S": "3",
    })
    try:
        good = adt("A01", "20260304101500", mrn="720001", visit="V720001")
        padding = "NTE|1||" + "x" * 6000
        oversize = adt("A08", "20260304111500", mrn="720001", visit="V720001",
                       extra=[padding])
        huge = (NASTY / "oversize_2mb.hl7").read_bytes()
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            # Just over the cap, in one read: AR naming the message, then business as usual.
            assert msa(send(sock, oversize)) == ("AR", control_id(oversize))
            assert msa(send(sock, good)) == ("AA", control_id(good))
            # 2 MB streamed in: skipped as it arrives, AR, and the connection still works.
            assert msa(send(sock, huge)) == ("AR", control_id(huge))
            follow = adt("A08", "20260304121500", mrn="720001", visit="V720001")
            assert msa(send(sock, follow)) == ("AA", control_id(follow))

        # Slowloris: a frame trickled a byte at a time is cut at 1 s, not kept open.
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            sock.sendall(SB + b"MSH|^~\\&|SLOW")
            started = time.monotonic()
            try:
                for _ in range(40):
                    sock.sendall(b"x")
                    time.sleep(0.2)
                    if time.monotonic() - started > 6:
                        break
                closed_after = closed_by_peer(sock, within=10)
            except (BrokenPipeError, ConnectionResetError):
                closed_after = 0.0
            elapsed = time.monotonic() - started
            assert elapsed < 3, f"trickling sender held the connection {elapsed:.1f} s"
            assert closed_after < 3

        # A partial frame, then silence: cut at the frame deadline (1 s), before idle (3 s).
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            sock.sendall(SB + b"MSH|^~\\&|STALL")
            assert 0.8 < closed_by_peer(sock, within=10) < 2.5

        # An idle connection, even after good work, is closed at the idle limit.
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            last = adt("A08", "20260304131500", mrn="720001", visit="V720001")
            assert msa(send(sock, last))[0] == "AA"
            assert 2.5 < closed_by_peer(sock, within=10) < 5

        with stored(database_url) as session:
            refused = [r for r in rows(session) if r.outcome == "partial"]
            reasons = [r.reason or "" for r in refused]
            assert sum("exceeds the 4096-byte limit" in r for r in reasons) == 2
            assert all(len(r.raw) <= 4096 for r in refused)  # only the head of oversize
            cut = [r for r in refused if "incomplete MLLP frame" in (r.reason or "")]
            assert [bytes(r.raw).rstrip(b"x") for r in cut] == [b"MSH|^~\\&|SLOW",
                                                                b"MSH|^~\\&|STALL"]
            accepted = [r.control_id for r in rows(session) if r.outcome == "accepted"]
            assert accepted == [control_id(good), control_id(follow), control_id(last)]
    finally:
        server.kill()


# -- what is not for live state ----------------------------------------------------------


def err(ack: bytes) -> tuple[str, str, str]:
    """(ERR-2 location, ERR-3 code, ERR-8 user message) of a 2.5.1 ACK."""
    seg = parse(ack.decode().strip("\x0b\x1c\r")).segment("ERR")
    assert seg is not None, ack
    return seg.raw(2), seg.value(3, 1), seg.value(8)


def live_state(session: Session) -> tuple:
    """Everything a message could have changed: the encounters, their timelines, outputs."""
    encounters = [(e.visit_number, e.status, e.unit, e.discharge_time, e.discharge_disposition)
                  for e in session.scalars(select(Encounter).order_by(Encounter.id))]
    count = lambda model: session.scalar(select(func.count()).select_from(model))  # noqa: E731
    return encounters, count(Patient), count(EncounterEvent), count(RuleOutput)


def test_training_debugging_and_unmarked_messages_are_refused_and_change_nothing(
    database_url,
):
    """A test feed pointed at production by mistake: its discharge must not discharge the
    real inpatient. MSH-11 T and D get AR 202, an empty MSH-11 AR 101; all are kept."""
    server = start_server(database_url, http=False)
    try:
        admit = adt("A01", "20260306081500", mrn="760001", visit="V760001")
        training_discharge = adt("A03", "20260306121500", mrn="760001", visit="V760001",
                                 disposition="01", discharge_time="20260306121500",
                                 processing_id="T")
        debugging_transfer = adt("A02", "20260306111500", mrn="760001", visit="V760001",
                                 location="ICU^1^A^GENHOSP", prior_location="4WEST^412^A",
                                 processing_id="D")
        training_admit = adt("A01", "20260306091500", mrn="760002", visit="V760002",
                             processing_id="T")
        unmarked_discharge = adt("A03", "20260306131500", mrn="760001", visit="V760001",
                                 disposition="01", discharge_time="20260306131500",
                                 processing_id="")
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
            assert msa(send(sock, admit)) == ("AA", control_id(admit))
            with stored(database_url) as session:
                before = live_state(session)

            for message in (training_discharge, debugging_transfer, training_admit):
                ack = send(sock, message)
                assert msa(ack) == ("AR", control_id(message))
                location, code, text = err(ack)
                assert (location, code) == ("MSH^1^11", "202")
                assert "MSH-11 is not accepted here" in text and "accepts P" in text
                # The ACK mirrors the sender's processing id, as HL7 asks.
                sent_id = parse(message.decode()).msh.value(11)
                assert parse(ack.decode().strip("\x0b\x1c\r")).msh.value(11) == sent_id
            ack = send(sock, unmarked_discharge)
            assert msa(ack) == ("AR", control_id(unmarked_discharge))
            assert err(ack)[:2] == ("MSH^1^11", "101")
            # The same training message again: the same answer, still nothing applied.
            assert msa(send(sock, training_discharge)) == ("AR", control_id(training_discharge))

        with stored(database_url) as session:
            assert live_state(session) == before
            (encounter_row,) = before[0]
            assert encounter_row[1:3] == ("in-progress", "4WEST")
            refused = rows(session)[1:]
            assert [r.outcome for r in refused] == ["rejected"] * 4
            assert [bytes(r.raw) for r in refused] == [
                training_discharge, debugging_transfer, training_admit, unmarked_discharge]
            assert all("MSH-11" in (r.reason or "") for r in refused)
            assert all(r.encounter_id is None for r in refused)
            assert refused[0].duplicates == 1
    finally:
        server.kill()


# -- shutdown ----------------------------------------------------------------------------


def test_sigterm_mid_stream_acknowledges_what_was_stored_and_exits_cleanly(database_url):
    server = start_server(database_url, http=False)
    messages = [adt("A08" if i else "A01",
                    f"20260305{8 + i // 3600:02d}{i // 60 % 60:02d}{i % 60:02d}",
                    mrn="730001", visit="V730001", control_id=f"TERM-{i:04d}")
                for i in range(2000)]
    acked: list[str] = []
    ended: list[BaseException] = []

    def stream() -> None:
        try:
            with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=20) as sock:
                for m in messages:
                    code, ctrl = msa(send(sock, m))
                    assert code == "AA"
                    acked.append(ctrl)
        except (ConnectionError, OSError) as exc:
            ended.append(exc)

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 30
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acked) >= 20, "the stream never got going"

    exit_code = server.stop(timeout=30)
    sender.join(timeout=30)

    assert exit_code == 0
    assert ended, "the sender should have seen the connection close"
    assert 20 <= len(acked) < len(messages)
    with stored(database_url) as session:
        kept = [r.control_id for r in rows(session)]
    # Everything acknowledged was stored, and everything stored was acknowledged.
    assert kept == acked
