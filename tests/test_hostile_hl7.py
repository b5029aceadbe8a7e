"""Hostile HL7 at a real MLLP listener: mutated messages, broken framings, trickling and
oversize senders. Every input gets an answer or a clean close, the process never dies, its
memory stays bounded, and a well-behaved sender is served throughout."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.hl7.build import adt
from engine.hl7.framing import END, SB, frame
from harness.launch import ServerProcess, start_server
from tests.stream import send

EVENTS = Path(__file__).resolve().parent.parent / "fixtures" / "hl7" / "events"
SEEDS = [p.read_bytes() for p in sorted(EVENTS.rglob("*.hl7"))[:40]] + [
    adt("A01", "202603021015", extra=["DG1|1||I50.9^Heart failure^I10||20260302|A"]),
]
LIMITS = {"ENGINE_MLLP_FRAME_TIMEOUT_S": "1", "ENGINE_MLLP_IDLE_TIMEOUT_S": "3",
          "ENGINE_MLLP_MAX_MESSAGE_BYTES": "65536", "ENGINE_RULESETS": "off"}
# `make soak` runs a longer, randomized fuzz: ENGINE_FUZZ_EXAMPLES=5000.
LONG_FUZZ = int(os.environ.get("ENGINE_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG_FUZZ or 120, deadline=None, derandomize=not LONG_FUZZ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def listener(tmp_path_factory) -> Iterator[ServerProcess]:
    srv = start_server(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'engine.db'}",
                       env=LIMITS)
    yield srv
    srv.kill()


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def answers(port: int, data: bytes, chunks: list[int] | None = None) -> list[bytes]:
    """Send `data` (in pieces), half-close, and read to the end: the framed replies.

    Fails if the listener neither answers nor closes within 15 s, or sends anything that is
    not a whole MLLP frame.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        at = 0
        for size in chunks or [len(data)]:
            sock.sendall(data[at:at + size])
            at += size
        sock.sendall(data[at:])
        sock.shutdown(socket.SHUT_WR)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # an abrupt close is a close too
    replies = []
    while received:
        assert received.startswith(SB) and END in received, received[:200]
        end = received.index(END)
        replies.append(received[1:end])
        received = received[end + len(END):]
    for reply in replies:
        assert b"\rMSA|A" in reply, reply[:300]
    return replies


def mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(seed)
    for kind, where, blob in edits:
        at = where % (len(out) + 1)
        if kind == 0:
            out[at:at] = blob  # insert
        elif kind == 1:
            del out[at:at + len(blob)]  # delete
        else:
            out[at:at + len(blob)] = blob  # overwrite
    return bytes(out)


HOSTILE_BYTES = st.binary(max_size=24) | st.sampled_from(
    [b"\x0b", b"\x1c\r", b"\x1c", b"\r", b"\n", b"|", b"^~\\&", b"\x00", b"\xff\xfe", b"MSH|",
     "é€".encode(), b"\\X0D\\", b"^" * 200, b"~" * 300, b"|" * 500])


@FUZZ
@given(seed=st.sampled_from(SEEDS),
       edits=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4000), HOSTILE_BYTES),
                      max_size=6))
def test_mutated_messages_are_answered_or_closed_cleanly(listener, seed, edits):
    answers(listener.mllp_port, frame(mutate(seed, edits)))


@FUZZ
@given(data=st.lists(st.sampled_from(SEEDS) | st.binary(max_size=300), max_size=4),
       joiners=st.lists(st.sampled_from([SB, END, b"\x1c", b"", b"\r\n", b"\x00"]),
                        min_size=4, max_size=4),
       cuts=st.lists(st.integers(1, 400), max_size=8))
def test_broken_framings_split_anywhere_are_answered_or_closed(listener, data, joiners, cuts):
    stream = b"".join(j + d for j, d in zip(joiners, data, strict=False))
    answers(listener.mllp_port, stream, cuts)


def test_the_listener_survives_the_fuzz_with_bounded_memory(listener):
    """Runs after the fuzz tests: same process, still serving, memory within bounds."""
    before = rss_kib(listener.proc.pid)
    big = frame(b"MSH|^~\\&|X|Y|Z|W|20260302||ADT^A08|BIG1|P|2.5.1\r" + b"Z" * 3_000_000)
    for _ in range(5):
        replies = answers(listener.mllp_port, big, [65536] * 40)
        assert len(replies) == 1 and b"MSA|AR|" in replies[0]
    with socket.create_connection(("127.0.0.1", listener.mllp_port), timeout=15) as sock:
        assert b"MSA|AA|" in send(sock, adt("A01", "202603021015", mrn="900001",
                                            visit="VFUZZ1"))
    assert listener.proc.poll() is None
    assert rss_kib(listener.proc.pid) - before < 40 * 1024


def test_trickling_and_idle_senders_are_cut_off_while_others_are_served(listener):
    port = listener.mllp_port
    closed_after: list[float] = []

    def slowloris() -> None:
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                sock.sendall(SB + b"MSH|^~\\&|")
                for _ in range(40):  # a byte every 0.25 s: never a whole frame
                    time.sleep(0.25)
                    sock.sendall(b"A")
                    sock.settimeout(0.01)
                    try:
                        if sock.recv(65536) == b"":
                            break
                    except TimeoutError:
                        pass
            except OSError:
                pass
        closed_after.append(time.monotonic() - start)

    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
    trickles = [threading.Thread(target=slowloris) for _ in range(20)]
    for t in trickles:
        t.start()
    latencies = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for i in range(20):
            t0 = time.monotonic()
            ack = send(sock, adt("A08", "202603021200", mrn="900002", visit="VFUZZ2",
                                 control_id=f"GOOD{i:03d}"))
            latencies.append(time.monotonic() - t0)
            assert b"MSA|AA|" in ack
    for t in trickles:
        t.join(15)
    assert len(closed_after) == 20 and max(closed_after) < 6, closed_after
    assert max(latencies) < 2.0, latencies
    for sock in idle:  # idle connections were closed after the idle timeout
        sock.settimeout(10)
        assert sock.recv(1) == b""
        sock.close()
    assert listener.proc.poll() is None
