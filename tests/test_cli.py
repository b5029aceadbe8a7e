"""The `engine` command as an operator uses it: one clear line on failure, a summary on success."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.script import ScriptDirectory
from sqlalchemy import func, select

from engine.hl7.build import adt
from engine.storage.migrate import alembic_config
from engine.storage.models import Encounter, InboundMessage
from tests.conftest import HL7, ROOT, make_settings


def engine_cli(*args: str, database_url: str, env: dict[str, str] | None = None,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "ENGINE_DATABASE_URL": database_url, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          env=environ, cwd=ROOT, input=stdin, timeout=120)


def test_ingest_loads_story_files_through_the_one_path_and_summarises(database_url):
    result = engine_cli("ingest", str(HL7 / "stories"), database_url=database_url)

    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith("40 messages from 11 file(s): accepted 40")
    # Loading the same files again changes nothing: every message is a duplicate.
    again = engine_cli("ingest", str(HL7 / "stories"), database_url=database_url)
    assert "duplicate 40" in again.stdout


def test_quarantine_lists_refusals_and_replay_applies_them_after_a_fix(database_url, tmp_path):
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(adt("A01", "202603021015", visit="VQ1", processing_id="T")
                    + b"\n" + adt("A01", "202603021015", visit="VQ2"))
    ingest = engine_cli("ingest", str(bad), database_url=database_url)
    assert "accepted 1" in ingest.stdout and "errors 1" in ingest.stdout

    listing = engine_cli("hl7", "quarantine", database_url=database_url)
    assert "MSH-11 is not accepted here" in listing.stdout
    assert "1 quarantined input(s)" in listing.stdout

    profile = tmp_path / "site.yaml"
    profile.write_text((ROOT / "fixtures" / "site_profile.yaml").read_text().replace(
        "accepted_processing_ids: [P]", "accepted_processing_ids: [P, T]", 1))
    replay = engine_cli("hl7", "replay", "--all", database_url=database_url,
                        env={"ENGINE_SITE_PROFILE": str(profile)})
    assert replay.returncode == 0, replay.stderr
    assert "replayed 1: accepted 1" in replay.stdout

    from engine.api.runtime import Runtime

    rt = Runtime.open(make_settings(database_url))
    try:
        with rt.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Encounter)) == 2
            assert s.scalar(select(func.count()).where(
                InboundMessage.outcome.in_(("error", "rejected")))) == 0
    finally:
        rt.close()


def test_failures_are_one_clear_line_and_a_non_zero_exit(database_url, tmp_path):
    missing = engine_cli("ingest", str(tmp_path / "nope.hl7"), database_url=database_url)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"error: no such file or folder: {tmp_path / 'nope.hl7'}"

    empty = tmp_path / "empty.hl7"
    empty.write_bytes(b"")
    assert engine_cli("ingest", str(empty), database_url=database_url).stderr.startswith(
        "error: no HL7 messages found")

    profile = engine_cli("ingest", str(HL7 / "stories"), database_url=database_url,
                         env={"ENGINE_SITE_PROFILE": str(tmp_path / "missing.yaml")})
    assert profile.returncode == 1
    assert profile.stderr.strip().startswith("error: site profile not found")
    assert "Traceback" not in profile.stderr

    replay = engine_cli("hl7", "replay", "424242", database_url=database_url)
    assert replay.returncode == 1
    assert replay.stderr.strip() == "error: no inbound message with id 424242"


def test_unreachable_database_is_one_line(tmp_path):
    result = engine_cli("db", "upgrade",
                        database_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert result.returncode == 1
    assert result.stderr.startswith("error: database unavailable")
    assert len(result.stderr.strip().splitlines()) == 1


def test_db_upgrade_reports_the_revision(database_url):
    result = engine_cli("db", "upgrade", database_url=database_url)
    assert result.returncode == 0
    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()
    assert f"database at revision {head}" in result.stdout


def test_ingest_in_event_time_then_tick_at_an_instant(database_url, tmp_path):
    story = tmp_path / "obs.hl7"
    story.write_bytes(
        adt("A04", "202603012000", patient_class="O", patient_type="OBS",
            admit_time="202603012000", plan="MCR001", visit="VT1")
        + b"\n" + adt("A08", "202603021000", patient_class="O", patient_type="OBS",
                      plan="MCR001", visit="VT1"))
    ingest = engine_cli("ingest", "--clock=events", str(story), database_url=database_url)
    assert ingest.returncode == 0, ingest.stderr
    assert "accepted 2" in ingest.stdout

    tick = engine_cli("tick", "--at", "2026-03-03T00:30", database_url=database_url)
    assert tick.returncode == 0, tick.stderr
    assert "evaluated 1 encounter(s) at 2026-03-03T00:30:00-06:00" in tick.stdout

    from engine.api.runtime import Runtime
    from engine.storage.models import RuleOutput

    rt = Runtime.open(make_settings(database_url))
    try:
        with rt.readers() as s:
            codes = set(s.scalars(select(RuleOutput.code).where(RuleOutput.status == "active")))
    finally:
        rt.close()
    assert {"moon-notice", "status-review"} <= codes

    bad = engine_cli("tick", "--at", "next tuesday", database_url=database_url)
    assert bad.returncode == 1 and bad.stderr.startswith("error: 'next tuesday' is not an ISO")
    wrong = engine_cli("ingest", "--clock=sundial", str(story), database_url=database_url)
    assert wrong.returncode == 1 and "--clock must be" in wrong.stderr


def test_ignored_lists_harmless_messages_by_trigger_and_quarantine_lists_refused_triggers(
        database_url, tmp_path):
    feed = tmp_path / "feed.hl7"
    feed.write_bytes(b"\n".join([adt("A60", "202603021015"), adt("A60", "202603021016"),
                                 adt("A09", "202603021017"), adt("A17", "202603021018")]))
    engine_cli("ingest", str(feed), database_url=database_url)

    listing = engine_cli("hl7", "ignored", database_url=database_url)
    quarantine = engine_cli("hl7", "quarantine", database_url=database_url)

    assert listing.returncode == 0, listing.stderr
    a60 = next(line for line in listing.stdout.splitlines() if "A60" in line)
    assert "2" in a60 and "allerg" in a60
    assert "3 ignored input(s) in 2 trigger(s)" in listing.stdout
    assert "A17" in quarantine.stdout and "1 quarantined input(s)" in quarantine.stdout
    assert "3 input(s) acknowledged as harmless" in quarantine.stdout
