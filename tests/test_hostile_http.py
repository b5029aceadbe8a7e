"""Hostile HTTP: schemathesis drives every operation in the app's OpenAPI (FHIR and admin)
with generated and malformed requests; nothing may answer 5xx. Oversize bodies, deep JSON,
wrong content types and broken encodings are the client's fault: 4xx, as OperationOutcomes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from engine.api.app import create_app
from engine.api.runtime import Runtime
from harness.launch import start_server
from tests.conftest import auth_headers, make_settings

AUTH: dict[str, str] = {}  # an integration client's bearer token, set by the app fixture


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator:
    folder = tmp_path_factory.mktemp("http")
    runtime = Runtime.open(make_settings(f"sqlite:///{folder / 'engine.db'}",
                                         max_body_bytes=200_000))
    app = create_app(runtime)
    AUTH.update(auth_headers(TestClient(app)))
    yield app
    runtime.close()


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_generated_request_gets_a_server_error(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 8
    statuses: set[int] = set()

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case):
            response = case.call(headers=AUTH)
            statuses.add(response.status_code)
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
            if response.status_code >= 400 and case.path.startswith("/fhir"):
                assert response.json()["resourceType"] == "OperationOutcome"

        no_server_error()
    assert 200 in statuses and statuses & {400, 404, 422}  # authenticated, and probing


def _post(client: TestClient, body: bytes, content_type: str = "application/fhir+json",
          path: str = "/fhir/Encounter") -> httpx.Response:
    return client.post(path, content=body, headers={**AUTH, "Content-Type": content_type})


def _is_outcome_4xx(response: httpx.Response) -> bool:
    return (400 <= response.status_code < 500
            and response.json().get("resourceType") == "OperationOutcome")


@pytest.mark.parametrize("path", ["/fhir/Encounter", "/fhir", "/fhir/Encounter/x1"])
def test_malformed_bodies_are_the_clients_fault(app, path):
    method = "PUT" if path.endswith("x1") else "POST"
    deep = b"[" * 100_000 + b"]" * 100_000
    deep_object = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    bodies = [
        (deep, "application/fhir+json"),
        (deep_object, "application/json"),
        (b'{"resourceType": "Encounter", "status": "in-progress"', "application/fhir+json"),
        (b"\xff\xfe\x00garbage", "application/fhir+json"),
        (b'{"resourceType": "Encounter"}', "text/xml"),
        (b'{"resourceType": "Encounter"}', "application/fhir+json; charset=latin-1"),
        (b"<Encounter/>", "application/fhir+xml"),
        (b"--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b"),
        (b"", "application/fhir+json"),
        (b"null", "application/fhir+json"),
        (b'"just a string"', "application/fhir+json"),
        (json.dumps({"resourceType": "Encounter", "x": "y" * 300_000}).encode(),
         "application/fhir+json"),
        (json.dumps([{"resourceType": "Encounter"}] * 3).encode(), "application/fhir+json"),
        (json.dumps({"resourceType": "Bundle", "type": "transaction",
                     "entry": [{"resource": None}] * 50}).encode(), "application/fhir+json"),
        (json.dumps({"resourceType": "Encounter", "period": {"start": "2026-99-99"},
                     "status": 5, "class": [1, 2]}).encode(), "application/fhir+json"),
    ]
    with TestClient(app, raise_server_exceptions=False) as client:
        for body, content_type in bodies:
            response = client.request(method, path, content=body,
                                      headers={**AUTH, "Content-Type": content_type})
            assert _is_outcome_4xx(response), (body[:60], content_type, response.status_code,
                                               response.text[:300])


def test_hostile_queries_and_headers_are_4xx(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        for url in ["/fhir/Encounter?_count=-1", "/fhir/Encounter?_count=99999999999999999999",
                    "/fhir/Encounter?date=" + "9" * 5000, "/fhir/Encounter?status=%00%ff",
                    "/fhir/Patient?identifier=" + "|" * 2000, "/fhir/Encounter?_sort=" + "x" * 500,
                    "/fhir/Encounter/" + "9" * 400, "/fhir/Patient/%ff%fe",
                    "/fhir/Encounter?_page=abc", "/fhir/Nope"]:
            response = client.get(url, headers=AUTH)
            assert 200 <= response.status_code < 500, (url, response.status_code)
        for headers in [{"Authorization": "Bearer " + "x" * 10_000},
                        {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer"}]:
            response = client.get("/fhir/Encounter", headers=headers)
            assert response.status_code == 401, (headers, response.status_code)
        weird = client.get("/fhir/Encounter", headers={**AUTH, "Accept": "application/x\0"})
        assert weird.status_code < 500


def test_a_real_server_refuses_oversize_bodies_declared_or_streamed(tmp_path):
    server = start_server(f"sqlite:///{tmp_path / 'engine.db'}", mllp=False,
                          env={"ENGINE_MAX_BODY_BYTES": "100000"})
    try:
        with httpx.Client(base_url=server.base_url, headers=auth_headers(server),
                          timeout=30) as http:
            big = b'{"resourceType": "Encounter", "x": "' + b"y" * 2_000_000 + b'"}'
            declared = http.post("/fhir/Encounter", content=big,
                                 headers={"Content-Type": "application/fhir+json"})
            streamed = http.post("/fhir/Encounter", content=iter([big[i:i + 65536] for i in
                                                                  range(0, len(big), 65536)]),
                                 headers={"Content-Type": "application/fhir+json"})
            assert declared.status_code == streamed.status_code == 413
            assert http.get("/fhir/metadata").status_code == 200
    finally:
        server.stop()
