"""The clock: re-evaluate encounters whose next time boundary has passed.

Due encounters are claimed in batches, each batch one short transaction: at local
midnight every open stay falls due at once, and reading what a batch needs in one query
per kind (engine.planning.prefetch) is most of the sweep's cost. On PostgreSQL the claim is
the encounter rows taken `FOR UPDATE SKIP LOCKED` plus a try-lock on the advisory lock
intake takes for each visit, so several workers (and serving processes) never evaluate
one encounter at once and never wait on each other; a visit intake holds is left to
intake, which evaluates it as part of its work. SQLite has one writer, so there the
transaction itself is the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.planning.evaluation import evaluable, evaluate
from engine.planning.prefetch import LOAD_FOR_SNAPSHOT, prefetch
from engine.planning.rulebook import Rulebook
from engine.storage.locks import try_lock, visit_lock_key
from engine.storage.models import Encounter


def _due(now: datetime, all_open: bool):
    return evaluable(now) if all_open else Encounter.next_evaluation_at <= now


# Stays per transaction: large enough to amortise the reads, small enough that a message
# for one of them waits at most a few hundred milliseconds for the visit's lock.
BATCH = 25


def _claim(session: Session, after_id: int, now: datetime, all_open: bool,
           batch: int) -> tuple[list[Encounter], int | None]:
    """Up to `batch` due encounters after `after_id` that no other worker holds, locked for
    us, with what their snapshots read; and the last id looked at, None when no due
    encounter is left after these (a short batch is the last one)."""
    rows = session.scalars(
        select(Encounter).where(Encounter.id > after_id, _due(now, all_open))
        .order_by(Encounter.id).limit(batch)
        .options(*LOAD_FOR_SNAPSHOT)
        .with_for_update(skip_locked=True, of=Encounter)  # plain SELECT on SQLite
    ).all()
    if not rows:
        return [], None
    mine = [enc for enc in rows
            if try_lock(session, visit_lock_key(enc.visit_system, enc.visit_number))]
    return mine, rows[-1].id if len(rows) == batch else None


def tick(sessions: sessionmaker[Session], rulebook: Rulebook, now: datetime, *,
         all_open: bool = False, progress: Callable[[int], None] | None = None,
         batch: int = BATCH) -> int:
    """Evaluate every due encounter (or every evaluable one) at `now`; return how many."""
    done = 0
    last_id = 0
    while True:
        with sessions() as session, session.begin():
            encs, last = _claim(session, last_id, now, all_open, batch)
            read = prefetch(session, encs) if encs else None
            for enc in encs:
                if evaluate(session, rulebook, enc, now, read):
                    done += 1
        if progress is not None and encs:
            progress(len(encs))
        if last is None:
            return done
        last_id = last


def count_due(sessions: sessionmaker[Session], now: datetime, all_open: bool = False) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(_due(now, all_open))) or 0
