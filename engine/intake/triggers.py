"""What each ADT trigger does to an encounter: one small handler per trigger, in one table.

encounters.py finds the encounter and applies the fields every visit message carries; the
handler then applies what its trigger means (status, moves, cancels), and `handle` ends
every event alike: a stated discharge closes the histories, and the current location and
care status are read back from them. A new trigger is one handler and one HANDLERS entry.

Event-time ordering: a late message (older than the encounter's state) only fills gaps and
places its history where it belongs; cancels (A11, A12, A13, A25, A27, A38, A52, A53) always
apply. Identity events (A45, A50) change the key first (identity.py), then update here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from engine.core.events import AdtEvent, EventError, VisitData
from engine.core.vocabulary import EncounterStatus
from engine.intake import timeline
from engine.storage.models import Encounter, LocationStay, StatusPeriod

# The encounter status a trigger implies, when the message does not state one (FHIR does).
STATUS_BY_TRIGGER = {
    "A01": EncounterStatus.IN_PROGRESS,
    "A02": EncounterStatus.IN_PROGRESS,
    "A04": EncounterStatus.IN_PROGRESS,
    "A06": EncounterStatus.IN_PROGRESS,
    "A07": EncounterStatus.IN_PROGRESS,
    "A22": EncounterStatus.IN_PROGRESS,
    "A05": EncounterStatus.PLANNED,
    "A14": EncounterStatus.PLANNED,
    "A21": EncounterStatus.ONLEAVE,
}


@dataclass
class Step:
    """One visit event being applied to one encounter: what the handlers read and write."""

    session: Session
    enc: Encounter
    event: AdtEvent
    visit: VisitData
    late: bool  # older than the state it would overwrite: fill gaps only
    notes: list[str] = field(default_factory=list)
    touched: bool = False  # a history changed: re-read the current location and status
    finished: bool = False  # the visit ends with this event: close the histories

    @classmethod
    def begin(cls, session: Session, enc: Encounter, event: AdtEvent) -> Step:
        visit = event.visit
        assert visit is not None
        late = enc.as_of is not None and event.event_time < enc.as_of
        return cls(session, enc, event, visit, late,
                   finished=visit.status == EncounterStatus.FINISHED)

    @property
    def when(self) -> datetime:
        return self.event.event_time

    def put(self, name: str, value) -> None:
        """Set a sent value; a late message only fills what is still empty."""
        if value is None:
            return
        current = getattr(self.enc, name)
        if current != value and (not self.late or current is None):
            setattr(self.enc, name, value)


Handler = Callable[[Step], None]


def handle(step: Step) -> str:
    """Apply the trigger's handler, then what every event ends with; the event's summary."""
    HANDLERS.get(step.event.trigger, update)(step)
    if step.finished:
        _discharge(step)
    if step.touched:
        _refresh_current(step.enc)
    return "; ".join(step.notes) or f"{step.event.trigger} applied"


# Shared steps.


def _default_admit_time(step: Step) -> None:
    """An admission without PV1-44 was admitted when the event happened."""
    if step.enc.admit_time is None:
        step.enc.admit_time = step.when


def _set_status(step: Step, status: str | None) -> None:
    """An up-to-date message sets the encounter status; a late one leaves it."""
    if not step.late and status:
        step.enc.status = status


def _implied_status(step: Step) -> str | None:
    return step.visit.status or STATUS_BY_TRIGGER.get(step.event.trigger)


def _start(step: Step, at: datetime) -> datetime:
    """When a move starts: a new encounter's first periods start no later than its admission."""
    enc = step.enc
    if enc.id is None and enc.admit_time:
        return min(at, enc.admit_time)
    return at


def _same_place(a: LocationStay, b: LocationStay) -> bool:
    return (a.unit, a.room, a.bed) == (b.unit, b.room, b.bed)


def _same_status(a: StatusPeriod, b: StatusPeriod) -> bool:
    return a.care_status == b.care_status


def _place_location(step: Step, start: datetime) -> LocationStay | None:
    """Add a stay where the patient now is, in event time; the stay if one was placed."""
    enc, loc = step.enc, step.visit.location
    if loc is None or (not step.late and (loc.unit, loc.room, loc.bed) == (enc.unit, enc.room,
                                                                            enc.bed)):
        return None
    stay = LocationStay(unit=loc.unit, room=loc.room, bed=loc.bed,
                        facility=loc.facility, start=start, cancelled=False)
    step.touched = True
    if not timeline.place(enc.locations, stay, _same_place):
        return None
    enc.locations.append(stay)
    return stay


def _place_care_status(step: Step, start: datetime) -> None:
    """Add a care-status period (inpatient, observation...) in event time."""
    enc, care_status = step.enc, step.visit.care_status
    if care_status is None or (not step.late and care_status == enc.care_status):
        return
    period = StatusPeriod(care_status=care_status, start=start, cancelled=False)
    step.touched = True
    if timeline.place(enc.status_periods, period, _same_status):
        enc.status_periods.append(period)
        step.notes.append(f"status {care_status}")


def _move(step: Step, start: datetime) -> None:
    _place_location(step, start)
    _place_care_status(step, start)


def _discharge(step: Step) -> None:
    """Close the histories at the discharge time (A03, or a status stated as finished)."""
    enc = step.enc
    discharge = step.visit.discharge_time or step.when
    if enc.discharge_time is None or not step.late:
        enc.discharge_time = discharge
        step.put("discharge_disposition", step.visit.discharge_disposition)
        timeline.close(enc.locations, discharge)
        timeline.close(enc.status_periods, discharge)
        enc.pending_discharge_time = None
        step.touched = True
    step.notes.append("discharged")


def _refresh_current(enc: Encounter) -> None:
    """Current location and care status are whatever the histories say last."""
    stay = timeline.current(enc.locations)
    if stay is not None:
        enc.facility, enc.unit, enc.room, enc.bed = stay.facility, stay.unit, stay.room, stay.bed
    period = timeline.current(enc.status_periods)
    if period is not None:
        enc.care_status = period.care_status


# Handlers, one per trigger meaning.


def admit(step: Step) -> None:
    """A01 admit, A04 register: the stay starts at the admit time (PV1-44) when sent."""
    _default_admit_time(step)
    _set_status(step, _implied_status(step))
    _move(step, _start(step, step.visit.admit_time or step.when))


def change_to_inpatient(step: Step) -> None:
    """A06: an outpatient or ED visit becomes an admission, from the event time on."""
    _default_admit_time(step)
    _set_status(step, _implied_status(step))
    _move(step, _start(step, step.when))


def transfer(step: Step) -> None:
    """A02: the patient moves to another unit, room or bed."""
    _set_status(step, _implied_status(step))
    start = _start(step, step.when)
    stay = _place_location(step, start)
    if stay is not None:
        step.notes.append(f"transfer to {stay.unit or '?'}")
    _place_care_status(step, start)


def discharge(step: Step) -> None:
    """A03: the visit ends (the histories close in `handle`)."""
    _set_status(step, EncounterStatus.FINISHED)
    _move(step, _start(step, step.when))
    step.finished = True


def update(step: Step) -> None:
    """A08 and the rest (A05, A07, A14, A22, FHIR): the status implied or stated, any move."""
    _set_status(step, _implied_status(step))
    _move(step, _start(step, step.when))


def leave_of_absence(step: Step) -> None:
    """A21: on leave; not a move, the patient keeps the bed."""
    _set_status(step, _implied_status(step))


def pending_discharge(step: Step) -> None:
    """A16: a discharge is planned for the event time."""
    step.put("pending_discharge_time", step.when)
    step.notes.append("pending discharge")


def cancel_admit(step: Step) -> None:
    """A11: the admission or visit was keyed in error."""
    step.enc.status = EncounterStatus.CANCELLED
    step.notes.append("admission/visit cancelled")


def cancel_transfer(step: Step) -> None:
    """A12: undo the last transfer; the patient is back where they were before it."""
    stays = timeline.active(step.enc.locations)
    if len(stays) < 2:
        raise EventError("A12 cancel transfer: this visit has no transfer to cancel")
    last, previous = stays[-1], stays[-2]
    last.cancelled = True
    previous.end = last.end
    step.notes.append(f"transfer to {last.unit or '?'} cancelled; back in {previous.unit or '?'}")
    step.touched = True


def cancel_discharge(step: Step) -> None:
    """A13: reopen the histories the discharge closed."""
    enc = step.enc
    step.touched = True
    if enc.status != EncounterStatus.FINISHED:
        step.notes.append("discharge cancel: no discharge on file")
        return
    timeline.reopen(enc.locations, enc.discharge_time)
    timeline.reopen(enc.status_periods, enc.discharge_time)
    enc.status = EncounterStatus.IN_PROGRESS
    enc.discharge_time = None
    enc.discharge_disposition = None
    step.notes.append("discharge cancelled")


def cancel_pending_discharge(step: Step) -> None:
    """A25: the planned discharge is off."""
    step.enc.pending_discharge_time = None
    step.notes.append("pending discharge cancelled")


def _cancel_planned(step: Step, what: str, admitted_hint: str) -> None:
    """A38/A27: cancel a stay that is still planned; an admitted or finished one is not
    what these cancel (refused, so the sender can send the cancel that applies)."""
    enc = step.enc
    if enc.id is not None and enc.status not in (EncounterStatus.PLANNED,
                                                 EncounterStatus.CANCELLED):
        raise EventError(f"{step.event.trigger} cancels a {what}; visit {enc.visit_number} is "
                         f"{enc.status}: {admitted_hint}")
    enc.status = EncounterStatus.CANCELLED
    enc.pending_discharge_time = None
    step.notes.append(f"{what} cancelled")


def cancel_preadmit(step: Step) -> None:
    """A38: the pre-admission (A05) is off."""
    _cancel_planned(step, "pre-admit", "send A11 to cancel an admission")


def cancel_pending_admit(step: Step) -> None:
    """A27: the pending admission (A14) is off."""
    _cancel_planned(step, "pending admit", "send A11 to cancel an admission")


def cancel_leave(step: Step) -> None:
    """A52: the leave of absence (A21) did not happen: the patient is in again."""
    if step.enc.status == EncounterStatus.ONLEAVE:
        step.enc.status = EncounterStatus.IN_PROGRESS
    step.notes.append("leave of absence cancelled")


def cancel_return(step: Step) -> None:
    """A53: the return from leave (A22) did not happen: the patient is still on leave."""
    if step.enc.status == EncounterStatus.IN_PROGRESS:
        step.enc.status = EncounterStatus.ONLEAVE
    step.notes.append("return from leave cancelled")


def rekeyed(step: Step) -> None:
    """A45 moved visit, A50 changed visit number: the key changed already (identity.py); the
    PV1 they carry updates the stay like an A08, but implies no status."""
    _move(step, _start(step, step.when))


# trigger -> handler; a trigger not listed (FHIR, say) is an update.
HANDLERS: dict[str, Handler] = {
    "A01": admit,
    "A02": transfer,
    "A03": discharge,
    "A04": admit,
    "A05": update,  # pre-admit: planned
    "A06": change_to_inpatient,
    "A07": update,  # inpatient to outpatient
    "A08": update,
    "A11": cancel_admit,
    "A12": cancel_transfer,
    "A13": cancel_discharge,
    "A14": update,  # pending admit: planned
    "A16": pending_discharge,
    "A21": leave_of_absence,
    "A22": update,  # back from leave
    "A25": cancel_pending_discharge,
    "A27": cancel_pending_admit,
    "A38": cancel_preadmit,
    "A45": rekeyed,
    "A50": rekeyed,
    "A52": cancel_leave,
    "A53": cancel_return,
    "A54": update,  # change attending doctor: PV1-7 is the new one
    "A55": update,  # cancel change attending doctor: PV1-7 is the one in force again
}
