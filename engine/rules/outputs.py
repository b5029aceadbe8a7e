"""What the rules want to exist after an evaluation: one `Desired` output per action of
every rule that fired, keyed by rule, kind and code (engine.planning.reconcile stores it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.core.vocabulary import OutputKind
from engine.rules import plan, score_detail
from engine.rules.compile import Book, CompiledRule, Template
from engine.rules.matching import Firing
from engine.rules.model import Due, FlagAction, ProposeAction, Repeat, ScoreAction


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
    due: Due | None
    facts: dict[str, Any]
    repeat: Repeat | None = None  # a recurring task's Repeat
    every_days: float | None = None  # its interval, resolved from the facts


def _templates(rule: CompiledRule) -> list[Template]:
    """The static part of every output a rule raises, computed once per compiled book."""
    if rule.templates is None:
        templates: list[Template] = []
        for action in rule.rule.then:
            kind = OutputKind(action.output_kind)
            body = action.body
            fields: dict[str, Any] = {
                "kind": kind, "code": action.code, "rule_id": rule.id,
                "ruleset": rule.ruleset, "title": rule.rule.title, "severity": None,
                "priority": None, "queue": None, "value": None,
                "detail": {"citation": rule.rule.citation},
            }
            due: Due | None = None
            score: ScoreAction | None = None
            repeat: Repeat | None = None
            if isinstance(body, FlagAction):
                fields.update(severity=body.severity, title=body.text)
                if body.label:
                    fields["detail"]["label"] = body.label
            elif isinstance(body, ScoreAction):
                score = body
            elif isinstance(body, ProposeAction):
                fields["detail"].update(reasons=list(body.reasons), confidence=body.confidence)
                if body.rank is not None:
                    fields["detail"]["plan_rank"] = body.rank
                if body.title:
                    fields["title"] = body.title
            else:
                fields.update(title=body.title, priority=body.priority, queue=body.queue)
                fields["detail"]["instructions"] = body.instructions
                if body.after:
                    fields["detail"]["after"] = list(body.after)
                if body.plan:
                    fields["detail"][plan.PLAN_TASK] = {}
                if body.requires_record:
                    fields["detail"]["requires_record"] = body.requires_record
                if body.once_per:
                    fields["detail"]["once_per"] = body.once_per
                due, repeat = body.due, body.repeat
            templates.append((f"{rule.id}/{kind}/{action.code}", fields, due, score, repeat))
        rule.templates = templates
    return rule.templates


def desired_outputs(book: Book, firings: list[Firing], values: dict[str, Any],
                    declined: frozenset[str] = frozenset()) -> list[Desired]:
    """What the firings raise, with the proposed dispositions ranked into one discharge plan
    (engine.rules.plan); `declined` dispositions (a person's decision holds them back) are
    left out of it."""
    out = []
    for firing in firings:
        facts = {k: _json(v) for k, v in firing.facts.items()}
        for key, template, due, score, repeat in _templates(firing.rule):
            fields = {**template, "detail": dict(template["detail"])}
            if score is not None:
                value = values.get(score.fact)
                fields["value"] = float(value) if isinstance(value, int | float) else None
                fields["detail"].update(score_detail.record(
                    score, fields["value"], values, book.reference.charlson))
            once_per = fields["detail"].get("once_per")
            if once_per:  # one task per thing it is about: the key names the fact's value
                about = values.get(once_per)
                key = f"{key}@{about}" if about is not None else key
                fields["detail"]["about"] = _json(about)
            every = None
            if repeat is not None:
                every = repeat.every_days or values.get(repeat.every_days_fact or "")
                every = float(every) if isinstance(every, int | float) and every > 0 else None
            out.append(Desired(key, fields, due, facts, repeat, every))
    return plan.arrange(out, values.get("chosen_disposition"), plan.choices(book),
                        frozenset(values.get("closed_dispositions") or ()) | declined)
