"""Caseload per person for supervisors: open tasks, overdue, due today, stays assigned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.api.web.display import end_of_day
from engine.core.vocabulary import OutputKind
from engine.storage.models import RuleOutput
from engine.work.assignment import caseloads
from engine.work.lifecycle import OPEN
from engine.work.staffing import Staffing


@dataclass(frozen=True)
class Load:
    name: str
    display: str
    role: str
    supervisor: str | None
    open: int
    overdue: int
    due_today: int
    stays: int


def per_person(session: Session, staffing: Staffing, now: datetime, zone: ZoneInfo) -> list[Load]:
    """One line per person in the staffing file (and any other owner of open work)."""
    overdue = RuleOutput.due_at < now
    today = (RuleOutput.due_at >= now) & (RuleOutput.due_at < end_of_day(now, zone))
    counts = {owner: (total, late, soon) for owner, total, late, soon in session.execute(
        select(RuleOutput.owner, func.count(), func.count(case((overdue, 1))),
               func.count(case((today, 1))))
        .where(RuleOutput.kind == OutputKind.TASK, RuleOutput.task_status.in_(OPEN),
               RuleOutput.owner.is_not(None))
        .group_by(RuleOutput.owner))}
    stays: dict[str, int] = {}
    for role in ("case_manager", "ur_nurse"):
        for name, n in caseloads(session, role).items():
            stays[name] = stays.get(name, 0) + n
    loads = []
    known = set()
    for p in staffing.people:
        known.add(p.name)
        total, late, soon = counts.get(p.name, (0, 0, 0))
        loads.append(Load(p.name, p.display or p.name, p.role, p.supervisor, total, late, soon,
                          stays.get(p.name, 0)))
    for name in sorted(k for k in set(counts) - known if k is not None):
        total, late, soon = counts[name]
        loads.append(Load(name, name, "not in staffing", None, total, late, soon,
                          stays.get(name, 0)))
    order = {"case_manager": 0, "ur_nurse": 1, "supervisor": 2}
    return sorted(loads, key=lambda x: (order.get(x.role, 3), -x.overdue, x.name))
