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
    """From the first day of hospital care (emergency or observation before an inpatient
    order are days of the stay; a pre-admission registration is not) to the discharge."""
    periods = [p for p in encounter.status_periods if not p.cancelled]
    cared = [p.start for p in periods if p.care_status != "preadmit"]
    if encounter.admit_time is not None:
        cared.append(encounter.admit_time)
    start = min(cared or [p.start for p in periods], default=None)
    end = encounter.discharge_time
    return StayDays(start.astimezone(zone).date() if start else None,
                    (end or now).astimezone(zone).date(), end is not None)


def admission_day(encounter: Encounter, stay: StayDays, zone: ZoneInfo) -> date | None:
    """The local day of the admission (PV1-44, the inpatient order after an A06): payers count
    approved days from it; the stay's first day when no admission time is known."""
    inpatient = min((p.start for p in encounter.status_periods
                     if p.care_status == "inpatient" and not p.cancelled), default=None)
    admitted = inpatient or encounter.admit_time  # observation is outpatient: not approved days
    return admitted.astimezone(zone).date() if admitted is not None else stay.first


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
