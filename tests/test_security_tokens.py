"""Tokens as the EHR and a nurse's API tool meet them: POST /auth/token, expiry, revocation,
bad secrets and the sign-in throttle, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from engine.security import users
from engine.security.throttle import Throttle
from engine.security.tokens import issue_access
from harness.launch import JWT_SECRET, TEST_PASSWORD, account_for, token_form
from tests.conftest import auth_headers


def token(client, form: dict[str, str], **kwargs):
    return client.post("/auth/token", data=form, **kwargs)


def sessions_of(client):
    return client.app.state.runtime.sessions


def test_the_ehr_gets_a_short_lived_token_with_client_credentials(app_client):
    answer = token(app_client, token_form(app_client.app.state.runtime.settings.database_url))

    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert 900 <= body["expires_in"] <= 3600
    assert set(body["scope"].split()) == {"patient:read", "encounter:write", "task:work",
                                          "worklist:all", "ur:write"}
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"],
                        audience="engine:api")
    assert (claims["sub"], claims["kind"], claims["role"]) == ("test.integration", "client",
                                                              "integration")
    assert claims["exp"] - claims["iat"] == body["expires_in"]
    assert {"tv", "jti"} <= claims.keys()
    listed = app_client.get("/fhir/Encounter",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert listed.status_code == 200


def test_client_credentials_also_come_as_http_basic(app_client):
    _, name, secret = account_for(app_client.app.state.runtime.settings.database_url)
    basic = base64.b64encode(f"{name}:{secret}".encode()).decode()
    answer = token(app_client, {"grant_type": "client_credentials"},
                   headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200, answer.text

    wrong = base64.b64encode(f"{name}:not-the-secret".encode()).decode()
    refused = token(app_client, {"grant_type": "client_credentials"},
                    headers={"Authorization": f"Basic {wrong}"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert refused.headers["www-authenticate"].startswith("Basic")


def test_a_nurse_gets_a_token_with_her_password_and_may_narrow_its_scope(app_client):
    form = token_form(app_client.app.state.runtime.settings.database_url, "supervisor")
    narrow = token(app_client, {**form, "scope": "patient:read"})
    assert narrow.status_code == 200
    assert narrow.json()["scope"] == "patient:read"
    headers = {"Authorization": f"Bearer {narrow.json()['access_token']}"}
    assert app_client.get("/fhir/Patient", headers=headers).status_code == 200

    beyond = token(app_client, {**form, "scope": "patient:read rules:reload"})
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"grant_type": "password", "username": "test.case-manager", "password": "wrong-password!"},
     400, "invalid_grant"),
    ({"grant_type": "password", "username": "nobody.here", "password": "wrong-password!"},
     400, "invalid_grant"),
    ({"grant_type": "password", "username": "test.case-manager"}, 400, "invalid_request"),
    ({"grant_type": "client_credentials", "client_id": "test.integration",
      "client_secret": "guess"}, 401, "invalid_client"),
    ({"grant_type": "client_credentials", "client_id": "no.such.client",
      "client_secret": "guess"}, 401, "invalid_client"),
    ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
    ({}, 400, "invalid_request"),
], ids=["wrong-password", "unknown-user", "no-password", "wrong-secret", "unknown-client",
        "other-grant", "no-grant"])
def test_bad_credentials_are_oauth2_errors(app_client, form, status, error):
    url = app_client.app.state.runtime.settings.database_url
    account_for(url, "case_manager")
    account_for(url)
    answer = token(app_client, form)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["error_description"]
    assert "access_token" not in answer.json()


def test_a_json_body_is_not_a_token_request(app_client):
    answer = app_client.post("/auth/token", json={"grant_type": "client_credentials"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_an_expired_or_forged_token_is_refused(app_client):
    url = app_client.app.state.runtime.settings.database_url
    account_for(url)
    key = app_client.app.state.security.key
    expired, _ = issue_access(key, sub="test.integration", kind="client", role="integration",
                              scope=("patient:read",), tv=1, ttl_s=900,
                              now=time.time() - 1000)
    answer = app_client.get("/fhir/Patient", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401
    assert "expired" in answer.json()["issue"][0]["diagnostics"]
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]

    forged, _ = issue_access(b"another key entirely, not the server's one", sub="test.integration",
                             kind="client", role="integration", scope=("patient:read",), tv=1,
                             ttl_s=900)
    assert app_client.get("/fhir/Patient",
                          headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    unsigned = jwt.encode({"sub": "test.integration"}, None, algorithm="none")
    assert app_client.get("/fhir/Patient",
                          headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401


def test_disabling_a_client_revokes_its_tokens_at_once(app_client):
    headers = auth_headers(app_client, fresh=True)
    assert app_client.get("/fhir/Patient", headers=headers).status_code == 200

    users.set_active(sessions_of(app_client), "client", "test.integration", False)
    refused = app_client.get("/fhir/Patient", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["issue"][0]["diagnostics"]
    again = token(app_client, token_form(app_client.app.state.runtime.settings.database_url))
    assert again.status_code == 401

    users.set_active(sessions_of(app_client), "client", "test.integration", True)
    assert app_client.get("/fhir/Patient", headers=headers).status_code == 401, \
        "re-enabling does not revive tokens issued before"
    assert app_client.get("/fhir/Patient",
                          headers=auth_headers(app_client, fresh=True)).status_code == 200


def test_a_new_password_revokes_the_old_tokens(app_client):
    headers = auth_headers(app_client, "ur_nurse", fresh=True)
    assert app_client.get("/fhir/Encounter", headers=headers).status_code == 200
    users.set_password(sessions_of(app_client), "test.ur-nurse", TEST_PASSWORD)
    assert app_client.get("/fhir/Encounter", headers=headers).status_code == 401


def test_five_failed_sign_ins_lock_the_name_for_a_while(app_client):
    url = app_client.app.state.runtime.settings.database_url
    good = token_form(url, "case_manager")
    bad = {**good, "password": "not-her-password"}
    for _ in range(5):
        assert token(app_client, bad).status_code == 400
    locked = token(app_client, good)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    assert locked.json()["error"] == "temporarily_unavailable"
    # The workstation's address has used up its tries too, whoever signs in from it.
    assert token(app_client, token_form(url, "supervisor")).status_code == 429


def test_failures_from_one_address_across_names_are_throttled(app_client):
    for n in range(5):
        answer = token(app_client, {"grant_type": "password", "username": f"guess{n}",
                                    "password": "password-guess"})
        assert answer.status_code == 400
    answer = token(app_client, {"grant_type": "password", "username": "guess9",
                                "password": "password-guess"})
    assert answer.status_code == 429


def test_the_throttle_forgets_after_its_window_and_a_success_clears_the_name():
    now = [1000.0]
    throttle = Throttle(failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        throttle.failed("user:ann", "address:10.0.0.1")
    assert throttle.wait_s("user:ann") == 60
    now[0] += 20
    assert throttle.wait_s("user:bob", "address:10.0.0.1") == 40
    throttle.succeeded("user:ann")
    assert throttle.wait_s("user:ann") == 0
    assert throttle.wait_s("address:10.0.0.1") == 40, "a success never clears the address"
    now[0] += 40
    assert throttle.wait_s("address:10.0.0.1") == 0
