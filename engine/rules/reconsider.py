"""Which facts a person's decline rests on, and what they were: a decision about a rule's work
holds while these values stand, and lapses (the work is raised again, once) when one changes.

The default is the stay's care status and the diagnosis codes the rule's conditions matched:
a decline of "Confirm long-term acute care plan" is reconsidered when the patient becomes an
inpatient again after observation, or a new respiratory-failure code arrives, but not as hours
pass, on a transfer or on a new lab. A rule names other facts with `reconsider_when:`. Pure.
"""

from __future__ import annotations

from typing import Any

from engine.core.vocabulary import OutputKind
from engine.rules.compile import Book, CompiledRule, Diagnoses

DIAGNOSES = "diagnoses"  # the codes the rule's diagnosis conditions matched
DEFAULT = ("care_status", DIAGNOSES)


def holds_while(rule: CompiledRule) -> tuple[str, ...]:
    """The facts a decline of this rule's work rests on."""
    named = rule.rule.reconsider_when
    return DEFAULT if named is None else tuple(named)  # []: it holds for the whole stay


def matched_diagnoses(book: Book, rule: CompiledRule, diagnoses: Diagnoses) -> list[str]:
    """The stay's codes that one of the rule's diagnosis conditions matches, sorted."""
    tests = [book.predicates[n].test for n in rule.predicates
             if book.predicates[n].reads_diagnoses]
    return sorted({code for code, kind in diagnoses
                   if any(test({}, [(code, kind)], set()) for test in tests)})


def material(book: Book, rule: CompiledRule, values: dict[str, Any],
             diagnoses: Diagnoses) -> dict[str, Any]:
    """The values a decision records and later compares: {fact: value}, JSON-ready."""
    out: dict[str, Any] = {}
    for name in holds_while(rule):
        if name == DIAGNOSES:
            out[name] = matched_diagnoses(book, rule, diagnoses)
        else:
            value = values.get(name)
            out[name] = sorted(value) if isinstance(value, list | set | frozenset) else value
    return out


def changed(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """The facts whose value differs from what the decision recorded (a fact the rule names
    only since a ruleset change was not recorded, so it cannot have changed)."""
    return sorted(k for k in now if k in recorded and recorded[k] != now[k])


def covers(rule: CompiledRule, declined_key: str, key: str) -> bool:
    """Whether a decline of `declined_key` withholds output `key` of the same rule: itself,
    and for a rule that proposes a transition, its proposal and its tasks together (declining
    "Confirm discharge home" declines the home proposal, and the other way round)."""
    if key == declined_key:
        return True
    family = (OutputKind.PROPOSAL, OutputKind.TASK)
    proposes = any(a.output_kind == OutputKind.PROPOSAL for a in rule.rule.then)
    kinds = (declined_key.split("/")[1:2], key.split("/")[1:2])
    return proposes and all(k and k[0] in family for k in kinds)
