"""The clock: re-evaluate encounters whose next time boundary has passed.

Each encounter is claimed in its own short transaction. On PostgreSQL the claim is the
encounter row taken `FOR UPDATE SKIP LOCKED` plus a try-lock on the advisory lock intake
takes for the visit, so several workers (and serving processes) never evaluate one
encounter at once and never wait on each other. SQLite has one writer, so there the
transaction itself is the claim.
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


def _due(now: datetime, all_open: bool):
    return evaluable(now) if all_open else Encounter.next_evaluation_at <= now


def _claim(session: Session, after_id: int, now: datetime,
           all_open: bool) -> Encounter | None:
    """The next due encounter after `after_id` that no other worker holds, locked for us."""
    while True:
        enc = session.scalars(
            select(Encounter).where(Encounter.id > after_id, _due(now, all_open))
            .order_by(Encounter.id).limit(1)
            .with_for_update(skip_locked=True)  # plain SELECT on SQLite
        ).first()
        if enc is None:
            return None
        if try_lock(session, f"visit:{enc.visit_system}|{enc.visit_number}"):
            return enc
        after_id = enc.id  # intake holds the visit and evaluates it as part of its work


def tick(sessions: sessionmaker[Session], rulebook: Rulebook, now: datetime, *,
         all_open: bool = False, progress: Callable[[int], None] | None = None) -> int:
    """Evaluate every due encounter (or every evaluable one) at `now`; return how many."""
    done = 0
    last_id = 0
    while True:
        with sessions() as session, session.begin():
            enc = _claim(session, last_id, now, all_open)
            if enc is None:
                return done
            last_id = enc.id
            if evaluate(session, rulebook, enc, now):
                done += 1
        if progress is not None:
            progress(1)


def count_due(sessions: sessionmaker[Session], now: datetime, all_open: bool = False) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(_due(now, all_open))) or 0
