"""Server references an input names (`Patient/12`, `Encounter/5`), resolved at receipt.

The mapping to events must work from stored bytes alone, so what only the database knows
(the MRN of Patient/12, the visit number of Encounter/5) is looked up here, once, and
recorded in the stored envelope.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.fhir.search import MAX_ROW_ID
from engine.core.site import SiteProfile
from engine.storage.models import Encounter, Patient, PatientIdentifier

_LITERAL = re.compile(r"(Patient|Encounter)/(\d{1,10})\Z")
_MAX_REFERENCES = 1000
_MAX_ID = MAX_ROW_ID


def literal_references(doc: Any, target: str | None = None) -> set[str]:
    """Every relative `Patient/<id>` or `Encounter/<id>` reference or request.url in `doc`."""
    found: set[str] = {target} if target and _LITERAL.match(target) else set()
    stack = [doc]
    while stack and len(found) < _MAX_REFERENCES:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("reference", "url"):
                text = node.get(key)
                if isinstance(text, str) and _LITERAL.match(text):
                    found.add(text)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _ids(refs: set[str], kind: str) -> list[int]:
    out = []
    for ref in refs:
        m = _LITERAL.match(ref)
        if m and m[1] == kind and int(m[2]) <= _MAX_ID:
            out.append(int(m[2]))
    return out


def _mrns(session: Session, patient_ids: set[int], site: SiteProfile) -> dict[int, dict]:
    """patient id -> MRN as {system, value, type}, for survivors of merges too."""
    rows = session.scalars(
        select(PatientIdentifier).where(PatientIdentifier.patient_id.in_(patient_ids))
    ).all()
    best: dict[int, tuple[int, PatientIdentifier]] = {}
    for row in rows:
        rank = 0 if row.is_mrn else 1 if site.mrn_rank(row.system, row.type_code) is not None \
            else 2
        if row.patient_id not in best or rank < best[row.patient_id][0]:
            best[row.patient_id] = (rank, row)
    return {pid: {"system": r.system, "value": r.value, "type": r.type_code}
            for pid, (rank, r) in best.items() if rank < 2}


def _survivors(session: Session, ids: list[int]) -> dict[int, int]:
    """patient id -> the id of the record it was merged into (itself when not merged)."""
    merged_into: dict[int, int | None] = {}
    frontier = set(ids)
    for _ in range(10):  # merge chains are short; the bound guards against cycles
        if not frontier:
            break
        rows = session.execute(
            select(Patient.id, Patient.merged_into_id).where(Patient.id.in_(frontier))
        ).all()
        merged_into.update({pid: merged for pid, merged in rows})
        frontier = {m for _, m in rows if m is not None and m not in merged_into}
    out = {}
    for start in ids:
        current, seen = start, set()
        while merged_into.get(current) is not None and current not in seen:
            seen.add(current)
            current = merged_into[current]  # type: ignore[assignment]
        out[start] = current
    return out


def resolve(session: Session, refs: set[str], site: SiteProfile) -> dict[str, dict]:
    """`{"Patient/12": {"mrn": {...}}, "Encounter/5": {"visit": {...}, "mrn": {...}}}`."""
    out: dict[str, dict] = {}
    encounters = session.execute(
        select(Encounter.id, Encounter.visit_system, Encounter.visit_number, Encounter.patient_id)
        .where(Encounter.id.in_(_ids(refs, "Encounter")))
    ).all() if _ids(refs, "Encounter") else []
    patient_ids = _ids(refs, "Patient")
    existing = set(session.scalars(select(Patient.id).where(Patient.id.in_(patient_ids)))) \
        if patient_ids else set()
    survivors = _survivors(session, sorted(existing | {e.patient_id for e in encounters}))
    mrns = _mrns(session, set(survivors.values()), site) if survivors else {}
    for pid in existing:
        mrn = mrns.get(survivors.get(pid, pid))
        if mrn is not None:
            out[f"Patient/{pid}"] = {"mrn": mrn}
    for enc in encounters:
        entry: dict[str, Any] = {"visit": {"system": enc.visit_system,
                                           "value": enc.visit_number}}
        mrn = mrns.get(survivors.get(enc.patient_id, enc.patient_id))
        if mrn is not None:
            entry["mrn"] = mrn
        out[f"Encounter/{enc.id}"] = entry
    return out
