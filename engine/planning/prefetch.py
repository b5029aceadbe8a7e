"""What an evaluation reads from the database, fetched for one stay or a whole batch.

The clock finds many stays due at the same instant (every open stay at local midnight). One
query per kind of data for the batch, instead of six or seven per stay, is most of what a
midnight sweep costs. A single stay (after a message) goes through the same reads with a
batch of one, so both evaluate exactly alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, bindparam, or_, select, tuple_
from sqlalchemy.orm import Session, selectinload

from engine.core.vocabulary import EncounterStatus, OutputKind, OutputStatus
from engine.storage.models import (
    AvoidableDay,
    Barrier,
    Decision,
    Encounter,
    LabResult,
    PayerAuthorization,
    RuleOutput,
    StatusPeriod,
    UtilizationReview,
)
from engine.work.decisions import holding

# The relationships a snapshot reads, loaded with the encounters.
LOAD_FOR_SNAPSHOT = (selectinload(Encounter.patient), selectinload(Encounter.status_periods),
                     selectinload(Encounter.locations), selectinload(Encounter.diagnoses))

# Built once (every evaluation runs them; building a statement costs more than running it).
# Closed proposals too: one a person closed is not proposed again (closed_dispositions).
_OUTPUTS = select(RuleOutput).where(
    RuleOutput.encounter_id.in_(bindparam("ids", expanding=True)),
    RuleOutput.status.in_((OutputStatus.ACTIVE, OutputStatus.COMPLETED))
    | (RuleOutput.kind == OutputKind.PROPOSAL))
_STAYS = (select(Encounter.patient_id, Encounter.id, Encounter.admit_time,
                 Encounter.discharge_time, StatusPeriod.care_status)
          .outerjoin(StatusPeriod, (StatusPeriod.encounter_id == Encounter.id)
                     & (StatusPeriod.cancelled.is_(False)))
          .where(Encounter.patient_id.in_(bindparam("patients", expanding=True)),
                 Encounter.status != EncounterStatus.CANCELLED))


# The UR record a snapshot reads (void records left out), one query per kind for a batch.
_RECORDS: dict[str, Any] = {
    kind: select(model).where(model.encounter_id.in_(bindparam("ids", expanding=True)),
                              model.voided_at.is_(None)).order_by(model.id)
    for kind, model in (("reviews", UtilizationReview), ("authorizations", PayerAuthorization),
                        ("barriers", Barrier), ("avoidable_days", AvoidableDay))}


@dataclass
class Records:
    """A stay's UR record as stored (engine.planning.snapshots turns it into plain data)."""

    reviews: list[UtilizationReview] = field(default_factory=list)
    authorizations: list[PayerAuthorization] = field(default_factory=list)
    barriers: list[Barrier] = field(default_factory=list)
    avoidable_days: list[AvoidableDay] = field(default_factory=list)


@dataclass
class Prefetched:
    """By encounter id (None for a stay not yet flushed)."""

    outputs: dict[int | None, list[RuleOutput]] = field(default_factory=dict)
    # (encounter id, admit, discharge, care status) of the patient's stays, one row per
    # status period: the history facts' source (the stay itself included).
    history: dict[int | None, list[tuple]] = field(default_factory=dict)
    labs: dict[int | None, dict[str, float]] = field(default_factory=dict)
    # People's declines that still hold (engine.planning.held).
    decisions: dict[int | None, list[Decision]] = field(default_factory=dict)
    # The UR record: reviews, authorizations, barriers, avoidable days.
    records: dict[int | None, Records] = field(default_factory=dict)


def prefetch(session: Session, encs: list[Encounter]) -> Prefetched:
    """Active and completed outputs (and closed proposals), the patients' stays, the latest
    lab values, the decisions that hold and the UR record for `encs`."""
    ids = [e.id for e in encs if e.id is not None]
    out = Prefetched(outputs={e.id: [] for e in encs})
    if ids:
        for row in session.scalars(_OUTPUTS, {"ids": ids}):
            out.outputs[row.encounter_id].append(row)
    people = {e.id: e.patient.id if e.patient is not None else None for e in encs}
    stays: dict[int, list[tuple]] = {p: [] for p in people.values() if p is not None}
    if stays:
        for patient_id, *stay in session.execute(_STAYS, {"patients": list(stays)}):
            stays[patient_id].append(tuple(stay))
    out.history = {e: stays.get(p, []) if p is not None else [] for e, p in people.items()}
    found = lab_candidates(session, encs)
    out.labs = {e.id: latest_labs(e, found) for e in encs}
    found_decisions = holding(session, ids)
    out.decisions = {e.id: found_decisions.get(e.id, []) if e.id is not None else []
                     for e in encs}
    out.records = {e.id: Records() for e in encs}
    if ids:
        for kind, query in _RECORDS.items():
            for entry in session.scalars(query, {"ids": ids}):
                getattr(out.records[entry.encounter_id], kind).append(entry)
    return out


# What `latest_labs` reads of a result, built once (every evaluation runs it).
_CANDIDATES = (
    select(LabResult.name, LabResult.value, LabResult.visit_system, LabResult.visit_number,
           LabResult.patient_id, LabResult.effective_at)
    .where(or_(tuple_(LabResult.visit_system, LabResult.visit_number)
               .in_(bindparam("visits", expanding=True)),
               LabResult.visit_number.is_(None)
               & LabResult.patient_id.in_(bindparam("patients", expanding=True))))
    .order_by(LabResult.effective_at.desc(), LabResult.id.desc()))


def lab_candidates(session: Session, encs: list[Encounter]) -> list[Row]:
    """Every result that may belong to one of these stays, newest first (one query for a
    batch; `latest_labs` decides which belong to which)."""
    visits = [(e.visit_system, e.visit_number) for e in encs if e.id is not None]
    patients = {e.patient_id for e in encs if e.id is not None}
    if not visits:
        return []
    return list(session.execute(_CANDIDATES, {"visits": visits, "patients": list(patients)}))


def latest_labs(enc: Encounter, newest_first: list[Row]) -> dict[str, float]:
    """Per test, the newest of the results that belong to this stay."""
    values: dict[str, float] = {}
    for row in newest_first:
        if row.name in values:
            continue
        if row.visit_number is not None:
            mine = (row.visit_system, row.visit_number) == (enc.visit_system, enc.visit_number)
        else:
            mine = row.patient_id == enc.patient_id and (
                enc.admit_time is None or row.effective_at >= enc.admit_time) and (
                enc.discharge_time is None or row.effective_at <= enc.discharge_time)
        if mine:
            values[row.name] = row.value
    return values
