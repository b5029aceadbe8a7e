"""Where the one path and the clock call the rules: after events, and when time passes."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine.core.vocabulary import OPEN_ENCOUNTER_STATUSES, EncounterStatus
from engine.planning.prefetch import Prefetched
from engine.planning.rulebook import POST_DISCHARGE_HORIZON, Rulebook
from engine.storage.models import Encounter, RuleOutput

log = logging.getLogger("engine.rules")
RETRY_AFTER_ERROR = timedelta(minutes=5)


def evaluate(session: Session, rulebook: Rulebook, enc: Encounter, now: datetime,
             read: Prefetched | None = None) -> bool:
    """Evaluate one encounter; an error is logged and retried later, never raised.

    The triggering message is already applied: a bug in a rule or fact must not lose it.
    """
    try:
        rulebook.evaluate_encounter(session, enc, now, read=read)
        return True
    except SQLAlchemyError:
        raise
    except Exception as exc:  # noqa: BLE001 - isolate rule errors from intake
        where = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("rule evaluation failed for encounter id=%s: %s at %s:%s (retry in 5 min)",
                  enc.id, type(exc).__name__, where.filename, where.lineno)
        enc.next_evaluation_at = now + RETRY_AFTER_ERROR
        return False


def after_work(session: Session, rulebook: Rulebook | None, task: RuleOutput,
               now: datetime) -> None:
    """Re-evaluate a task's stay after a person changed it (the rules read its status)."""
    if rulebook is None:
        return
    session.flush()  # the rules read the task's new status from the database
    evaluate(session, rulebook, task.encounter, now)


def after_events(session: Session, rulebook: Rulebook, applied: Iterable, now: datetime) -> None:
    """Re-evaluate what the input changed: its encounter, or a patient's open encounters."""
    seen: set[int] = set()
    for item in applied:
        if item.encounter is not None:
            targets = [item.encounter]
        elif item.patient.id is None:
            targets = []  # a new person has no encounters yet
        else:
            session.flush()  # a merge moved encounters: let the query see them
            targets = list(session.scalars(select(Encounter).where(
                Encounter.patient_id == item.patient.id,
                Encounter.status.in_(OPEN_ENCOUNTER_STATUSES))))
        for enc in targets:
            if id(enc) not in seen:
                seen.add(id(enc))
                evaluate(session, rulebook, enc, now)


def evaluable(now: datetime):
    """Encounters rules still care about: open ones, and recent discharges."""
    return or_(Encounter.status.in_(OPEN_ENCOUNTER_STATUSES),
               (Encounter.status == EncounterStatus.FINISHED)
               & (Encounter.discharge_time >= now - POST_DISCHARGE_HORIZON))
