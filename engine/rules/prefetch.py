"""What an evaluation reads from the database, fetched for one stay or a whole batch.

The clock finds many stays due at the same instant (every open stay at local midnight). One
query per kind of data for the batch, instead of six or seven per stay, is most of what a
midnight sweep costs. A single stay (after a message) goes through the same reads with a
batch of one, so both evaluate exactly alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, selectinload

from engine import labs
from engine.storage.models import Encounter, RuleOutput, StatusPeriod

# The relationships a snapshot reads, loaded with the encounters.
LOAD_FOR_SNAPSHOT = (selectinload(Encounter.patient), selectinload(Encounter.status_periods),
                     selectinload(Encounter.locations), selectinload(Encounter.diagnoses))

# Built once (every evaluation runs them; building a statement costs more than running it).
_OUTPUTS = select(RuleOutput).where(RuleOutput.encounter_id.in_(bindparam("ids", expanding=True)),
                                    RuleOutput.status.in_(("active", "completed")))
_STAYS = (select(Encounter.patient_id, Encounter.id, Encounter.admit_time,
                 Encounter.discharge_time, StatusPeriod.care_status)
          .outerjoin(StatusPeriod, (StatusPeriod.encounter_id == Encounter.id)
                     & (StatusPeriod.cancelled.is_(False)))
          .where(Encounter.patient_id.in_(bindparam("patients", expanding=True)),
                 Encounter.status != "cancelled"))


@dataclass
class Prefetched:
    """By encounter id (None for a stay not yet flushed)."""

    outputs: dict[int | None, list[RuleOutput]] = field(default_factory=dict)
    # (encounter id, admit, discharge, care status) of the patient's stays, one row per
    # status period: the history facts' source (the stay itself included).
    history: dict[int | None, list[tuple]] = field(default_factory=dict)
    labs: dict[int | None, dict[str, float]] = field(default_factory=dict)


def prefetch(session: Session, encs: list[Encounter]) -> Prefetched:
    """Active and completed outputs, the patients' stays and the latest lab values of `encs`."""
    ids = [e.id for e in encs if e.id is not None]
    out = Prefetched(outputs={e.id: [] for e in encs})
    if ids:
        for row in session.scalars(_OUTPUTS, {"ids": ids}):
            out.outputs[row.encounter_id].append(row)
    people = {e.id: e.patient.id if e.patient is not None else None for e in encs}
    stays: dict[int, list[tuple]] = {p: [] for p in people.values() if p is not None}
    if stays:
        for patient_id, *row in session.execute(_STAYS, {"patients": list(stays)}):
            stays[patient_id].append(tuple(row))
    out.history = {e: stays.get(p, []) if p is not None else [] for e, p in people.items()}
    found = labs.candidates(session, encs)
    out.labs = {e.id: labs.latest_of(e, found) for e in encs}
    return out
