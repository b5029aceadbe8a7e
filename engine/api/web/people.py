"""The people work can go to: the staffing file's names, as a supervisor picks them, and how
a person's name reads on a page (the staffing file's display name, the login id beside it)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.work.staffing import Staffing

_ORDER = {"case_manager": 0, "ur_nurse": 1, "supervisor": 2}
_GROUP = {"case_manager": "Case managers", "ur_nurse": "UR nurses",
          "supervisor": "Supervisors"}


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    role: str


@dataclass(frozen=True)
class Group:
    label: str
    people: list[Choice]


def choices(staffing: Staffing) -> list[Choice]:
    """Everyone in the staffing file, case managers and UR nurses first, by name."""
    people = sorted(staffing.people, key=lambda p: (_ORDER.get(p.role, 3), p.name))
    return [Choice(p.name, f"{p.display or p.name} ({p.name})", p.role) for p in people]


def for_task(staffing: Staffing, queue: str | None, owner: str | None) -> list[Group]:
    """Whom a task can be reassigned to: the people of its queue's role, then the supervisors
    as their own group (a supervisor may work any task, so taking it over is a real choice).
    A current owner outside both is kept as the first choice, so the list defaults to them."""
    role = staffing.role_for_queue(queue)
    everyone = choices(staffing)
    roles = (role, "supervisor") if role is not None else tuple(_ORDER)  # unmapped: anyone
    groups = [Group(_GROUP.get(r, r), [c for c in everyone if c.role == r])
              for r in dict.fromkeys(roles)]
    groups = [g for g in groups if g.people]
    if owner and not any(c.name == owner for g in groups for c in g.people):
        groups.insert(0, Group("Current owner", [Choice(owner, person_label(staffing, owner),
                                                        "")]))
    return groups


def display_name(staffing: Staffing, name: str | None) -> str:
    """The name people know a colleague by (the staffing file's display), else the login."""
    person = staffing.person(name)
    return (person.display if person is not None and person.display else name) or ""


def person_label(staffing: Staffing, name: str) -> str:
    shown = display_name(staffing, name)
    return shown if shown == name else f"{shown} ({name})"
