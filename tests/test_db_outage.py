"""The database goes away mid-stream: nothing is acknowledged that was not stored, the
listener stays up, senders' resends land once the database is back, and nothing is lost."""

from __future__ import annotations

import sqlite3
import threading
import time

import httpx
import pytest
from sqlalchemy.engine import make_url

from harness.launch import start_server
from tests.conftest import auth_headers, fresh_database
from tests.outage import CuttableProxy
from tests.recovery import Sender, assert_like_a_clean_run
from tests.stream import hospital_stream

OUTAGE_S = 2.5


@pytest.fixture
def pg_url(tmp_path):
    yield from fresh_database("postgres", tmp_path)


@pytest.mark.postgres
def test_postgres_outage_mid_stream_loses_nothing_and_acknowledges_nothing_unstored(
        pg_url, tmp_path):
    target = make_url(pg_url)
    proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
    proxied = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    server = start_server(proxied, env={"ENGINE_CLOCK_INTERVAL_S": "0.5"})
    headers = auth_headers(server)  # signed in before the database goes away
    messages = hospital_stream(40, seed=21)
    window: dict[str, float] = {}
    reads_during_outage: list[int] = []

    def outage(i: int) -> None:
        if i != len(messages) // 3:
            return
        proxy.cut()
        window["cut"] = time.monotonic()
        with httpx.Client(base_url=server.fhir, timeout=10,
                          headers=headers) as http:
            reads_during_outage.append(http.get("/Encounter").status_code)

        def restore() -> None:
            time.sleep(OUTAGE_S)
            window["restored"] = time.monotonic()
            proxy.restore()

        threading.Thread(target=restore, daemon=True).start()

    sender = Sender(lambda: server.mllp_port)
    try:
        sender.deliver(messages, after_each=outage, deadline_s=90)
        assert server.proc.poll() is None, "the server died with its database"
        with httpx.Client(base_url=server.fhir, timeout=10,
                          headers=headers) as http:
            assert http.get("/Encounter").status_code == 200
    finally:
        server.stop()
        proxy.close()

    during = [e for e in sender.log
              if window["cut"] <= e.sent_at and e.answered_at < window["restored"]]
    assert during, "no message was sent while the database was away"
    assert all(e.code in ("AE", "") for e in during), [e.code for e in during]
    assert any(e.code == "AE" for e in during), "the listener answered nothing during the outage"
    assert reads_during_outage == [503]
    assert_like_a_clean_run(pg_url, messages, tmp_path)


def test_sqlite_writer_locked_out_mid_stream_acknowledges_only_after_storing(tmp_path):
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    server = start_server(url)
    messages = hospital_stream(30, seed=22)
    window: dict[str, float] = {}

    def lock_out(i: int) -> None:
        if i != len(messages) // 3:
            return
        holder = sqlite3.connect(tmp_path / "engine.db", isolation_level=None, timeout=30,
                                 check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        window["locked"] = time.monotonic()

        def release() -> None:
            time.sleep(OUTAGE_S)
            window["released"] = time.monotonic()
            holder.execute("COMMIT")
            holder.close()

        threading.Thread(target=release, daemon=True).start()

    sender = Sender(lambda: server.mllp_port)
    try:
        sender.deliver(messages, after_each=lock_out, deadline_s=90)
        assert server.proc.poll() is None
    finally:
        server.stop()
    waited = [e for e in sender.log if window["locked"] <= e.sent_at < window["released"]]
    assert waited, "no message was sent while the database was locked"
    assert all(e.answered_at >= window["released"] for e in waited if e.code == "AA")
    assert_like_a_clean_run(url, messages, tmp_path)
