"""What a batch of evaluations reads, fetched once for the whole batch.

The clock finds many stays due at the same instant (every open stay at local midnight). One
query per kind of data for the batch, instead of six or seven per stay, is most of what a
midnight sweep costs; each stay is then evaluated exactly as a single one would be.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine import labs
from engine.rules.snapshot import past_rows
from engine.storage.models import Encounter, RuleOutput

# The relationships a snapshot reads, loaded with the encounters.
LOAD_FOR_SNAPSHOT = (selectinload(Encounter.patient), selectinload(Encounter.status_periods),
                     selectinload(Encounter.locations), selectinload(Encounter.diagnoses))


@dataclass
class Prefetched:
    outputs: dict[int, list[RuleOutput]] = field(default_factory=dict)  # by encounter id
    history: dict[int, list[tuple]] = field(default_factory=dict)  # past_rows by patient id
    labs: dict[int, dict[str, float]] = field(default_factory=dict)  # by encounter id


def prefetch(session: Session, encs: list[Encounter]) -> Prefetched:
    """Outputs, stay histories and lab values of `encs` (already loaded with
    LOAD_FOR_SNAPSHOT)."""
    ids = [e.id for e in encs]
    out = Prefetched(outputs={i: [] for i in ids})
    for row in session.scalars(select(RuleOutput).where(
            RuleOutput.encounter_id.in_(ids), RuleOutput.status.in_(("active", "completed")))):
        out.outputs[row.encounter_id].append(row)
    patients = sorted({e.patient_id for e in encs if e.patient_id is not None})
    out.history = {p: [] for p in patients}
    for row in past_rows(session, patients):
        out.history[row[0]].append(row)
    found = labs.candidates(session, encs)
    out.labs = {e.id: labs.latest_of(e, found) for e in encs}
    return out
