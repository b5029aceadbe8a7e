"""A case manager's worklist: stat work first, then overdue, then priority, then due time;
counts of overdue and due-today; filters by unit, task type, payer and status."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.hl7.build import adt
from engine.storage.models import RuleOutput
from engine.work.worklist import Filters, worklist

CHICAGO = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=CHICAGO)


@pytest.fixture
def rt(runtime_factory):
    """Three admissions; every open task given to cm.alvarez with controlled due times."""
    runtime = runtime_factory(clock=FixedClock(NOW))
    for n, (unit, plan) in enumerate([("4WEST", "MCR001"), ("5EAST", "COM300"),
                                      ("4WEST", "MCD200"), ("3NORTH", "MCA100")]):
        runtime.intake.hl7(adt("A01", "202603021015", admit_time="202603021015", plan=plan,
                               visit=f"V{3000 + n}", mrn=f"{400000 + n}",
                               location=f"{unit}^40{n}^A^GENHOSP"))
    with runtime.sessions() as s, s.begin():
        rows = s.scalars(select(RuleOutput).where(RuleOutput.kind == "task")
                         .order_by(RuleOutput.id)).all()
        plan = [  # (hours from now, priority)
            (-3, "routine"), (-1, "urgent"), (2, "routine"), (5, "stat"), (30, "urgent"),
            (None, "routine"), (1, "asap"), (48, "routine"), (-2, "routine"), (20, "stat"),
        ]
        assert len(rows) > len(plan)
        for row, (hours, priority) in zip(rows, plan, strict=False):
            row.due_at = None if hours is None else NOW + timedelta(hours=hours)
            row.priority, row.owner = priority, "cm.alvarez"
        for row in rows[len(plan):]:
            row.owner = "cm.baker"
    return runtime


def test_stat_first_then_overdue_then_priority_then_due(rt):
    with rt.readers() as s:
        wl = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez"))
    due = [(i.overdue, i.priority, i.due_at and (i.due_at - NOW).total_seconds() / 3600)
           for i in wl.items]
    assert due == [
        (False, "stat", 5), (False, "stat", 20),
        (True, "urgent", -1), (True, "routine", -3), (True, "routine", -2),
        (False, "asap", 1), (False, "urgent", 30),
        (False, "routine", 2), (False, "routine", 48), (False, "routine", None),
    ]
    # overdue: 3; still due today (before local midnight, 10 hours away): +1 +2 +5
    assert (wl.total, wl.overdue, wl.due_today) == (10, 3, 3)
    first = wl.items[2]
    assert first.visit_number.startswith("V300") and first.mrn.startswith("4000")
    assert first.family == "TESTPATIENT" and first.task_status == "ready"


def test_paging_and_filters(rt):
    with rt.readers() as s:
        page2 = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez"), page=2, page_size=4)
        assert [i.priority for i in page2.items] == ["routine", "asap", "urgent", "routine"]
        assert page2.pages == 3
        east = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez", unit="5EAST"))
        assert east.total and {i.unit for i in east.items} == {"5EAST"}
        medicaid = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez", payer_class="medicaid"))
        assert {i.payer_class for i in medicaid.items} == {"medicaid"}
        im = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez", task_type="im-notice"))
        assert im.total and {i.code for i in im.items} == {"im-notice"}
        everyone = worklist(s, NOW, CHICAGO, Filters())
        assert everyone.total > 10
        held = worklist(s, NOW, CHICAGO, Filters(owner="cm.alvarez", statuses=("on-hold",)))
        assert held.total == 0 and held.items == []
