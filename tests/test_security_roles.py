"""Each role sees and changes only what it should: a case manager cannot reload rulesets, an
EHR client cannot open the web pages, only admins read the audit trail."""

from __future__ import annotations

import pytest
from fastapi import Depends

from engine.api.auth import require_page
from engine.core.roles import Permission
from engine.security import users
from harness.launch import TEST_PASSWORD
from tests.conftest import auth_headers, csrf, sign_in

OPERATIONS = {
    "read patients": ("GET", "/fhir/Patient"),
    "read an encounter": ("GET", "/fhir/Encounter/1"),
    "write encounters": ("POST", "/fhir/Encounter"),
    "send bundles": ("POST", "/fhir"),
    "read rulesets": ("GET", "/admin/rulesets"),
    "reload rulesets": ("POST", "/admin/rulesets/reload"),
    "read the audit trail": ("GET", "/fhir/AuditEvent"),
}
READ = {"read patients", "read an encounter"}
ALLOWED = {
    "case_manager": READ,
    "ur_nurse": READ,
    "supervisor": READ,
    "informaticist": {"read rulesets", "reload rulesets"},
    "integration": READ | {"write encounters", "send bundles"},
    "admin": {"read rulesets", "reload rulesets", "read the audit trail"},
}


@pytest.mark.parametrize("role", list(ALLOWED))
def test_each_role_may_do_what_its_job_needs_and_nothing_else(app_client, role):
    headers = auth_headers(app_client, role)
    for operation, (method, path) in OPERATIONS.items():
        answer = app_client.request(method, path, headers={**headers,
                                                            "Content-Type": "application/json"},
                                    content=b"{}")
        if operation in ALLOWED[role]:
            assert answer.status_code not in (401, 403), (role, operation, answer.text)
        else:
            assert answer.status_code == 403, (role, operation, answer.status_code)
            outcome = answer.json()
            assert outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["code"] == "forbidden"


@pytest.fixture
def pages(app_client):
    """Two pages as the web worklist will have them: anyone's own, and everyone's."""

    def own(who=Depends(require_page(Permission.TASK_WORK))):  # noqa: B008
        return {"page": "own", "who": who.name}

    def everyone(who=Depends(require_page(Permission.WORKLIST_ALL))):  # noqa: B008
        return {"page": "everyone", "who": who.name}

    app_client.app.add_api_route("/test/own", own)
    app_client.app.add_api_route("/test/everyone", everyone)
    return app_client


def sign_in_as(client, name: str):
    return client.post("/login", data={"username": name, "password": TEST_PASSWORD,
                                       "csrf_token": csrf(client), "next": "/test/own"})


@pytest.mark.parametrize(("role", "own", "everyone"), [
    ("case_manager", 200, 403),
    ("ur_nurse", 200, 403),
    ("supervisor", 200, 200),
    ("informaticist", 403, 403),
    ("admin", 403, 403),
])
def test_people_reach_the_pages_their_role_allows(pages, role, own, everyone):
    signed = sign_in(pages, role, next_path="/test/own")
    assert signed.headers["location"] == "/test/own"
    assert pages.get("/test/own").status_code == own
    refused = pages.get("/test/everyone")
    assert refused.status_code == everyone
    if everyone == 403:
        assert "does not allow this page" in refused.text
        assert refused.headers["content-type"].startswith("text/html")


def test_someone_not_signed_in_is_sent_to_sign_in_and_back(pages):
    answer = pages.get("/test/everyone?unit=4WEST")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/test/everyone%3Funit%3D4WEST"
    htmx = pages.get("/test/own", headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["hx-redirect"].startswith("/login?next=/test/own")


def test_the_ehr_client_cannot_open_the_web_pages(pages):
    answer = pages.get("/test/own", headers=auth_headers(pages))
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")


def test_a_person_with_the_integration_role_cannot_sign_in_to_the_pages(pages):
    sessions = pages.app.state.runtime.sessions
    users.add_user(sessions, "interface.analyst", "integration", TEST_PASSWORD)
    answer = sign_in_as(pages, "interface.analyst")
    assert answer.status_code == 403
    assert "cannot use the web pages" in answer.text
    assert pages.get("/test/own").status_code == 303, "no session was started"
