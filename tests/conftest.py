"""Shared test fixtures: both databases, a runtime, and a real server process.

Every storage-touching test takes `database_url`, which runs it on SQLite and, when
ENGINE_TEST_POSTGRES_URL is set, on PostgreSQL in a schema of its own. CI sets
ENGINE_TEST_REQUIRE_POSTGRES=1 so a missing PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from engine.api.runtime import Runtime
from engine.core.clock import Clock, WallClock
from engine.core.config import Settings
from engine.core.roles import ROLES
from engine.security import passwords, users
from engine.storage.db import make_engine, normalise_url, session_factory
from engine.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
HL7 = FIXTURES / "hl7"
PG_URL = os.environ.get("ENGINE_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("ENGINE_TEST_REQUIRE_POSTGRES") == "1"
JWT_SECRET = "test-signing-key-not-secret-0123456789abcdef"
TEST_PASSWORD = "test-password-not-secret"
# Cheap argon2 for tests only (this process, servers and CLI runs it starts); production
# keeps the RFC 9106 defaults (3 passes, 64 MiB).
FAST_HASH = {"ENGINE_PASSWORD_HASH_TIME_COST": "1", "ENGINE_PASSWORD_HASH_MEMORY_KIB": "8192"}
os.environ.update(FAST_HASH)
passwords.configure(1, 8192)


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
    return Settings(database_url=database_url, jwt_secret=JWT_SECRET, **overrides)


# -- signing in, as each role --------------------------------------------------------------------
_secrets: dict[tuple[str, str], str] = {}  # (database url, account name) -> its secret
_tokens: dict[tuple[str, str, str], tuple[float, str]] = {}  # (db, base, role) -> (when, token)


def account_for(database_url: str, role: str = "integration") -> tuple[users.Kind, str, str]:
    """(kind, name, secret) of a test account with this role, created on first use.

    The integration role is a client holding every integration permission (as the EHR);
    every other role is a person named test.<role> with TEST_PASSWORD.
    """
    assert role in ROLES, role
    kind: users.Kind = "client" if role == "integration" else "user"
    name = f"test.{role}".replace("_", "-")
    if (database_url, name) in _secrets:
        return kind, name, _secrets[(database_url, name)]
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            existing = users.current(session, kind, name)
        if kind == "user":
            if existing is None:
                users.add_user(sessions, name, role, TEST_PASSWORD)
            secret = TEST_PASSWORD
        elif existing is None:
            scope = " ".join(sorted(p.value for p in ROLES[role]))
            secret = users.add_client(sessions, name, scope, role)[1]
        else:
            secret = users.new_secret(sessions, name)
    finally:
        engine.dispose()
    _secrets[(database_url, name)] = secret
    return kind, name, secret


def token_form(database_url: str, role: str = "integration") -> dict[str, str]:
    """The POST /auth/token form that signs in as a test account with this role."""
    kind, name, secret = account_for(database_url, role)
    if kind == "client":
        return {"grant_type": "client_credentials", "client_id": name, "client_secret": secret}
    return {"grant_type": "password", "username": name, "password": secret}


def auth_headers(target: ServerProcess | httpx.Client, role: str = "integration",
                 *, fresh: bool = False) -> dict[str, str]:
    """{"Authorization": "Bearer ..."} for a test account of `role`, from POST /auth/token.

    `target` is a running ServerProcess or an in-process client of the app (a Starlette
    TestClient); tokens are cached per database and role until near their expiry.
    """
    if isinstance(target, ServerProcess):
        database_url, base = target.database_url, target.base_url
        post = functools.partial(httpx.post, timeout=30)
    else:
        database_url, base = target.app.state.runtime.settings.database_url, ""
        post = target.post
    key = (database_url, base, role)
    cached = _tokens.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < 600:
        return {"Authorization": f"Bearer {cached[1]}"}
    response = post(f"{base}/auth/token", data=token_form(database_url, role))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    _tokens[key] = (time.monotonic(), token)
    return {"Authorization": f"Bearer {token}"}


def sign_in(client: httpx.Client, role: str, *, database_url: str | None = None,
            next_path: str = "/worklist") -> httpx.Response:
    """Sign a test person of `role` in through the /login form; the client keeps the cookie.

    `client` is a TestClient of the app, or an httpx.Client whose base_url is a running
    server's root (then pass `database_url=server.database_url`). Later form posts need
    `csrf(client)` as their csrf_token field (or X-CSRF-Token header).
    """
    database_url = database_url or client.app.state.runtime.settings.database_url
    _, name, secret = account_for(database_url, role)
    answer = client.post("/login", data={"username": name, "password": secret,
                                         "csrf_token": csrf(client), "next": next_path},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer


def csrf(client: httpx.Client) -> str:
    """The CSRF token of the client's session (starting one if needed), for form posts."""
    page = client.get("/login", follow_redirects=False)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found[1]


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
    output: list[str] = field(default_factory=list)  # everything it printed and logged

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def fhir(self) -> str:
        return f"{self.base_url}/fhir"

    def client(self, role: str = "integration") -> httpx.Client:
        """An httpx client for /fhir signed in with a test account of `role`."""
        return httpx.Client(base_url=self.fhir, headers=auth_headers(self, role), timeout=30)

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
        "ENGINE_JWT_SECRET": JWT_SECRET,
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
    # Drain output in the background so the pipe never blocks the server; keep it for tests.
    import threading

    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return ServerProcess(proc, ports.get("http"), ports.get("mllp"), database_url, lines)


@pytest.fixture
def app_client(runtime_factory) -> Iterator:
    """The HTTP app in-process (Starlette TestClient, no rules) on the test database."""
    from fastapi.testclient import TestClient

    from engine.api.app import create_app

    with TestClient(create_app(runtime_factory(rulesets="")), follow_redirects=False) as client:
        yield client


@pytest.fixture
def server(database_url) -> Iterator[ServerProcess]:
    srv = start_server(database_url)
    yield srv
    srv.kill()
