"""`engine users` and `engine clients` as an administrator runs them: passwords from
standard input, secrets printed once, one clear line and a non-zero exit on refusal."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.core.roles import ROLES
from engine.security import passwords, users
from engine.tools.cli import _demo_accounts, demo_users
from tests.test_cli import engine_cli


def test_an_admin_adds_a_case_manager_whose_password_comes_from_stdin(database_url,
                                                                     runtime_factory):
    added = engine_cli("users", "add", "jsmith", "--role", "case_manager", "--display-name",
                       "Jo Smith", database_url=database_url, stdin="correct horse battery\n")
    assert added.returncode == 0, added.stderr
    assert "added user jsmith (case_manager)" in added.stdout
    assert "correct horse" not in added.stdout + added.stderr

    listed = engine_cli("users", "list", database_url=database_url)
    assert re.search(r"jsmith\s+.\s*case_manager\s+.\s*yes\s+.\s*Jo Smith", listed.stdout), \
        listed.stdout

    with TestClient(create_app(runtime_factory(rulesets=""))) as app:
        form = {"grant_type": "password", "username": "jsmith",
                "password": "correct horse battery"}
        assert app.post("/auth/token", data=form).status_code == 200

        assert engine_cli("users", "passwd", "jsmith", database_url=database_url,
                          stdin="a new long passphrase\n").returncode == 0
        assert app.post("/auth/token", data=form).status_code == 400
        assert app.post("/auth/token", data={**form, "password": "a new long passphrase"}
                        ).status_code == 200

        disabled = engine_cli("users", "disable", "jsmith", database_url=database_url)
        assert disabled.returncode == 0
        assert "disabled" in disabled.stdout
        assert app.post("/auth/token", data={**form, "password": "a new long passphrase"}
                        ).status_code == 400


def test_refusals_are_one_line_and_a_non_zero_exit(database_url):
    cases = [
        (("users", "add", "ann", "--role", "case_manager"), "short\n", "shorter than 12"),
        (("users", "add", "ann", "--role", "surgeon"), "long enough password\n",
         "unknown role 'surgeon'"),
        (("users", "add", "Ann Smith!", "--role", "case_manager"), "long enough password\n",
         "invalid name"),
        (("users", "disable", "nobody"), None, "no user named nobody"),
        (("clients", "add", "ehr", "--scope", "rules:reload"), None,
         "scope rules:reload is not granted to role integration"),
    ]
    for args, stdin, said in cases:
        result = engine_cli(*args, database_url=database_url, stdin=stdin)
        assert result.returncode == 1, (args, result.stdout)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and said in line, (args, line)

    assert engine_cli("users", "add", "ann", "--role", "case_manager",
                      database_url=database_url, stdin="long enough password\n").returncode == 0
    again = engine_cli("users", "add", "ann", "--role", "ur_nurse", database_url=database_url,
                       stdin="long enough password\n")
    assert again.returncode == 1
    assert again.stderr.strip() == "error: ann already exists"


def test_the_ehr_client_gets_a_secret_once_and_uses_it(database_url, runtime_factory):
    added = engine_cli("clients", "add", "epic-prod", "--scope",
                       "patient:read encounter:write", database_url=database_url)
    assert added.returncode == 0, added.stderr
    secret = re.search(r"client_secret: (\S+)", added.stdout)[1]
    assert len(secret) >= 32
    listed = engine_cli("clients", "list", database_url=database_url)
    assert "epic-prod" in listed.stdout and secret not in listed.stdout
    assert "patient:read encounter:write" in listed.stdout

    with TestClient(create_app(runtime_factory(rulesets=""))) as app:
        form = {"grant_type": "client_credentials", "client_id": "epic-prod",
                "client_secret": secret}
        granted = app.post("/auth/token", data=form)
        assert granted.status_code == 200
        assert granted.json()["scope"] == "patient:read encounter:write"

        rotated = engine_cli("clients", "rotate", "epic-prod", database_url=database_url)
        fresh = re.search(r"client_secret: (\S+)", rotated.stdout)[1]
        assert app.post("/auth/token", data=form).status_code == 401
        assert app.post("/auth/token", data={**form, "client_secret": fresh}).status_code == 200

        assert engine_cli("clients", "disable", "epic-prod",
                          database_url=database_url).returncode == 0
        assert app.post("/auth/token", data={**form, "client_secret": fresh}).status_code == 401


def test_an_empty_or_blank_password_is_refused_before_hashing():
    for blank, said in (("", "empty"), ("            ", "empty"), ("short", "shorter than 12")):
        with pytest.raises(passwords.WeakPassword, match=said):
            passwords.check_strength(blank)


def test_the_demo_signs_in_one_person_per_role_and_the_ehr_afresh_on_each_start(
        runtime_factory):
    runtime = runtime_factory(rulesets="")
    password, secret = _demo_accounts(runtime)
    people = {a.name: a.role for a in users.accounts(runtime.sessions, "user")}
    assert sorted(people.values()) == sorted(set(ROLES) - {"integration"})
    assert users.check_secret(runtime.sessions, "client", "ehr.demo", secret) is not None

    again, fresh = _demo_accounts(runtime)
    assert again != password and fresh != secret
    case_manager = next(n for n, r, _ in demo_users(runtime.settings) if r == "case_manager")
    assert case_manager == "cm.alvarez"  # a staffing person with work, not an empty worklist
    assert users.check_secret(runtime.sessions, "user", case_manager, password) is None
    assert users.check_secret(runtime.sessions, "user", case_manager, again) is not None
    assert users.check_secret(runtime.sessions, "client", "ehr.demo", secret) is None


def test_a_short_signing_key_stops_the_server_with_one_line(database_url):
    result = engine_cli("serve", "--port", "0", "--no-mllp", database_url=database_url,
                        env={"ENGINE_JWT_SECRET": "too-short", "ENGINE_RULESETS": ""})
    assert result.returncode == 1
    assert result.stderr.strip() == "error: ENGINE_JWT_SECRET must be at least 32 characters"
