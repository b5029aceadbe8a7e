"""Avoidable days: days of a stay that were not medically necessary, with the reason (the
site's delay reasons), the responsible party and who said so.

UR enters them (confirmed at once), or the engine proposes them (derive): a day the stay is
past its expected discharge date or its GMLOS while a barrier was open. A person confirms or
rejects each proposal; only confirmed days count, in the facts (`avoidable_days`, the
streak) and in the department's numbers. A day is recorded once: a rejected proposal is not
proposed again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core import ur_record as codes
from engine.core.roles import Permission, Principal
from engine.core.site import SiteProfile
from engine.rules.reference import Reference
from engine.storage.models import AvoidableDay, Barrier, Encounter
from engine.work.ur_record import revisions
from engine.work.ur_record.barriers import reason
from engine.work.ur_record.inputs import AvoidableDayInput, code, text
from engine.work.ur_record.problems import RecordInvalid, RecordNotFound, permitted
from engine.work.ur_record.stay import days_of

ENGINE = "engine"
PROPOSED, CONFIRMED, REJECTED = "proposed", "confirmed", "rejected"


def _overlap(session: Session, encounter_id: int, first: date, last: date,
             but: int | None = None) -> AvoidableDay | None:
    query = select(AvoidableDay).where(
        AvoidableDay.encounter_id == encounter_id, AvoidableDay.voided_at.is_(None),
        AvoidableDay.status != REJECTED, AvoidableDay.first_day <= last,
        AvoidableDay.last_day >= first)
    if but is not None:
        query = query.where(AvoidableDay.id != but)
    return session.scalars(query.order_by(AvoidableDay.first_day)).first()


def _checked(session: Session, data: AvoidableDayInput, encounter: Encounter,
             site: SiteProfile, ref: Reference, now: datetime, but: int | None = None) -> dict:
    why = reason(ref, data.reason_code)
    party = code("responsible_party", data.responsible_party, codes.RESPONSIBLE_PARTIES,
                 required=False) or why.responsible_party
    last = data.last_day or data.first_day
    if last < data.first_day:
        raise RecordInvalid("last_day", f"the last day {last.isoformat()} is before the "
                                        f"first {data.first_day.isoformat()}")
    stay = days_of(encounter, now, site.zone)
    stay.check("first_day", data.first_day, "the first avoidable day")
    stay.check("last_day", last, "the last avoidable day")
    if stay.discharged and last >= stay.last:  # the day the patient leaves is not a day
        field = "first_day" if data.first_day >= stay.last else "last_day"  # of the stay
        raise RecordInvalid(field, f"the patient left on {stay.last.isoformat()}: the day of "
                                   "discharge is not a day of the stay (the last one is "
                                   f"{(stay.last - timedelta(days=1)).isoformat()})")
    _barrier_of_stay(session, encounter, data.barrier_id)
    clash = _overlap(session, encounter.id, data.first_day, last, but)
    if clash is not None:
        span = clash.first_day.isoformat()
        if clash.last_day != clash.first_day:
            span += f" to {clash.last_day.isoformat()}"
        instead = ("confirm or reject the engine's proposal instead" if clash.status == PROPOSED
                   else "correct that record instead")
        raise RecordInvalid("first_day", f"{span} is already recorded as avoidable "
                                         f"({clash.status}); {instead}")
    return {"first_day": data.first_day, "last_day": last, "reason_code": why.code,
            "category": why.category, "responsible_party": party,
            "note": text(data.note, field="note"), "barrier_id": data.barrier_id}


def _barrier_of_stay(session: Session, encounter: Encounter, barrier_id: int | None) -> None:
    if barrier_id is None:
        return
    barrier = session.get(Barrier, barrier_id)
    if barrier is None or barrier.encounter_id != encounter.id:
        raise RecordInvalid("barrier_id", f"barrier {barrier_id} is not a barrier of this stay")
    if barrier.voided_at is not None:
        raise RecordInvalid("barrier_id", f"barrier {barrier_id} was voided")


def record(session: Session, encounter: Encounter, data: AvoidableDayInput,
           actor: Principal | str, now: datetime, site: SiteProfile, ref: Reference
           ) -> AvoidableDay:
    """UR marks days avoidable: confirmed by the person who entered them."""
    who = permitted(actor, Permission.UR_WRITE)
    day = AvoidableDay(encounter_id=encounter.id, status=CONFIRMED, source="person",
                       decided_by=who, decided_at=now, entered_by=who, entered_at=now,
                       updated_by=who, updated_at=now, version=1,
                       **_checked(session, data, encounter, site, ref, now))
    session.add(day)
    session.flush()
    return day


def correct(session: Session, day: AvoidableDay, encounter: Encounter,
            data: AvoidableDayInput, actor: Principal | str, now: datetime,
            site: SiteProfile, ref: Reference, *, reason_text: str | None = None,
            expected_version: int | None = None) -> bool:
    who = permitted(actor, Permission.UR_WRITE)
    values = _checked(session, data, encounter, site, ref, now, but=day.id)
    return revisions.revise(session, day, values, who, now, reason_text, expected_version)


def decide(session: Session, day: AvoidableDay, confirm: bool, actor: Principal | str,
           now: datetime, *, note: str | None = None, responsible_party: str | None = None,
           expected_version: int | None = None) -> None:
    """A person confirms or rejects a day the engine proposed."""
    who = permitted(actor, Permission.UR_WRITE)
    if day.status != PROPOSED:
        raise RecordInvalid("record", f"this avoidable day is already {day.status}")
    changes: dict = {"status": CONFIRMED if confirm else REJECTED, "decided_by": who,
                     "decided_at": now}
    if note:
        changes["note"] = text(note, field="note")
    if responsible_party:
        changes["responsible_party"] = code("responsible_party", responsible_party,
                                            codes.RESPONSIBLE_PARTIES)
    revisions.revise(session, day, changes, who, now,
                     "confirmed" if confirm else "rejected", expected_version)


def of_stay(session: Session, encounter_id: int, *, voided: bool = False
            ) -> list[AvoidableDay]:
    query = select(AvoidableDay).where(AvoidableDay.encounter_id == encounter_id)
    if not voided:
        query = query.where(AvoidableDay.voided_at.is_(None))
    return list(session.scalars(query.order_by(AvoidableDay.first_day, AvoidableDay.id)))


def get(session: Session, encounter_id: int, day_id: int) -> AvoidableDay:
    day = session.get(AvoidableDay, day_id)
    if day is None or day.encounter_id != encounter_id:
        raise RecordNotFound(f"no avoidable day {day_id} on this stay")
    return day


def _open_on(barriers: Iterable[Barrier], day: date, zone: ZoneInfo) -> Barrier | None:
    """The oldest barrier still open at the end of the local day (the night the patient
    stayed for it): a barrier resolved during the day ended its delay that day (UR may still
    enter the day by hand)."""
    for b in sorted(barriers, key=lambda b: (b.opened_at, b.id)):
        if b.voided_at is not None or b.opened_at.astimezone(zone).date() > day:
            continue
        if b.resolved_at is None or b.resolved_at.astimezone(zone).date() > day:
            return b
    return None


def candidate_days(encounter: Encounter, barriers: list[Barrier], now: datetime,
                   zone: ZoneInfo, gmlos: float | None) -> list[tuple[date, Barrier]]:
    """Whole past days of the stay, past its expected discharge date or its GMLOS (counted
    from the first inpatient day), on which a barrier was open: what derive proposes."""
    inpatient = min((p.start for p in encounter.status_periods
                     if p.care_status == "inpatient" and not p.cancelled),
                    default=None)
    if inpatient is None:
        return []
    first = inpatient.astimezone(zone).date()
    end = (encounter.discharge_time or now).astimezone(zone).date()  # not a whole day yet
    out: list[tuple[date, Barrier]] = []
    day = first
    while day < end:
        # the day the patient was expected to leave, spent in hospital, is the first one past
        # it (as the day at index GMLOS is the first whole day past the GMLOS)
        past_expected = (encounter.expected_discharge_date is not None
                         and day >= encounter.expected_discharge_date)
        past_gmlos = gmlos is not None and (day - first).days >= gmlos
        if past_expected or past_gmlos:
            barrier = _open_on(barriers, day, zone)
            if barrier is not None:
                out.append((day, barrier))
        day += timedelta(days=1)
    return out


def derive(session: Session, encounter: Encounter, now: datetime, zone: ZoneInfo,
           ref: Reference) -> list[AvoidableDay]:
    """Propose the days candidate_days finds that no record covers yet (a rejected day is
    not proposed again); a proposal still open runs on while the same barrier stays open (a
    new version, the shorter run kept); a proposal still open whose barrier was voided is
    voided with it."""
    every = list(session.scalars(select(Barrier).where(Barrier.encounter_id == encounter.id)))
    if not every:
        return []
    barriers = [b for b in every if b.voided_at is None]
    withdrawn = {b.id for b in every if b.voided_at is not None}
    norm = ref.drg(encounter.working_drg)
    recorded = []
    for r in session.scalars(select(AvoidableDay).where(
            AvoidableDay.encounter_id == encounter.id, AvoidableDay.voided_at.is_(None))):
        if r.status == PROPOSED and r.source == ENGINE and r.barrier_id in withdrawn:
            # the barrier it rested on was entered in error: so was the proposal (kept)
            revisions.void(session, r, ENGINE, now, "its barrier was voided",
                           permission=Permission.UR_WRITE)
            continue
        recorded.append(r)
    covered = {r.first_day + timedelta(days=i) for r in recorded
               for i in range((r.last_day - r.first_day).days + 1)}
    made: list[AvoidableDay] = []
    for day, barrier in candidate_days(encounter, barriers, now, zone,
                                       norm.gmlos if norm else None):
        if day in covered:
            continue
        run = next((r for r in recorded + made if r.status == PROPOSED
                    and r.barrier_id == barrier.id
                    and r.last_day == day - timedelta(days=1)), None)
        if run is not None:
            if run in made:  # proposed in this pass
                run.last_day = day
            else:  # a new version, so a person deciding the shorter run is told it moved
                revisions.revise(session, run, {"last_day": day}, ENGINE, now,
                                 "runs on: the barrier is still open")
            continue
        why = ref.delay_reasons.get(barrier.reason_code)
        proposal = AvoidableDay(
            encounter_id=encounter.id, first_day=day, last_day=day,
            reason_code=barrier.reason_code, category=barrier.category,
            responsible_party=why.responsible_party if why else "hospital",
            status=PROPOSED, source=ENGINE, barrier_id=barrier.id, entered_by=ENGINE,
            entered_at=now, updated_by=ENGINE, updated_at=now, version=1)
        session.add(proposal)
        made.append(proposal)
    if made:
        session.flush()
    return made
