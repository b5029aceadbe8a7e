"""Hot reload against a running server: a bad file never half-loads or stops anything."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx

from engine.hl7.build import adt
from harness.launch import start_server
from tests.conftest import ROOT, auth_headers
from tests.stream import send


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def test_hot_reload_keeps_the_old_version_on_a_bad_file_and_takes_a_good_one(database_url,
                                                                             tmp_path: Path):
    folder = tmp_path / "rulesets"
    shutil.copytree(ROOT / "rulesets", folder)
    server = start_server(database_url, env={"ENGINE_RULESETS": str(folder),
                                             "ENGINE_RULESETS_POLL_S": "0.2"})
    admin = httpx.Client(base_url=f"{server.base_url}/admin",
                         headers=auth_headers(server, "informaticist"), timeout=30)
    try:
        first = admin.get("/rulesets").json()
        assert first["rules"] >= 5

        (folder / "broken.yaml").write_text("name: broken\nrules: [\n")
        rejected = wait_for(lambda: next((r for r in admin.get("/rulesets").json()["reloads"]
                                          if r["outcome"] == "rejected"), None))
        assert "broken.yaml:" in rejected["problems"][0]
        assert admin.get("/rulesets").json()["version"] == first["version"]

        # The running version still serves the feed.
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=10) as sock:
            assert b"MSA|AA|" in send(sock, adt("A01", "202603021015", plan="MCR001"))

        answer = admin.post("/rulesets/reload")
        assert answer.status_code == 422
        assert answer.json()["resourceType"] == "OperationOutcome"
        assert "broken.yaml" in answer.json()["issue"][0]["diagnostics"]

        (folder / "broken.yaml").unlink()
        text = (folder / "utilization_review.yaml").read_text()
        (folder / "utilization_review.yaml").write_text(
            text.replace("title: Initial utilization review\n", "title: First UR review\n", 1))
        reloaded = wait_for(lambda: (lambda s: s if s["version"] != first["version"] else None)(
            admin.get("/rulesets").json()))
        latest = reloaded["reloads"][0]
        assert latest["outcome"] == "reloaded" and latest["previous"] == first["version"]
        assert "utilization_review.yaml" in latest["changed"]

        assert httpx.post(f"{server.base_url}/admin/rulesets/reload").status_code == 401
    finally:
        admin.close()
        server.kill()
