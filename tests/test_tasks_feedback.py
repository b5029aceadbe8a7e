"""Recording work feeds the rules: once the case manager completes the IM task, the rules
see the notice as delivered, in the same transaction as the completion."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.roles import Principal
from engine.hl7.build import adt
from engine.planning import evaluation
from engine.storage.models import Encounter, RuleOutput
from engine.work import lifecycle
from tests.conftest import ROOT

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 3, 9, 0, tzinfo=CHICAGO)
ALVAREZ = Principal(name="cm.alvarez", kind="user", role="case_manager")

# A rule reading the fact family the lifecycle feeds: after the first IM is delivered and
# the discharge is near, the follow-up copy is owed (and not before the first is given).
FOLLOW_UP_AFTER_FIRST = """\
name: notice_feedback
version: "test-1"
owner: tests
description: Follow-up IM once the first one is recorded as delivered.
rules:
  - id: notice-im-follow-up-after-first
    title: Follow-up IM after the first was delivered
    description: The follow-up copy is a copy of the signed first IM.
    citation: 42 CFR 405.1205(c)
    when:
      all:
        - {fact: completed_task_types, contains: im-notice}
        - {fact: care_status, equals: inpatient}
    then:
      - task:
          type: im-follow-up-copy
          title: Give the patient a copy of the signed IM
          priority: urgent
          due: {after: fired, hours: 4}
          queue: case_manager
"""


def _rulesets(folder: Path) -> Path:
    target = folder / "rulesets"
    shutil.copytree(ROOT / "rulesets", target)
    (target / "notice_feedback.yaml").write_text(FOLLOW_UP_AFTER_FIRST)
    return target


def _codes(session, status: str = "active") -> set[str]:
    return set(session.scalars(select(RuleOutput.code).where(RuleOutput.kind == "task",
                                                             RuleOutput.status == status)))


def test_completing_the_im_task_tells_the_rules_the_notice_was_delivered(runtime_factory,
                                                                          tmp_path):
    rt = runtime_factory(clock=FixedClock(NOW), rulesets=_rulesets(tmp_path))
    rt.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan="MCR001"))
    with rt.readers() as s:
        assert "im-notice" in _codes(s) and "im-follow-up-copy" not in _codes(s)
        im = s.scalars(select(RuleOutput).where(RuleOutput.code == "im-notice")).one()

    with rt.sessions() as s, s.begin():
        task = lifecycle.load(s, im.id)
        lifecycle.transition(s, task, "complete", ALVAREZ, now=NOW, outcome="IM signed")
        evaluation.after_work(s, rt.rules.current, task, NOW)
        # the re-evaluation ran inside this transaction, before the commit
        s.flush()
        assert "im-follow-up-copy" in _codes(s)
        enc = s.scalars(select(Encounter)).one()
        facts = rt.rules.current.evaluate_encounter(s, enc, NOW, write=False).derived.values
        assert "im-notice" in facts["completed_task_types"]
        assert "im-notice" not in facts["open_task_types"]

    with rt.readers() as s:
        assert "im-notice" in _codes(s, "completed")
        follow_up = s.scalars(select(RuleOutput).where(
            RuleOutput.code == "im-follow-up-copy")).one()
        assert (follow_up.task_status, follow_up.owner) == ("ready", "cm.alvarez")
