"""Patients and encounters rendered for a page: `_include` targets and merge links.

One query per kind for a whole page, never one per entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.api.fhir import resources
from engine.api.fhir.submission import ENCOUNTER_LOAD
from engine.storage.models import Encounter, Patient


def replaced(session: Session, ids: list[int]) -> dict[int, list[int]]:
    """survivor id -> ids of patients merged into it (for Patient.link type replaces)."""
    if not ids:
        return {}
    out: dict[int, list[int]] = {}
    rows = session.execute(select(Patient.merged_into_id, Patient.id)
                           .where(Patient.merged_into_id.in_(ids)).order_by(Patient.id))
    for survivor, merged in rows:
        if survivor is not None:  # always: the query asks for merged records
            out.setdefault(survivor, []).append(merged)
    return out


def patients(session: Session, ids: Iterable[int]) -> list[dict]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = list(session.scalars(select(Patient).where(Patient.id.in_(wanted))
                                .options(selectinload(Patient.identifiers))
                                .order_by(Patient.id)))
    merged = replaced(session, [p.id for p in rows])
    return [resources.patient(p, merged.get(p.id)) for p in rows]


def encounters(session: Session, ids: Iterable[int]) -> list[dict]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    rows = session.scalars(select(Encounter).where(Encounter.id.in_(wanted))
                           .options(*ENCOUNTER_LOAD).order_by(Encounter.id))
    return [resources.encounter(e) for e in rows]
