"""The people work can go to: the staffing file's names, as a supervisor picks them."""

from __future__ import annotations

from dataclasses import dataclass

from engine.work.staffing import Staffing


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    role: str


def choices(staffing: Staffing) -> list[Choice]:
    """Everyone in the staffing file, case managers and UR nurses first, by name."""
    order = {"case_manager": 0, "ur_nurse": 1, "supervisor": 2}
    people = sorted(staffing.people, key=lambda p: (order.get(p.role, 3), p.name))
    return [Choice(p.name, f"{p.display or p.name} ({p.name})", p.role) for p in people]
