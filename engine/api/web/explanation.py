"""Why an output exists: its rule, ruleset version, citation and the facts that fired it.

The condition tree is re-read by engine/rules/explain.py's interpreter against the facts the
output recorded when it fired, so the page shows the same "met / not met (actual: ...)"
reasoning as `engine rules explain`, without evaluating the encounter again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.core.vocabulary import OutputStatus
from engine.rules import score_detail
from engine.rules.compile import Book, output_name
from engine.rules.explain import Interpreter, Node, show_value
from engine.rules.facts import FACTS
from engine.storage.models import RuleOutput


@dataclass(frozen=True)
class Fact:
    name: str
    value: str
    description: str


@dataclass
class Explanation:
    rule_id: str
    ruleset: str
    ruleset_version: str
    title: str
    description: str
    citation: str | None
    reasons: list[str]
    instructions: str | None
    facts: list[Fact]
    conditions: Node | None  # None when the rule is no longer loaded
    current: bool  # the loaded rulesets are the version that raised it
    extra: dict[str, Any] = field(default_factory=dict)
    risk: str = ""  # a score's tier and the bands it is one of
    parts: list[str] = field(default_factory=list)  # a score's components in words
    # A person's decline of this work: "declined by X at T: reason; holds until ... change"
    decision: str | None = None


def _risk(detail: dict[str, Any]) -> str:
    """ "intermediate (low 0-4, intermediate 5-6, high 7+)"; older outputs: high or not."""
    if detail.get("tier"):
        return f"{detail['tier']} ({score_detail.tier_ranges(detail.get('tiers'))})"
    if detail.get("high_at") is not None:
        return (f"{'high' if detail.get('high') else 'not high'} "
                f"(high at {detail['high_at']:g} or more)")
    return ""


def recorded_facts(facts: dict[str, Any] | None) -> list[Fact]:
    """The named facts an output recorded (internal predicate keys are left to the tree)."""
    out = []
    for name, value in sorted((facts or {}).items()):
        if "__" in name:
            continue
        spec = FACTS.get(name)
        unit = f" {spec.unit}" if spec and spec.unit and value is not None else ""
        out.append(Fact(name, show_value(value) + unit, spec.description if spec else ""))
    return out


def raised_by(outputs: list[RuleOutput]) -> dict[str, list[str]]:
    """Output names raised on the encounter, for conditions that read other rules' outputs."""
    raised: dict[str, list[str]] = {}
    for o in outputs:
        if o.status in (OutputStatus.ACTIVE, OutputStatus.COMPLETED):
            raised.setdefault(output_name(o.kind, o.code), []).append(o.rule_id)
            raised.setdefault(output_name("rule", o.rule_id), []).append(o.rule_id)
    return raised


def explain_output(output: RuleOutput, book: Book | None,
                   diagnoses: list[tuple[str, str | None]],
                   raised: dict[str, list[str]], decision: str | None = None) -> Explanation:
    detail = output.detail or {}
    rule = None
    if book is not None:
        rule = next((r.rule for r in book.rules if r.id == output.rule_id), None)
    tree = None
    if rule is not None and book is not None:
        tree = Interpreter(book.reference, output.facts or {}, diagnoses, raised).node(rule.when)
    reasons = detail.get("reasons") or []
    return Explanation(
        rule_id=output.rule_id,
        ruleset=output.ruleset,
        ruleset_version=output.ruleset_version,
        title=rule.title if rule else (output.title or output.rule_id),
        description=(rule.description or "").strip() if rule else "",
        citation=detail.get("citation") or (rule.citation if rule else None),
        reasons=[str(r) for r in reasons] if isinstance(reasons, list) else [str(reasons)],
        instructions=detail.get("instructions"),
        facts=recorded_facts(output.facts),
        conditions=tree,
        current=book is not None and book.version == output.ruleset_version,
        extra={k: v for k, v in detail.items() if k in ("confidence", "plan", "chosen")},
        risk=_risk(detail) if output.kind == "score" else "",
        parts=score_detail.component_texts(detail) if output.kind == "score" else [],
        decision=decision,
    )
