"""Back-testing a candidate ruleset on stored history, without touching the live database."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import func, select

from engine.hl7.build import adt
from engine.planning.rulebook import Rulebook
from engine.storage.models import InboundMessage, RuleOutput
from engine.tools.backtest import backtest
from tests.conftest import ROOT


def test_candidate_that_moves_the_moon_deadline_and_drops_initial_review(runtime, tmp_path: Path):
    for p in range(4):
        visit, mrn = f"VB{p}", f"70000{p}"
        runtime.intake.hl7(adt("A04", f"2026030{1 + p}0800", mrn=mrn, visit=visit,
                               patient_class="O", patient_type="OBS",
                               admit_time=f"2026030{1 + p}0800", plan="MCR001"))
        runtime.intake.hl7(adt("A06", f"2026030{2 + p}2000", mrn=mrn, visit=visit,
                               patient_class="I", plan="MCR001"))
    candidate = tmp_path / "candidate"
    shutil.copytree(ROOT / "rulesets", candidate)
    text = (candidate / "utilization_review.yaml").read_text()
    text = text.replace("due: {after: observation_start, hours: 36,",
                        "due: {after: observation_start, hours: 30,")
    text = text.replace("  - id: ur-initial-review\n", "  - id: ur-initial-review\n"
                        "    enabled: false\n", 1)
    (candidate / "utilization_review.yaml").write_text(text)
    with runtime.readers() as s:
        live_outputs = s.scalar(select(func.count()).select_from(RuleOutput))
        live_inputs = s.scalar(select(func.count()).select_from(InboundMessage))

    report = backtest(runtime.sessions, runtime.site, runtime.rules.current,
                      Rulebook.load(candidate, runtime.site,
                                    staffing_file=runtime.settings.staffing_file))

    assert report.messages == 8
    assert report.active_version != report.candidate_version
    assert report.per_rule["notice-moon"].retimed == 4
    assert report.per_rule["ur-initial-review"].removed == 4
    assert report.per_rule["notice-im-first"].added == report.per_rule[
        "notice-im-first"].removed == 0
    with runtime.readers() as s:  # nothing was written to the live store
        assert s.scalar(select(func.count()).select_from(RuleOutput)) == live_outputs
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == live_inputs


def test_backtest_command_prints_per_rule_changes(database_url, tmp_path: Path):
    from tests.test_cli import engine_cli

    story = tmp_path / "obs.hl7"
    story.write_bytes(adt("A04", "202603010800", patient_class="O", patient_type="OBS",
                          admit_time="202603010800", plan="MCR001", visit="VC1")
                      + b"\n" + adt("A06", "202603022000", patient_class="I", plan="MCR001",
                                    visit="VC1"))
    assert engine_cli("ingest", "--clock=events", str(story),
                      database_url=database_url).returncode == 0
    candidate = tmp_path / "candidate"
    shutil.copytree(ROOT / "rulesets", candidate)
    text = (candidate / "utilization_review.yaml").read_text()
    (candidate / "utilization_review.yaml").write_text(text.replace(
        "  - id: notice-im-first\n", "  - id: notice-im-first\n    enabled: false\n", 1))

    result = engine_cli("rules", "backtest", "--candidate", str(candidate),
                        database_url=database_url)

    assert result.returncode == 0, result.stderr
    assert "replayed 2 message(s)" in result.stdout
    assert "notice-im-first" in result.stdout
    assert result.stdout.strip().endswith("outputs added 0, removed 1, retimed 0")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.yaml").write_text("name: x\nrules: [\n")
    bad = engine_cli("rules", "backtest", "--candidate", str(broken), database_url=database_url)
    assert bad.returncode == 1 and "x.yaml:" in bad.stdout + bad.stderr
