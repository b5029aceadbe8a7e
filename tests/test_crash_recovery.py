"""SIGKILL the server mid-stream: every acknowledged message survives, once, with its effects."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from sqlalchemy import func, select

from engine.storage.models import InboundMessage
from tests.conftest import make_settings, start_server
from tests.stream import hospital_stream, send, snapshot

KILLS = 5


@pytest.mark.slow
def test_killed_server_loses_nothing_acknowledged_and_duplicates_nothing(database_url, tmp_path):
    from engine.runtime import Runtime

    messages = hospital_stream(60)
    rng = random.Random(11)
    server = start_server(database_url)
    acked: list[str] = []
    kills = 0
    stop_killer = threading.Event()

    def killer() -> None:
        """Kill after a random number of ACKs plus a random few milliseconds: mid-message."""
        nonlocal kills
        while kills < KILLS and not stop_killer.is_set():
            target = len(acked) + rng.randint(5, 30)
            while len(acked) < target and not stop_killer.is_set():
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.004))
            proc = server.proc
            if proc.poll() is None and not stop_killer.is_set():
                proc.kill()
                kills += 1

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    i = 0
    sock = None
    deadline = time.monotonic() + 240
    while i < len(messages):
        assert time.monotonic() < deadline, "stream did not finish"
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", server.mllp_port), timeout=5)
            ack = send(sock, messages[i])
            assert b"MSA|AA|" in ack, ack
            acked.append(ack.split(b"MSA|AA|")[1].split(b"\r")[0].decode())
            i += 1
        except OSError:
            if sock is not None:
                sock.close()
                sock = None
            if server.proc.poll() is not None:  # the sender retries after a restart
                server = start_server(database_url)
            else:
                time.sleep(0.05)
    stop_killer.set()
    thread.join()
    if sock is not None:
        sock.close()
    server.stop()
    assert kills >= 3, f"only {kills} kills happened; the stream was too short"

    crashed = Runtime.open(make_settings(database_url))
    reference = Runtime.open(make_settings(f"sqlite:///{tmp_path / 'reference.db'}"))
    try:
        for raw in messages:
            reference.intake.hl7(raw)
        with crashed.sessions() as s:
            stored = s.scalar(select(func.count()).select_from(InboundMessage))
            accepted = s.scalar(
                select(func.count()).where(InboundMessage.outcome == "accepted")
            )
            ids = set(s.scalars(select(InboundMessage.control_id)))
            crashed_state = snapshot(s)
        with reference.sessions() as s:
            expected_state = snapshot(s)
    finally:
        crashed.close()
        reference.close()
    assert set(acked) <= ids
    assert stored == accepted == len(messages)
    assert crashed_state == expected_state
