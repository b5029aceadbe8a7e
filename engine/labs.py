"""Lab results the scores read (HOSPITAL: hemoglobin and sodium at discharge).

Results arrive as HL7 OBX segments (ORU^R01, or OBX in ADT messages) and FHIR
Observations, both as `LabData` on an event, through the one path. One row per patient,
test and effective time: a resend or a correction updates its row, and the current value
is the latest by effective time, whatever order the results arrived in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, bindparam, or_, select, tuple_
from sqlalchemy.orm import Session

from engine.events import AdtEvent, EventError
from engine.storage.models import Encounter, InboundMessage, LabResult, Patient

# LOINC code -> (name the facts use, the engine's unit).
LOINC: dict[str, tuple[str, str]] = {
    "718-7": ("hemoglobin", "g/dL"),  # Hemoglobin [Mass/volume] in Blood
    "2951-2": ("sodium", "mmol/L"),  # Sodium [Moles/volume] in Serum or Plasma
}
# Units accepted per test (lower case, UCUM or common) and the factor to the engine's unit.
_FACTORS: dict[str, dict[str, float]] = {
    "hemoglobin": {"g/dl": 1.0, "gm/dl": 1.0, "g/l": 0.1},
    "sodium": {"mmol/l": 1.0, "meq/l": 1.0},
}
# Statuses that withdraw a result sent before (HL7 OBX-11 D/W, FHIR entered-in-error).
WITHDRAWN = frozenset({"D", "W", "entered-in-error", "cancelled"})
# Statuses that carry no value to keep (HL7 X: cannot be obtained).
NO_RESULT = frozenset({"X"})


def reading(code: str, value: float, unit: str | None, where: str) -> tuple[str, float, str]:
    """(name, value, unit) in the engine's unit for a known LOINC code; raises EventError."""
    name, engine_unit = LOINC[code]
    factor = _FACTORS[name].get((unit or "").strip().lower())
    if factor is None:
        accepted = ", ".join(sorted(_FACTORS[name]))
        raise EventError(f"{where}: unit {unit or '(none)'!r} for {name} (LOINC {code}) is not "
                         f"understood; send one of {accepted}")
    return name, round(value * factor, 4), engine_unit


def record(session: Session, patient: Patient, event: AdtEvent, now: datetime,
           message: InboundMessage | None, encounter: Encounter | None = None
           ) -> tuple[Encounter | None, str]:
    """Store the event's results; the encounter is the one the results name, if on file."""
    vn = event.visit.visit_number if event.visit is not None else None
    if encounter is None and vn is not None:
        encounter = session.scalars(select(Encounter).where(
            Encounter.visit_system == vn.system, Encounter.visit_number == vn.value)).first()
    session.flush()  # the patient needs its id
    kept = withdrawn = 0
    for lab in event.labs or []:
        row = session.scalars(select(LabResult).where(
            LabResult.patient_id == patient.id, LabResult.code == lab.code,
            LabResult.effective_at == lab.effective_at)).first()
        if lab.status in WITHDRAWN:
            if row is not None:
                session.delete(row)
                session.flush()
                withdrawn += 1
            continue
        if lab.status in NO_RESULT:
            continue
        if row is None:
            row = LabResult(patient_id=patient.id, code=lab.code, effective_at=lab.effective_at)
            session.add(row)
        row.name, row.value, row.unit, row.status = lab.name, lab.value, lab.unit, lab.status
        row.visit_system = vn.system if vn is not None else None
        row.visit_number = vn.value if vn is not None else None
        row.recorded_at = now
        row.message_id = message.id if message is not None else None
        # Sessions do not autoflush: the next result for the same test and time, and the
        # evaluation that follows, must see this row.
        session.flush()
        kept += 1
    summary = f"{kept} lab result(s) stored" + (f", {withdrawn} withdrawn" if withdrawn else "")
    return encounter, summary if event.labs else "no lab results the engine uses"


# What `latest_of` reads of a result, built once (every evaluation runs it).
_CANDIDATES = (
    select(LabResult.name, LabResult.value, LabResult.visit_system, LabResult.visit_number,
           LabResult.patient_id, LabResult.effective_at)
    .where(or_(tuple_(LabResult.visit_system, LabResult.visit_number)
               .in_(bindparam("visits", expanding=True)),
               LabResult.visit_number.is_(None)
               & LabResult.patient_id.in_(bindparam("patients", expanding=True))))
    .order_by(LabResult.effective_at.desc(), LabResult.id.desc()))


def candidates(session: Session, encs: list[Encounter]) -> list[Row]:
    """Every result that may belong to one of these stays, newest first (one query for a
    batch; `latest_of` decides which belong to which)."""
    visits = [(e.visit_system, e.visit_number) for e in encs if e.id is not None]
    patients = {e.patient_id for e in encs if e.id is not None}
    if not visits:
        return []
    return list(session.execute(_CANDIDATES, {"visits": visits, "patients": list(patients)}))


def latest_of(enc: Encounter, newest_first: list[Row]) -> dict[str, float]:
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

