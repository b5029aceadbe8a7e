"""Three `engine serve` processes and a worker on one PostgreSQL behave as one engine.

Messages for the same visit arrive on different processes (and race each other); the clock
is shared by workers that claim each due encounter once. The final state, the stored inputs
and the rule outputs equal a single process fed the same stream.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine.api.runtime import Runtime
from engine.core.clock import FixedClock
from engine.hl7.build import adt
from engine.planning.tick import count_due, tick
from engine.storage.models import Encounter, InboundMessage, RuleOutput
from harness.launch import start_server
from tests.conftest import fresh_database, make_settings
from tests.stream import hospital_stream, send, snapshot

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url(tmp_path):
    yield from fresh_database("postgres", tmp_path)


def _field(raw: bytes, segment: str, index: int) -> str:
    for seg in raw.decode().split("\r"):
        if seg.startswith(segment + "|"):
            parts = seg.split("|")
            return parts[index] if index < len(parts) else ""
    return ""


def _by_visit(stream: list[bytes]) -> dict[str, list[bytes]]:
    visits: dict[str, list[bytes]] = {}
    for raw in stream:
        visits.setdefault(_field(raw, "PV1", 19).split("^")[0], []).append(raw)
    return visits


def _racing_updates(visits: dict[str, list[bytes]]) -> list[tuple[bytes, bytes]]:
    """Per visit, a newer and an older A08 (different attendings) sent at the same moment."""
    pairs = []
    for n, (visit, messages) in enumerate(sorted(visits.items())):
        last = messages[-1]
        mrn = _field(last, "PID", 3).split("^")[0]
        location = _field(last, "PV1", 3)
        day = 21 + n % 7
        common = {"mrn": mrn, "visit": visit, "location": location}
        newer = adt("A08", f"202604{day:02d}1000", attending="77^NEWER^DOC",
                    control_id=f"RN{n:05d}", **common)
        older = adt("A08", f"202604{day:02d}0900", attending="66^OLDER^DOC",
                    control_id=f"RO{n:05d}", **common)
        pairs.append((newer, older))
    return pairs


def _ack_code(ack: bytes) -> str:
    return ack.split(b"MSA|", 1)[1][:2].decode()


def _open_outputs(session) -> Counter:
    """(visit, output key) of every output still standing, with how many rows hold it."""
    rows = session.execute(
        select(Encounter.visit_number, RuleOutput.key)
        .join(Encounter, Encounter.id == RuleOutput.encounter_id)
        .where(RuleOutput.status != "cancelled"))
    return Counter(tuple(r) for r in rows)


def _feed_interleaved(ports: list[int], visits: dict[str, list[bytes]], errors: list) -> None:
    """Two connections per process; each visit's next message goes to whichever is free
    once its previous one is acknowledged, so one visit hops between processes."""
    ready: queue.Queue = queue.Queue()
    for visit in visits:
        ready.put((visit, 0))
    remaining = [sum(len(m) for m in visits.values())]
    lock = threading.Lock()
    done = threading.Event()

    def sender(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            while not done.is_set():
                try:
                    visit, i = ready.get(timeout=0.1)
                except queue.Empty:
                    continue
                try:
                    code = _ack_code(send(sock, visits[visit][i]))
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    errors.append(repr(exc))
                    done.set()
                    return
                if code != "AA":
                    errors.append((visit, i, code))
                if i + 1 < len(visits[visit]):
                    ready.put((visit, i + 1))
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()

    threads = [threading.Thread(target=sender, args=(p,)) for p in ports + ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert done.is_set() and remaining[0] == 0, errors


def _race(ports: list[int], pairs: list[tuple[bytes, bytes]], errors: list) -> None:
    """Process 1 gets every newer A08, process 2 every older one, process 3 the newer one
    again (a resend): the same visits in the same order, so they collide visit by visit."""
    lanes = [[p[0] for p in pairs], [p[1] for p in pairs], [p[0] for p in pairs]]
    start = threading.Barrier(3)

    def lane(port: int, messages: list[bytes]) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            start.wait()
            for raw in messages:
                code = _ack_code(send(sock, raw))
                if code != "AA":
                    errors.append(("race", code))

    threads = [threading.Thread(target=lane, args=(p, m)) for p, m in zip(ports, lanes,
                                                                         strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


@pytest.mark.slow
def test_three_processes_and_a_worker_equal_one_process(pg_url, tmp_path):
    stream = hospital_stream(45, seed=3)
    visits = _by_visit(stream)
    pairs = _racing_updates(visits)
    fast_clock = {"ENGINE_CLOCK_INTERVAL_S": "0.3"}
    servers = [start_server(pg_url, command=("serve", "--no-clock"))]
    # The schema exists now; the rest start together, as after a deploy.
    servers += [start_server(pg_url, command=("serve", "--no-clock")) for _ in range(2)]
    servers.append(start_server(pg_url, command=("worker",), env=fast_clock))
    errors: list = []
    try:
        ports = [s.mllp_port for s in servers[:3]]
        _feed_interleaved(ports, visits, errors)
        _race(ports, pairs, errors)
    finally:
        for s in servers:
            assert s.stop() == 0
    assert not errors

    reference = Runtime.open(make_settings(f"sqlite:///{tmp_path / 'one.db'}"))
    scaled = Runtime.open(make_settings(pg_url))
    try:
        for raw in stream:
            reference.intake.hl7(raw)
        for newer, older in pairs:
            for raw in (newer, older, newer):
                reference.intake.hl7(raw)
        with reference.sessions() as s:
            expected, expected_outputs = snapshot(s), _open_outputs(s)
        with scaled.sessions() as s:
            state, outputs = snapshot(s), _open_outputs(s)
            stored = Counter(s.scalars(select(InboundMessage.control_id)))
            resent = s.scalar(select(func.sum(InboundMessage.duplicates)))
    finally:
        reference.close()
        scaled.close()
    assert state == expected
    assert all(enc[4] == "77" for enc in state.values())  # the newer attending won everywhere
    assert len(stored) == len(stream) + 2 * len(pairs) and set(stored.values()) == {1}
    assert resent == len(pairs)
    assert outputs == expected_outputs and set(outputs.values()) == {1}  # no duplicate work


def test_concurrent_clocks_claim_each_due_encounter_once(pg_url):
    """Three clocks tick at the same instant: every due encounter is evaluated exactly once."""
    admitted = datetime(2026, 3, 25, 8, tzinfo=UTC)
    runtimes = [Runtime.open(make_settings(pg_url), clock=FixedClock(admitted))
                for _ in range(3)]
    try:
        first = runtimes[0]
        for raw in hospital_stream(120, seed=5):
            assert first.intake.hl7(raw).outcome == "accepted"
        later = admitted + timedelta(days=40)
        due = count_due(first.sessions, later)
        assert due > 50
        counts: list[int] = []
        start = threading.Barrier(3)

        def clock(rt: Runtime) -> None:
            start.wait()
            counts.append(tick(rt.sessions, rt.rules.current, later))

        threads = [threading.Thread(target=clock, args=(rt,)) for rt in runtimes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sum(counts) == due, counts
        assert count_due(first.sessions, later) == 0
        with first.sessions() as s:
            assert set(_open_outputs(s).values()) == {1}
    finally:
        for rt in runtimes:
            rt.close()
