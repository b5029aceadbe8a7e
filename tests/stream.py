"""Synthetic ADT streams and a state snapshot to compare two databases by."""

from __future__ import annotations

import random
import socket

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.hl7.build import adt
from engine.hl7.framing import exchange
from engine.storage.models import Encounter


def hospital_stream(patients: int, seed: int = 7) -> list[bytes]:
    """Admissions, transfers, updates and discharges for `patients` synthetic patients."""
    rng = random.Random(seed)
    units = ["4WEST", "5EAST", "ICU", "3NORTH"]
    out: list[bytes] = []
    for p in range(patients):
        mrn, visit = f"{500000 + p}", f"VS{p:05d}"
        day = 2 + p % 20
        t = [f"202603{day:02d}{h:02d}00" for h in range(8, 20)]
        out.append(adt("A01", t[0], mrn=mrn, visit=visit, admit_time=t[0],
                       location=f"{rng.choice(units)}^{p % 30}^A^GENHOSP"))
        for i in range(rng.randint(0, 2)):
            out.append(adt("A02", t[1 + i], mrn=mrn, visit=visit,
                           location=f"{rng.choice(units)}^{p % 30}^B^GENHOSP"))
        out.append(adt("A08", t[4], mrn=mrn, visit=visit, attending=f"{p % 7}^DOC^TEST"))
        if rng.random() < 0.7:
            out.append(adt("A03", t[6], mrn=mrn, visit=visit, discharge_time=t[6],
                           disposition=rng.choice(["01", "03", "06"])))
    return out


def snapshot(session: Session) -> dict[str, tuple]:
    """What a case manager sees per visit: status, place, history, discharge."""
    state = {}
    for enc in session.scalars(select(Encounter).order_by(Encounter.visit_number)):
        history = tuple(
            (s.unit, s.room, s.bed, s.start, s.end, s.cancelled)
            for s in sorted(enc.locations, key=lambda s: (s.start, s.id))
        )
        state[enc.visit_number] = (
            enc.status, enc.care_status, enc.unit, enc.room, enc.attending_id, enc.admit_time,
            enc.discharge_time, enc.discharge_disposition, history,
        )
    return state


def send(sock: socket.socket, message: bytes, timeout: float = 10) -> bytes:
    """Send one framed message and wait for its framed ACK."""
    return exchange(sock, message, timeout)
