"""The clock: re-evaluate encounters whose next time boundary has passed.

Each encounter is claimed in its own short transaction. On PostgreSQL the claim is a
try-lock on the same advisory lock intake takes for the visit, so several workers never
evaluate one encounter at once and never wait on each other (the SKIP LOCKED idea).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.rules.evaluation import evaluable, evaluate
from engine.rules.rulebook import Rulebook
from engine.storage.locks import try_lock
from engine.storage.models import Encounter

BATCH = 200


def _claim(session: Session, enc_id: int, now: datetime, all_open: bool) -> Encounter | None:
    enc = session.get(Encounter, enc_id)
    if enc is None:
        return None
    if not try_lock(session, f"visit:{enc.visit_system}|{enc.visit_number}"):
        return None
    session.refresh(enc)
    if not all_open and (enc.next_evaluation_at is None or enc.next_evaluation_at > now):
        return None  # someone else got there first
    return enc


def tick(sessions: sessionmaker[Session], rulebook: Rulebook, now: datetime, *,
         all_open: bool = False, progress: Callable[[int], None] | None = None) -> int:
    """Evaluate every due encounter (or every evaluable one) at `now`; return how many."""
    done = 0
    last_id = 0
    while True:
        with sessions() as session:
            query = select(Encounter.id).where(Encounter.id > last_id)
            if all_open:
                query = query.where(evaluable(now))
            else:
                query = query.where(Encounter.next_evaluation_at <= now)
            ids = list(session.scalars(query.order_by(Encounter.id).limit(BATCH)))
        if not ids:
            return done
        for enc_id in ids:
            with sessions() as session, session.begin():
                enc = _claim(session, enc_id, now, all_open)
                if enc is not None and evaluate(session, rulebook, enc, now):
                    done += 1
            if progress is not None:
                progress(1)
        last_id = ids[-1]


def count_due(sessions: sessionmaker[Session], now: datetime, all_open: bool = False) -> int:
    with sessions() as session:
        cond = evaluable(now) if all_open else Encounter.next_evaluation_at <= now
        return session.scalar(select(func.count()).where(cond)) or 0
