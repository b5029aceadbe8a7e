"""The web sign-in as a nurse at a shared workstation meets it: an accessible form, a
session cookie scripts cannot read, forms that only this site can submit, sessions that end
when idle or when the account is disabled, and no redirects to other sites."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.api.web.signin import local_path
from engine.security import users
from engine.security.tokens import SessionClaims, issue_session
from harness.launch import TEST_PASSWORD, account_for
from tests.conftest import auth_headers, csrf

PAGE = "/fhir/Patient"  # a resource the signed-in nurse may read with her session


def sign_in_as(client, name: str, *, password: str = TEST_PASSWORD, next_path: str = PAGE):
    return client.post("/login", data={"username": name, "password": password,
                                       "csrf_token": csrf(client), "next": next_path})


@pytest.fixture
def nurse(app_client) -> TestClient:
    """A case manager signed in through the form."""
    _, name, _ = account_for(app_client.app.state.runtime.settings.database_url,
                             "case_manager")
    assert sign_in_as(app_client, name).status_code == 303
    return app_client


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: dict[str, str] = {}
        self.inputs: list[dict[str, str | None]] = []
        self.html_lang: str | None = None
        self._label: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.html_lang = attrs.get("lang")
        if tag == "label":
            self._label = attrs.get("for")
        if tag in ("input", "button"):
            self.inputs.append({"tag": tag, **attrs})

    def handle_data(self, data):
        if self._label and data.strip():
            self.labels[self._label] = data.strip()

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None


def test_the_sign_in_page_is_a_plain_accessible_form(app_client):
    page = app_client.get("/login")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    form = _Form()
    form.feed(page.text)
    assert form.html_lang == "en"
    visible = {i["id"]: i for i in form.inputs if i["tag"] == "input" and i["type"] != "hidden"}
    assert set(visible) == {"username", "password"}
    assert form.labels == {"username": "User name", "password": "Password"}
    assert visible["username"]["autocomplete"] == "username"
    assert visible["password"]["autocomplete"] == "current-password"
    assert visible["password"]["type"] == "password"
    assert any(i["tag"] == "button" and i.get("type") == "submit" for i in form.inputs)
    assert any(i.get("name") == "csrf_token" and i["type"] == "hidden" for i in form.inputs)
    assert 'href="#main"' in page.text, "a skip link for keyboard users"


def test_a_wrong_password_says_so_without_saying_which_part(app_client):
    account_for(app_client.app.state.runtime.settings.database_url, "case_manager")
    wrong = sign_in_as(app_client, "test.case-manager", password="not-my-password")
    unknown = sign_in_as(app_client, "nobody.at.all", password="not-my-password")
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert 'role="alert"' in answer.text
        assert "Unknown user name or wrong password." in answer.text
    assert 'value="test.case-manager"' in wrong.text, "the name stays filled in"
    assert app_client.get(PAGE).status_code == 401


def test_the_session_cookie_is_httponly_lax_and_secure_on_https(app_client):
    _, name, _ = account_for(app_client.app.state.runtime.settings.database_url,
                             "case_manager")
    answer = sign_in_as(app_client, name)
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("engine_session=")
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert "secure" not in flags, "the plain-http demo must still work"
    assert not any(f.startswith(("max-age", "expires")) for f in flags), \
        "closing the browser ends the session"

    with TestClient(app_client.app, base_url="https://testserver",
                    follow_redirects=False) as tls:
        cookie = sign_in_as(tls, name).headers["set-cookie"]
    assert "secure" in {f.strip().lower() for f in cookie.split(";")[1:]}


def test_secure_cookies_can_be_forced_behind_a_tls_proxy(runtime_factory):
    app = create_app(runtime_factory(rulesets="", cookie_secure=True))
    with TestClient(app, follow_redirects=False) as client:
        assert "Secure" in client.get("/login").headers["set-cookie"]


def test_signing_in_leads_on_to_the_page_asked_for_and_only_on_this_site():
    assert local_path("/worklist?unit=4WEST") == "/worklist?unit=4WEST"
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                      "javascript:alert(1)", "", None, "/login", "\n/x", "worklist"):
        assert local_path(elsewhere) == "/worklist", elsewhere


def test_a_signed_in_nurse_reads_with_her_session_and_signs_out(nurse):
    assert nurse.get(PAGE).status_code == 200
    out = nurse.post("/logout", data={"csrf_token": csrf(nurse)})
    assert out.status_code == 303
    assert out.headers["location"] == "/login"
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert nurse.get(PAGE).status_code == 401


def test_a_form_post_without_the_csrf_token_is_refused(nurse):
    refused = nurse.post("/logout", data={})
    assert refused.status_code == 403
    assert "reload the page" in refused.text
    forged = nurse.post("/logout", data={"csrf_token": "guessed"})
    assert forged.status_code == 403
    assert nurse.get(PAGE).status_code == 200, "still signed in"

    token = csrf(nurse)
    by_header = nurse.post("/logout", headers={"X-CSRF-Token": token})
    assert by_header.status_code == 303, "htmx and scripts send it as a header"


def test_csrf_is_checked_on_api_writes_made_with_the_cookie_too(nurse):
    refused = nurse.post("/fhir/Encounter", content=b"{}",
                         headers={"Content-Type": "application/fhir+json"})
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"


def test_bearer_token_calls_are_exempt_from_csrf(nurse):
    answer = nurse.post("/fhir/Encounter", content=b"{}",
                        headers={"Content-Type": "application/fhir+json",
                                 **auth_headers(nurse)})
    assert answer.status_code == 400, "past authentication, on to validation"


def test_a_sign_in_form_without_its_token_is_answered_with_a_fresh_form(app_client):
    answer = app_client.post("/login", data={"username": "test.case-manager",
                                             "password": TEST_PASSWORD})
    assert answer.status_code == 400
    assert "had expired" in answer.text
    assert 'name="csrf_token"' in answer.text


def _cookie_as(client, claims: SessionClaims) -> None:
    client.cookies.set("engine_session", issue_session(client.app.state.security.key, claims))


def test_an_idle_session_ends(nurse):
    settings = nurse.app.state.runtime.settings
    now = int(time.time())
    idle = now - settings.session_idle_s - 5
    _cookie_as(nurse, SessionClaims("test.case-manager", 1, "x" * 43, idle, idle,
                                    now + 3600))
    assert nurse.get(PAGE).status_code == 401


def test_a_used_session_slides_its_idle_expiry(nurse):
    now = int(time.time())
    _cookie_as(nurse, SessionClaims("test.case-manager", 1, "x" * 43, now - 600, now - 120,
                                    now + 3600))
    answer = nurse.get(PAGE)
    assert answer.status_code == 200
    assert answer.headers["set-cookie"].startswith("engine_session=")


def test_disabling_a_person_ends_her_sessions(nurse):
    assert nurse.get(PAGE).status_code == 200
    users.set_active(nurse.app.state.runtime.sessions, "user", "test.case-manager", False)
    assert nurse.get(PAGE).status_code == 401


def test_the_sign_in_page_is_throttled_like_the_token_endpoint(app_client):
    account_for(app_client.app.state.runtime.settings.database_url, "case_manager")
    for _ in range(5):
        assert sign_in_as(app_client, "test.case-manager", password="wrong-password").status_code \
            == 401
    locked = sign_in_as(app_client, "test.case-manager")
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert "Too many failed sign-ins" in locked.text
