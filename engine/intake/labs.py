"""Lab results the scores read (HOSPITAL: hemoglobin and sodium at discharge).

Results arrive as HL7 OBX segments (ORU^R01, or OBX in ADT messages) and FHIR
Observations, both as `LabData` on an event, through the one path. One row per patient,
test and effective time: a resend or a correction updates its row, and the current value
is the latest by effective time, whatever order the results arrived in.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.events import AdtEvent
from engine.core.lab_codes import NO_RESULT, WITHDRAWN
from engine.storage.models import Encounter, InboundMessage, LabResult, Patient


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
