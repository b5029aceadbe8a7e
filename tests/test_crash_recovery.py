"""SIGKILL the server again and again mid-stream: every acknowledged message survives, once,
with its effects, and the hospital's state equals a clean run and the simulation's truth."""

from __future__ import annotations

import random
import threading
import time

import pytest

from engine.api.runtime import Runtime
from engine.core.config import DEFAULT_SITE_PROFILE
from engine.core.site import load_site_profile
from engine.tools.simulate import simulate
from harness.launch import start_server
from tests.conftest import make_settings
from tests.recovery import Sender, assert_like_a_clean_run
from tests.test_simulate import engine_state

KILLS = 20
MLLP_ONLY = ("mllp", "--port", "0")  # restarts faster than `serve`: no HTTP stack to load


@pytest.mark.slow
def test_twenty_kills_lose_nothing_acknowledged_and_duplicate_nothing(database_url, tmp_path):
    sim = simulate(20, 12, 4, load_site_profile(DEFAULT_SITE_PROFILE), mess=0.05)
    assert sim.counts["duplicate"] > 0 and len(sim.messages) > 250
    rng = random.Random(11)
    servers = [start_server(database_url, command=MLLP_ONLY)]
    acked = [0]
    kills = 0
    stop_killer = threading.Event()

    def port() -> int:
        """The sender's reconnect: a dead server is restarted, as a supervisor would."""
        if servers[-1].proc.poll() is not None:
            servers.append(start_server(database_url, command=MLLP_ONLY))
        return servers[-1].mllp_port

    def killer() -> None:
        """Kill after a random number of ACKs plus a random few milliseconds: mid-message."""
        nonlocal kills
        while kills < KILLS and not stop_killer.is_set():
            target = acked[0] + rng.randint(3, 16)
            while acked[0] < target and not stop_killer.is_set():
                time.sleep(0.001)
            time.sleep(rng.uniform(0, 0.006))
            proc = servers[-1].proc
            if proc.poll() is None and not stop_killer.is_set():
                proc.kill()
                proc.wait()
                kills += 1

    def count(_i: int) -> None:
        acked[0] += 1

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    sender = Sender(port)
    try:
        sender.deliver(sim.messages, deadline_s=400, after_each=count)
    finally:
        stop_killer.set()
        thread.join()
        servers[-1].stop()
    assert kills == KILLS, f"only {kills} kills happened; the stream was too short"
    assert len(servers) == KILLS + 1

    assert_like_a_clean_run(database_url, sim.messages, tmp_path)
    rt = Runtime.open(make_settings(database_url))
    try:
        assert engine_state(rt) == {v: t.as_dict() for v, t in sim.truth.items()}
    finally:
        rt.close()
