"""The staffing file: who works which units, services and payers, and who supervises whom.

A hospital edits `fixtures/staffing.yaml` (or the file named by ENGINE_STAFFING_FILE), not
code. People have one role (case_manager, ur_nurse, supervisor); a person's lists narrow
what they cover, and an empty list means "any". `queues` maps each rule queue (the `queue:`
of a task action) to the role that works it: every queue a rule names must be mapped
(`engine rules check` fails otherwise), since only that role, or a supervisor, may start or
complete the task and a queue no one works leaves stat work with no owner.

A running engine reads the file its settings name (`Runtime.staffing`) and hands it down to
the work it starts (the rulebook assigns new tasks by it); nothing below the edges reads the
global settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["case_manager", "ur_nurse", "supervisor"]
WORKING_ROLES = ("case_manager", "ur_nurse")



def _default_queues() -> dict[str, Role | None]:
    return {"case_manager": "case_manager", "ur_nurse": "ur_nurse"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    name: str = Field(description="User name, as the person signs in.")
    display: str | None = None
    role: Role
    units: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    payer_classes: list[str] = Field(default_factory=list)
    supervisor: str | None = None

    def covers(self, unit: str | None, service: str | None, payer: str | None) -> int | None:
        """How specifically this person covers the stay (None: not at all)."""
        score = 0
        for wanted, value in ((self.units, unit), (self.services, service),
                              (self.payer_classes, payer)):
            if wanted:
                if value not in wanted:
                    return None
                score += 1
        return score


class Staffing(_Strict):
    people: list[Person]
    queues: dict[str, Role | None] = Field(default_factory=lambda: _default_queues())
    supervisor: str | None = Field(
        default=None, description="Who gets escalations of people without a supervisor.")

    @model_validator(mode="after")
    def _consistent(self) -> Staffing:
        names = [p.name for p in self.people]
        if len(names) != len(set(names)):
            raise ValueError("each person's name must be unique")
        known = {p.name: p for p in self.people}
        for person in self.people:
            boss = known.get(person.supervisor) if person.supervisor else None
            if person.supervisor and (boss is None or boss.role != "supervisor"):
                raise ValueError(f"{person.name}: supervisor {person.supervisor} is not a "
                                 "supervisor in this file")
        if self.supervisor and getattr(known.get(self.supervisor), "role", None) != "supervisor":
            raise ValueError(f"supervisor {self.supervisor} is not a supervisor in this file")
        return self

    def person(self, name: str | None) -> Person | None:
        return next((p for p in self.people if p.name == name), None) if name else None

    def role_for_queue(self, queue: str | None) -> str | None:
        """The role that works a rule queue; None: the queue is not mapped."""
        if queue is None:
            return None
        return self.queues.get(queue)

    def unmapped(self, queues: Iterable[str]) -> list[str]:
        """The queues (of those given) that no role works, sorted."""
        return sorted({q for q in queues if self.role_for_queue(q) is None})

    def may_work(self, role: str, queue: str | None) -> bool:
        """Whether a person of `role` may start or complete work of `queue`: its own role's
        work, and supervisors anything; an unmapped queue is anyone's."""
        wanted = self.role_for_queue(queue)
        return role == "supervisor" or wanted is None or role == wanted

    def supervisor_of(self, name: str | None) -> str | None:
        person = self.person(name)
        if person is not None and person.supervisor:
            return person.supervisor
        if person is not None and person.role == "supervisor":
            return person.name
        return self.supervisor


EMPTY = Staffing(people=[])


def load_staffing(path: Path) -> Staffing:
    """Read and check a staffing file; raises ValueError with the problem."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"staffing file {path}: {exc}") from exc
    return Staffing.model_validate(data or {"people": []})


@lru_cache(maxsize=4)
def _cached(path: str, mtime: float) -> Staffing:
    return load_staffing(Path(path))


def from_file(path: Path | None) -> Staffing:
    """The staffing in `path`, re-read when the file changes; no path or no file: no one."""
    if path is None or not Path(path).is_file():
        return EMPTY
    return _cached(str(path), Path(path).stat().st_mtime)


