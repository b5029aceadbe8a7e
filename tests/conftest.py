"""Shared test fixtures: both databases, a runtime, and a real server process.

Every storage-touching test takes `database_url`, which runs it on SQLite and, when
ENGINE_TEST_POSTGRES_URL is set, on PostgreSQL in a schema of its own. CI sets
ENGINE_TEST_REQUIRE_POSTGRES=1 so a missing PostgreSQL fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fhirpy import SyncFHIRClient
from sqlalchemy import create_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from engine.api.runtime import Runtime
from engine.core.clock import Clock, WallClock
from engine.core.config import Settings
from engine.security import passwords
from engine.storage.db import normalise_url
from harness.launch import (
    JWT_SECRET,
    ServerProcess,
    account_for,
    bearer,
    signed_in,
    start_server,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
HL7 = FIXTURES / "hl7"
PG_URL = os.environ.get("ENGINE_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("ENGINE_TEST_REQUIRE_POSTGRES") == "1"
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


def auth_headers(target: ServerProcess | httpx.Client, role: str = "integration",
                 *, fresh: bool = False) -> dict[str, str]:
    """{"Authorization": "Bearer ..."} for a test account of `role`, from POST /auth/token.

    `target` is a running ServerProcess or an in-process client of the app (a Starlette
    TestClient); tokens are cached per database and role until near their expiry.
    """
    if isinstance(target, ServerProcess):
        return bearer(target, role, fresh=fresh)

    def post(url: str, form: dict[str, str]) -> str:
        response = target.post(url, data=form)
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    return signed_in(target.app.state.runtime.settings.database_url, "", role, post=post,
                     fresh=fresh)


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


# A test module that starts its own server as a module fixture named `api` gets these two
# clients for it (a module may define its own instead).
@pytest.fixture(scope="module")
def http(api: ServerProcess) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client


@pytest.fixture(scope="module")
def fhir(api: ServerProcess) -> SyncFHIRClient:
    """fhirpy, signed in as the EHR integration client."""
    return SyncFHIRClient(api.fhir, authorization=auth_headers(api)["Authorization"])


# One database, runtime and HTTP server per test module, for modules that share them among
# their tests (a module may define its own `api`, e.g. with other settings).
@pytest.fixture(scope="module", params=BOTH_STORES)
def db_url(request, tmp_path_factory) -> Iterator[str]:
    yield from fresh_database(request.param, tmp_path_factory.mktemp(request.module.__name__))


@pytest.fixture(scope="module")
def store(db_url: str) -> Iterator[Runtime]:
    rt = Runtime.open(make_settings(db_url))
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def api(db_url: str, store: Runtime) -> Iterator[ServerProcess]:
    srv = start_server(db_url, mllp=False)
    yield srv
    srv.kill()
