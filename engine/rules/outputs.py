"""Reconciling what the rules say now with what is stored: create, update, cancel.

Re-evaluating never duplicates: outputs are keyed by rule, kind and code. An output whose
conditions stopped holding is cancelled with the reason; completed work stays completed and
is not raised again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.rules.compile import Book, CompiledRule
from engine.rules.due import due_time, recurring_due
from engine.rules.evaluate import Firing
from engine.rules.snapshot import Snapshot
from engine.storage.models import Encounter, RuleOutput


@dataclass
class Changes:
    created: list[RuleOutput] = field(default_factory=list)
    updated: list[RuleOutput] = field(default_factory=list)
    cancelled: list[RuleOutput] = field(default_factory=list)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float):
        return round(value, 3)
    return value


@dataclass
class Desired:
    key: str
    fields: dict[str, Any]
    due: Any
    facts: dict[str, Any]
    repeat: Any = None  # a recurring task's Repeat
    every_days: float | None = None  # its interval, resolved from the facts


def _templates(rule: CompiledRule) -> list[tuple[str, dict[str, Any], Any, Any, Any]]:
    """The static part of every output a rule raises, computed once per compiled book."""
    if rule.templates is None:
        templates = []
        for action in rule.rule.then:
            kind = action.output_kind
            body = action.body
            fields: dict[str, Any] = {
                "kind": kind, "code": action.code, "rule_id": rule.id,
                "ruleset": rule.ruleset, "title": rule.rule.title, "severity": None,
                "priority": None, "queue": None, "value": None,
                "detail": {"citation": rule.rule.citation},
            }
            due = score = None
            if kind == "flag":
                fields.update(severity=body.severity, title=body.text)
            elif kind == "score":
                score = body
            elif kind == "proposal":
                fields["detail"].update(reasons=list(body.reasons), confidence=body.confidence)
                fields["title"] = f"Propose {body.transition.replace('_', ' ')}"
            else:
                fields.update(title=body.title, priority=body.priority, queue=body.queue)
                fields["detail"]["instructions"] = body.instructions
                due = body.due
            templates.append((f"{rule.id}/{kind}/{action.code}", fields, due, score,
                              body.repeat if kind == "task" else None))
        rule.templates = templates
    return rule.templates


def desired_outputs(book: Book, firings: list[Firing], values: dict[str, Any]) -> list[Desired]:
    out = []
    for firing in firings:
        facts = {k: _json(v) for k, v in firing.facts.items()}
        for key, template, due, score, repeat in _templates(firing.rule):
            fields = {**template, "detail": dict(template["detail"])}
            if score is not None:
                value = values.get(score.fact)
                fields["value"] = float(value) if isinstance(value, int | float) else None
                fields["detail"].update(
                    components={c: values.get(c) for c in score.components},
                    high=score.high_at is not None and fields["value"] is not None
                    and fields["value"] >= score.high_at, high_at=score.high_at)
            every = None
            if repeat is not None:
                every = repeat.every_days or values.get(repeat.every_days_fact or "")
                every = float(every) if isinstance(every, int | float) and every > 0 else None
            out.append(Desired(key, fields, due, facts, repeat, every))
    return out


def _occurrence(d: Desired, completed: set[str]) -> str:
    """A recurring task's key: the rule's key, then #2, #3... after each completion."""
    done = sum(1 for k in completed if k == d.key or k.startswith(d.key + "#"))
    return f"{d.key}#{done + 1}" if done else d.key


def _due_at(d: Desired, snap: Snapshot, fired_at: datetime, zone, holidays):
    if d.due is None:
        return None
    if d.repeat is None:
        return due_time(d.due, snap, fired_at, zone, holidays)
    if d.every_days is None:
        return None
    types = [d.fields["code"], *d.repeat.counts_from]
    last = max((snap.last_completed[t] for t in types if t in snap.last_completed), default=None)
    return recurring_due(d.due, d.every_days, last, snap, fired_at, zone)


_COMPARED = ("title", "severity", "priority", "queue", "value", "due_at", "detail")


def reconcile(session: Session, book: Book, enc: Encounter, snap: Snapshot,
              existing: list[RuleOutput], desired: list[Desired], now: datetime,
              zone, end_reason: str) -> Changes:
    changes = Changes()
    active = {o.key: o for o in existing if o.status == "active"}
    completed = {o.key for o in existing if o.status == "completed"}
    wanted = set()
    for d in desired:
        key = _occurrence(d, completed) if d.repeat is not None else d.key
        wanted.add(key)
        current = active.get(key)
        if current is None and key in completed:
            continue
        fired_at = current.fired_at if current is not None else now
        due_at = _due_at(d, snap, fired_at, zone, book.reference.holidays)
        values = {**d.fields, "due_at": due_at}
        if current is None:
            row = RuleOutput(encounter=enc, patient=enc.patient, key=key,
                             status="active", ruleset_version=book.version, facts=d.facts,
                             fired_at=now, updated_at=now, version=1, **values)
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
            row.status = "cancelled"
            row.ended_at = now
            row.end_reason = end_reason
            row.updated_at = now
            row.version += 1
            changes.cancelled.append(row)
    if changes.created or changes.cancelled:
        from engine.tasks.raised import follow  # work on tasks builds on the rules

        follow(session, enc, changes.created, changes.cancelled, now)
    return changes
