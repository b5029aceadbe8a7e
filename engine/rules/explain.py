"""Why a rule fired or did not: the condition tree re-read in Python, leaf by leaf.

durable_rules answers only "which rules matched", so explanations come from a small
interpreter of the same condition tree with the same three-valued semantics as
engine/rules/compile.py: a comparison on an unknown fact is *unknown*, `not unknown` is still
unknown, and a rule fires only when its condition is known to hold. (Strong Kleene logic on
the tree is the same as compile.py's "push `not` to the leaves, unknown leaves are false".)
A differential test holds the two to each other over random facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.rules.compile import Book, Diagnoses, output_name
from engine.rules.facts import FACTS
from engine.rules.loader import RulesetFile
from engine.rules.model import (
    Action,
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    DiagnosisCondition,
    FlagAction,
    NotOf,
    OutputCondition,
    Rule,
    ScoreAction,
    TaskAction,
)
from engine.rules.reference import CodeSet, Reference

Truth = bool | None  # None: unknown
Status = Literal["fired", "not fired", "disabled"]

_WORDS = {
    "equals": "equals", "not_equals": "does not equal", "in_": "is one of",
    "not_in": "is none of", "greater_than": "greater than", "at_least": "at least",
    "less_than": "less than", "at_most": "at most", "between": "between",
    "matches": "matches", "contains": "contains", "is_set": "is known",
}


@dataclass
class Node:
    """One condition with its truth here; leaves also say what they compared."""

    text: str
    truth: Truth
    actual: str | None = None  # leaves: the value the condition read, or "unknown"
    children: list[Node] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"condition": self.text, "holds": self.truth}
        if self.actual is not None:
            out["actual"] = self.actual
        if self.children:
            out["children"] = [c.as_dict() for c in self.children]
        return out


@dataclass
class Explanation:
    rule: Rule
    source: RulesetFile
    status: Status
    would_fire: bool  # for disabled rules: what it would do if enabled
    layer: int | None
    tree: Node

    @property
    def ruleset(self) -> str:
        return self.source.model.name

    @property
    def line(self) -> int:
        return self.source.rule_line(self.rule.id)

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.id, "ruleset": self.ruleset, "title": self.rule.title,
                "file": str(self.source.path), "line": self.line, "status": self.status,
                "would_fire": self.would_fire, "layer": self.layer,
                "then": [describe_action(a) for a in self.rule.then],
                "when": self.tree.as_dict()}


def show_value(value: Any) -> str:
    """A fact value as people read it: true/false, 2 decimals, "unknown" for missing."""
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show_value(v) for v in value) + "]" if value else "[] (none)"
    return str(value)


def _operand(op: str, value: Any) -> str:
    if op == "between":
        return f"{show_value(value[0])} and {show_value(value[1])}"
    if op == "matches":
        return f"/{value}/"
    if op == "is_set":
        return ""
    return show_value(value)


def _and(values: list[Truth]) -> Truth:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or(values: list[Truth]) -> Truth:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def compare(cond: Comparison, value: Any) -> Truth:
    """One comparison, as compile.py means it: unknown when the fact is unknown."""
    op, x = cond.operator, cond.operand
    if op == "is_set":
        return (value is not None) == x
    if value is None:
        return None
    try:
        # A fact value is whatever the catalogue derived (Any); its comparisons are bools.
        if op == "equals":
            return bool(value == x)
        if op == "not_equals":
            return bool(value != x)
        if op == "in_":
            assert isinstance(x, list)  # the model holds in / not_in as lists
            return value in x
        if op == "not_in":
            assert isinstance(x, list)
            return value not in x
        if op == "greater_than":
            return bool(value > x)
        if op == "at_least":
            return bool(value >= x)
        if op == "less_than":
            return bool(value < x)
        if op == "at_most":
            return bool(value <= x)
        if op == "between":
            assert isinstance(x, tuple)  # [low, high]
            return bool(x[0] <= value <= x[1])
        if op == "matches":
            return re.search(str(x), str(value)) is not None
        if op == "contains":
            return x in value
    except (TypeError, re.error):
        return None
    raise ValueError(f"unknown operator {op}")


class Interpreter:
    """Evaluates condition trees against one set of facts, diagnoses and raised outputs."""

    def __init__(self, reference: Reference, values: dict[str, Any],
                 diagnoses: Diagnoses, raised: dict[str, list[str]]) -> None:
        self.reference = reference
        self.values = values
        self.diagnoses = diagnoses
        self.raised = raised  # output name -> ids of the rules that raised it

    def node(self, cond: Condition) -> Node:
        if isinstance(cond, AllOf | AnyOf):
            is_all = isinstance(cond, AllOf)
            children = [self.node(c) for c in (cond.all if isinstance(cond, AllOf) else cond.any)]
            truths = [c.truth for c in children]
            return Node("all of" if is_all else "any of",
                        _and(truths) if is_all else _or(truths), None, children)
        if isinstance(cond, NotOf):
            child = self.node(cond.not_)
            return Node("not", None if child.truth is None else not child.truth, None, [child])
        if isinstance(cond, DiagnosisCondition):
            return self._diagnosis(cond)
        if isinstance(cond, OutputCondition):
            ref = cond.output
            by = self.raised.get(output_name(ref.kind, ref.name), [])
            return Node(f"{ref.kind} {ref.name} is raised", bool(by),
                        f"raised by {', '.join(by)}" if by else "not raised")
        return self._comparison(cond)

    def _comparison(self, cond: Comparison) -> Node:
        op = cond.operator
        words = _WORDS[op]
        if op == "is_set" and cond.operand is False:
            words = "is unknown"
        text = f"{cond.fact} {words} {_operand(op, cond.operand)}".rstrip()
        spec = FACTS.get(cond.fact)
        if spec is None:
            return Node(text, None, "not in the fact catalogue")
        value = self.values.get(cond.fact)
        actual = show_value(value) + (f" {spec.unit}" if spec.unit and value is not None else "")
        return Node(text, compare(cond, value), actual)

    def _diagnosis(self, cond: DiagnosisCondition) -> Node:
        match = cond.diagnosis
        prefixes = list(CodeSet.of(match.codes or []).prefixes)
        label = ", ".join(match.codes or [])
        if match.value_set:
            label = (label + " or " if label else "") + f"value set {match.value_set}"
            found = self.reference.value_sets.get(match.value_set)
            if found is None:
                return Node(f"a diagnosis in {label}", None, "unknown value set")
            prefixes += found.prefixes
        codes = CodeSet(tuple(sorted(set(prefixes))))
        types = set(match.types or [])
        text = f"a diagnosis in {label}" + (f" (types {', '.join(sorted(types))})"
                                            if types else "")
        hits = [f"{code}" + (f" ({t})" if t else "") for code, t in self.diagnoses
                if codes.matches(code) and (not types or t in types)]
        if hits:
            return Node(text, True, "found " + ", ".join(hits))
        listed = ", ".join(code + (f" ({t})" if t else "") for code, t in self.diagnoses)
        return Node(text, False, f"none of {listed}" if listed else "no diagnoses")


def describe_action(action: Action) -> str:
    body = action.body
    if isinstance(body, TaskAction):
        return f"task {body.type} ({body.priority}, queue {body.queue or '?'})"
    if isinstance(body, FlagAction):
        return f"flag {body.code} ({body.severity})"
    if isinstance(body, ScoreAction):
        return f"score {body.name} from {body.fact}"
    return f"proposal {body.transition}"


def _raise(raised: dict[str, list[str]], rule: Rule) -> None:
    raised.setdefault(output_name("rule", rule.id), []).append(rule.id)
    for action in rule.then:
        kind = action.output_kind
        raised.setdefault(output_name(kind, action.code), []).append(rule.id)


def explain(book: Book, values: dict[str, Any], diagnoses: Diagnoses) -> list[Explanation]:
    """Every rule of every loaded file, in file order, with its condition tree evaluated.

    Enabled rules run layer by layer, as in the Matcher, so a rule reading another rule's
    output sees exactly what that layer saw; disabled rules are shown against everything
    the enabled rules raised.
    """
    raised: dict[str, list[str]] = {}
    results: dict[str, tuple[Node, int]] = {}
    for n, layer in enumerate(book.layers):
        nodes = {r.id: Interpreter(book.reference, values, diagnoses, raised).node(r.rule.when)
                 for r in layer}
        for r in layer:
            results[r.id] = (nodes[r.id], n)
            if nodes[r.id].truth is True:
                _raise(raised, r.rule)
    out = []
    for source in book.files:
        for rule in source.model.rules:
            if rule.id in results:
                tree, layer_no = results[rule.id]
                fired = tree.truth is True
                out.append(Explanation(rule, source, "fired" if fired else "not fired", fired,
                                       layer_no, tree))
            else:
                tree = Interpreter(book.reference, values, diagnoses, raised).node(rule.when)
                out.append(Explanation(rule, source, "disabled", tree.truth is True, None, tree))
    return out


def fires(book: Book, values: dict[str, Any], diagnoses: Diagnoses) -> set[str]:
    """The ids of the enabled rules the interpreter says fire (for the differential test)."""
    return {e.rule.id for e in explain(book, values, diagnoses) if e.status == "fired"}


def render(explanations: list[Explanation], *, only: set[str] | None = None,
           held: dict[str, str] | None = None) -> list[str]:
    """Plain text, one rule after another: status, id, title, then each condition;
    `held`: {rule id: the decision} for rules whose work a person's decline holds back."""
    lines: list[str] = []
    current = None
    for e in explanations:
        if only is not None and e.rule.id not in only:
            continue
        if e.source is not current:
            current = e.source
            lines += ["", f"{e.ruleset} {e.source.model.version}  ({e.source.path})"]
        status = e.status.upper()
        if e.status == "disabled":
            status += " (would fire)" if e.would_fire else " (would not fire)"
        lines.append(f"  {status}  {e.rule.id}: {e.rule.title}  [line {e.line}]")
        lines += _tree_lines(e.tree, 0)
        verb = "raised" if e.status == "fired" else "would raise"
        lines.append(f"      {verb}: " + "; ".join(describe_action(a) for a in e.rule.then))
        if held and e.rule.id in held:
            lines.append(f"      held back: {held[e.rule.id]}")
    return lines


def _tree_lines(node: Node, depth: int) -> list[str]:
    mark = {True: "met    ", False: "not met", None: "unknown"}[node.truth]
    text = f"      {mark}  {'  ' * depth}{node.text}"
    if node.actual is not None:
        text += f"  (actual: {node.actual})"
    elif node.children:
        text += ":"
    out = [text]
    for child in node.children:
        out += _tree_lines(child, depth + 1)
    return out
