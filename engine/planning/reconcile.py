"""Reconciling what the rules say now with what is stored: create, update, cancel.

Re-evaluating never duplicates: outputs are keyed by rule, kind and code. An output whose
conditions stopped holding is cancelled with the reason; completed work stays completed and
is not raised again; work a person declined is held back while the decision holds. The
changes are returned; the caller hands new and withdrawn tasks to the work layer
(engine.work.raised).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from engine.core.vocabulary import OutputStatus
from engine.rules.compile import Book
from engine.rules.due import due_time, recurring_due
from engine.rules.outputs import Desired
from engine.rules.snapshot import Snapshot
from engine.storage.models import Encounter, RuleOutput


@dataclass
class Changes:
    created: list[RuleOutput] = field(default_factory=list)
    updated: list[RuleOutput] = field(default_factory=list)
    cancelled: list[RuleOutput] = field(default_factory=list)


def _occurrence(d: Desired, completed: set[str]) -> str:
    """A recurring task's key: the rule's key, then #2, #3... after each completion."""
    done = sum(1 for k in completed if k == d.key or k.startswith(d.key + "#"))
    return f"{d.key}#{done + 1}" if done else d.key


def _due_at(d: Desired, snap: Snapshot, fired_at: datetime, zone, holidays,
            planned: dict[str, datetime] | None = None, current: RuleOutput | None = None):
    if d.due is None:
        return None
    if d.repeat is None:
        return due_time(d.due, snap, fired_at, zone, holidays)
    if d.every_days is None:
        return None
    types = [d.fields["code"], *d.repeat.counts_from]
    last = max((snap.last_completed[t] for t in types if t in snap.last_completed), default=None)
    # Never due before the task it counts from: a continued-stay review follows the initial
    # review (42 CFR 482.30(d)), so while that is open the interval runs from its due time.
    after = max((planned[t] for t in d.repeat.counts_from if planned and t in planned),
                default=None)
    return recurring_due(d.due, d.every_days, last, snap, fired_at, zone, not_before=after,
                         next_review_at=d.repeat.next_review_at,
                         occurrence=current.id if current is not None else None,
                         was_due=current.due_at if current is not None else None)


def _planned(desired: list[Desired], active: dict[str, RuleOutput], snap: Snapshot,
             now: datetime, zone, holidays) -> dict[str, datetime]:
    """Due times, by task type, of the one-off tasks this evaluation keeps or raises that a
    recurring task counts from."""
    wanted = {t for d in desired if d.repeat is not None for t in d.repeat.counts_from}
    planned: dict[str, datetime] = {}
    for d in desired:
        code = d.fields.get("code")
        if d.repeat is not None or code not in wanted:
            continue
        current = active.get(d.key)
        due = _due_at(d, snap, current.fired_at if current is not None else now, zone, holidays)
        if due is not None:
            planned[code] = min(due, planned.get(code, due))
    return planned


_COMPARED = ("title", "severity", "priority", "queue", "value", "due_at", "detail")


def reconcile(session: Session, book: Book, enc: Encounter, snap: Snapshot,
              existing: list[RuleOutput], desired: list[Desired], now: datetime,
              zone, end_reason: str, withheld: dict[str, str] | None = None) -> Changes:
    """`withheld`: {key: why} for outputs a person's decision holds back (cancelled with
    that reason when active, engine.planning.held)."""
    changes = Changes()
    withheld = withheld or {}
    active = {o.key: o for o in existing if o.status == OutputStatus.ACTIVE}
    completed = {o.key for o in existing if o.status == OutputStatus.COMPLETED}
    wanted = set()
    planned = _planned(desired, active, snap, now, zone, book.reference.holidays)
    for d in desired:
        key = _occurrence(d, completed) if d.repeat is not None else d.key
        wanted.add(key)
        current = active.get(key)
        if current is None and key in completed:
            continue
        fired_at = current.fired_at if current is not None else now
        due_at = _due_at(d, snap, fired_at, zone, book.reference.holidays, planned, current)
        values = {**d.fields, "due_at": due_at}
        if current is None:
            row = RuleOutput(encounter=enc, patient=enc.patient, key=key,
                             status=OutputStatus.ACTIVE, ruleset_version=book.version,
                             facts=d.facts, fired_at=now, updated_at=now, version=1, **values)
            session.add(row)
            changes.created.append(row)
            continue
        if any(getattr(current, k) != values[k] for k in _COMPARED) or \
                current.ruleset_version != book.version:
            for k, v in values.items():
                setattr(current, k, v)
            current.ruleset_version = book.version
            current.facts = d.facts
            current.updated_at = now
            current.version += 1
            changes.updated.append(current)
    for key, row in active.items():
        if key not in wanted:
            row.status = OutputStatus.CANCELLED
            row.ended_at = now
            row.end_reason = withheld.get(key.partition("#")[0], end_reason)
            row.updated_at = now
            row.version += 1
            changes.cancelled.append(row)
    return changes
