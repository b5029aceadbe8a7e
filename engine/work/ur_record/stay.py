"""The stay a record belongs to, as its dates bound it on the hospital's calendar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.storage.locks import lock, visit_lock_key
from engine.storage.models import Encounter
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound


@dataclass(frozen=True)
class StayDays:
    first: date | None  # the local day of admission (None: not known yet)
    last: date  # the local day of discharge, or today while the patient is in
    discharged: bool

    def check(self, field: str, day: date, what: str) -> None:
        """A day of the stay, or a message naming the bound it crosses."""
        if self.first is not None and day < self.first:
            raise RecordInvalid(field, f"{what} {day.isoformat()} is before the admission on "
                                       f"{self.first.isoformat()}")
        if day > self.last:
            bound = "the discharge on" if self.discharged else "today,"
            raise RecordInvalid(field, f"{what} {day.isoformat()} is after {bound} "
                                       f"{self.last.isoformat()}")


def days_of(encounter: Encounter, now: datetime, zone: ZoneInfo) -> StayDays:
    start = encounter.admit_time or min((p.start for p in encounter.status_periods
                                         if not p.cancelled),
                                        default=None)
    end = encounter.discharge_time
    return StayDays(start.astimezone(zone).date() if start else None,
                    (end or now).astimezone(zone).date(), end is not None)


def locked(session: Session, encounter_id: int) -> Encounter:
    """The stay, with its visit locked as intake locks it: records and rules never race."""
    visit = session.execute(select(Encounter.visit_system, Encounter.visit_number)
                            .where(Encounter.id == encounter_id)).first()
    if visit is None:
        raise RecordNotFound(f"no stay {encounter_id}")
    lock(session, visit_lock_key(visit[0], visit[1]))
    found = session.get(Encounter, encounter_id, populate_existing=True)
    assert found is not None
    return found
