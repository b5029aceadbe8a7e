"""Start `engine serve` as an operator would, and sign in to it as a role: the harness the
tests, the benchmarks and the soaks share (neither imports the other's code).

The secret and password here are for throwaway databases only; a real deployment reads its
own signing key (ENGINE_JWT_SECRET) and never uses these accounts. That is why this lives
beside the package, not in it: `pip install` never ships it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from engine.core.roles import ROLES
from engine.security import users
from engine.storage.db import make_engine, session_factory
from engine.storage.migrate import upgrade

if TYPE_CHECKING:
    import httpx

ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = "test-signing-key-not-secret-0123456789abcdef"
TEST_PASSWORD = "test-password-not-secret"

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


# (url, form) -> the access token POST /auth/token answers
TokenPost = Callable[[str, dict[str, str]], str]


def _post_over_http(url: str, form: dict[str, str]) -> str:
    with urllib.request.urlopen(url, urlencode(form).encode(), timeout=30) as answer:
        return str(json.load(answer)["access_token"])


def signed_in(database_url: str, base: str, role: str, *, post: TokenPost,
              fresh: bool = False) -> dict[str, str]:
    """{"Authorization": "Bearer ..."} for a test account of `role`, from `base`'s
    POST /auth/token; cached per database, server and role until near the token's expiry."""
    key = (database_url, base, role)
    cached = _tokens.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < 600:
        return {"Authorization": f"Bearer {cached[1]}"}
    token = post(f"{base}/auth/token", token_form(database_url, role))
    _tokens[key] = (time.monotonic(), token)
    return {"Authorization": f"Bearer {token}"}


def bearer(server: ServerProcess, role: str = "integration", *, fresh: bool = False
           ) -> dict[str, str]:
    """Bearer headers for a test account of `role` on a running server."""
    return signed_in(server.database_url, server.base_url, role, post=_post_over_http,
                     fresh=fresh)


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
        import httpx  # noqa: PLC0415 - a test dependency: only tests ask for a client

        return httpx.Client(base_url=self.fhir, headers=bearer(self, role), timeout=30)

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
    def drain() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return ServerProcess(proc, ports.get("http"), ports.get("mllp"), database_url, lines)
