"""Shared test fixtures: both databases, a runtime, and a real server process.

Every storage-touching test takes `database_url`, which runs it on SQLite and, when
ENGINE_TEST_POSTGRES_URL is set, on PostgreSQL in a schema of its own. CI sets
ENGINE_TEST_REQUIRE_POSTGRES=1 so a missing PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from engine.clock import Clock, WallClock
from engine.config import Settings
from engine.runtime import Runtime
from engine.storage.db import normalise_url

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
HL7 = FIXTURES / "hl7"
PG_URL = os.environ.get("ENGINE_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("ENGINE_TEST_REQUIRE_POSTGRES") == "1"
TOKEN = "test-token-not-secret"


def _pg_schema_url(schema: str) -> str:
    assert PG_URL is not None
    base = normalise_url(PG_URL)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


BOTH_STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BOTH_STORES)
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    yield from fresh_database(request.param, tmp_path)


def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty store of this kind; PostgreSQL schemas are dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'engine.db'}"
        return
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("ENGINE_TEST_REQUIRE_POSTGRES=1 but ENGINE_TEST_POSTGRES_URL is not set")
        pytest.skip("ENGINE_TEST_POSTGRES_URL not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalise_url(PG_URL))
    try:
        with admin.begin() as conn:
            conn.execute(CreateSchema(schema))
    except Exception as exc:
        admin.dispose()
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield _pg_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(DropSchema(schema, cascade=True))
        admin.dispose()


def make_settings(database_url: str, **overrides) -> Settings:
    return Settings(database_url=database_url, api_token=TOKEN, **overrides)


@pytest.fixture
def runtime_factory(database_url):
    """Open runtimes on the test database (closed at teardown)."""
    opened: list[Runtime] = []

    def open_runtime(clock: Clock | None = None, **overrides) -> Runtime:
        rt = Runtime.open(make_settings(database_url, **overrides), clock=clock or WallClock())
        opened.append(rt)
        return rt

    yield open_runtime
    for rt in opened:
        rt.close()


@pytest.fixture
def runtime(runtime_factory) -> Runtime:
    return runtime_factory()


@dataclass
class ServerProcess:
    """`engine serve` running as a real process, as an operator would start it."""

    proc: subprocess.Popen
    http_port: int | None
    mllp_port: int | None
    database_url: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def fhir(self) -> str:
        return f"{self.base_url}/fhir"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.fhir, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=30)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def start_server(database_url: str, *, mllp: bool = True, http: bool = True,
                 env: dict[str, str] | None = None, timeout: float = 60,
                 command: tuple[str, ...] = ("serve",)) -> ServerProcess:
    """Start `engine serve` (or `command`, e.g. ("worker",)) and wait for its "ready" line."""
    args = [sys.executable, "-m", "engine", *command]
    if command[0] == "serve":
        args += ["--port", "0", "--mllp-port", "0"]
    if not mllp:
        args.append("--no-mllp")
    environ = {
        **os.environ,
        "ENGINE_DATABASE_URL": database_url,
        "ENGINE_API_TOKEN": TOKEN,
        "ENGINE_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=environ,
                            cwd=ROOT, text=True)
    ports: dict[str, int] = {}
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(lines))
            continue
        lines.append(line)
        if m := re.match(r"HTTP\s+http://[\d.]+:(\d+)/", line):
            ports["http"] = int(m.group(1))
        if m := re.match(r"MLLP\s+[\d.]+:(\d+)", line):
            ports["mllp"] = int(m.group(1))
        if line.strip() == "ready":
            break
    else:
        proc.kill()
        raise RuntimeError("server did not become ready:\n" + "".join(lines))
    # Drain output in the background so the pipe never blocks the server.
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return ServerProcess(proc, ports.get("http"), ports.get("mllp"), database_url)


@pytest.fixture
def server(database_url) -> Iterator[ServerProcess]:
    srv = start_server(database_url)
    yield srv
    srv.kill()
