"""Compiling rulesets to durable_rules definitions, with the checks that keep them sound.

Comparisons on scalar facts become durable_rules conditions (`$gt`, `$lte`, `$or`...);
what durable_rules cannot express (ICD-10 prefix matching, regular expressions, list
membership, "is known", other rules' outputs) becomes a named boolean computed in Python and
asserted beside the facts. `not` is pushed down to the leaves (De Morgan), so an unknown fact
leaves a comparison and its negation both false: rules never fire on missing data.

Rules that read other rules' outputs are layered: layer 0 reads facts only, layer n reads
outputs of layers below n. A cycle is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.rules.facts import FACTS
from engine.rules.loader import Problem, RulesetError, RulesetFile, YamlPath
from engine.rules.model import (
    AllOf,
    AnyOf,
    Comparison,
    Condition,
    DiagnosisCondition,
    Due,
    NotOf,
    OutputCondition,
    Repeat,
    Rule,
    ScoreAction,
    TaskAction,
)
from engine.rules.reference import CodeSet, Reference

_NUMERIC_OPS = {"greater_than", "at_least", "less_than", "at_most", "between"}
_NEGATE = {"greater_than": "$lte", "at_least": "$lt", "less_than": "$gte", "at_most": "$gt"}
_AFFIRM = {"greater_than": "$gt", "at_least": "$gte", "less_than": "$lt", "at_most": "$lte"}

# The encounter's diagnoses as (ICD-10 code, DG1-6 type) pairs.
Diagnoses = list[tuple[str, str | None]]
# What an action raises, built once (engine.rules.outputs): key, fields, due, score, repeat.
Template = tuple[str, dict[str, Any], Due | None, ScoreAction | None, Repeat | None]


@dataclass(frozen=True)
class Predicate:
    """A boolean computed in Python before assertion; None means "unknown"."""

    name: str
    describe: str
    test: Callable[[dict[str, Any], Diagnoses, set[str]], bool | None]
    layer_dependent: bool = False
    reads_diagnoses: bool = False  # a diagnosis match: which codes it matched is a fact


@dataclass
class CompiledRule:
    rule: Rule
    source: RulesetFile
    layer: int = 0
    facts: set[str] = field(default_factory=set)
    predicates: set[str] = field(default_factory=set)
    definition: dict[str, Any] = field(default_factory=dict)
    templates: list[Template] | None = None

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def ruleset(self) -> str:
        return self.source.model.name


@dataclass
class Book:
    """Every loaded ruleset, compiled: what one evaluation runs through."""

    rules: list[CompiledRule]
    layers: list[list[CompiledRule]]
    predicates: dict[str, Predicate]
    reference: Reference
    version: str
    # (fact, operator, threshold) for hourly facts: when a condition flips as time passes.
    thresholds: list[tuple[str, str, float]]
    # Facts the rules read that change at a local midnight (catalogue "daily", and age).
    daily_facts: frozenset[str]
    files: list[RulesetFile]

    def definitions(self) -> dict[str, dict[str, Any]]:
        """durable_rules ruleset definitions, one per layer, named by content version."""
        out: dict[str, dict[str, Any]] = {}
        for n, layer in enumerate(self.layers):
            out[self.layer_name(n)] = {r.id: {**r.definition, "run": r.id} for r in layer}
        return out

    def layer_name(self, n: int) -> str:
        return f"book_{self.version}_L{n}"

    def rule(self, rule_id: str) -> CompiledRule:
        return next(r for r in self.rules if r.id == rule_id)


def output_name(kind: str, name: str) -> str:
    return f"out__{kind}__{name}"


class _Compiler:
    def __init__(self, source: RulesetFile, rule: Rule, index: int, ref: Reference,
                 predicates: dict[str, Predicate], problems: list[Problem]) -> None:
        self.source = source
        self.rule = rule
        self.index = index
        self.ref = ref
        self.predicates = predicates
        self.problems = problems
        self.compiled = CompiledRule(rule, source)
        self.outputs: list[tuple[str, str]] = []

    def problem(self, message: str, *path: str | int) -> None:
        line = self.source.line_of("rules", self.index, *path)
        self.problems.append(Problem(self.source.path, line, self.rule.id, message))

    def predicate(self, pred: Predicate) -> dict[str, Any]:
        self.predicates.setdefault(pred.name, pred)
        self.compiled.predicates.add(pred.name)
        return {pred.name: True}

    def expr(self, cond: Condition, negate: bool, path: YamlPath) -> dict[str, Any]:
        if isinstance(cond, AllOf | AnyOf):
            items = cond.all if isinstance(cond, AllOf) else cond.any
            key = "all" if isinstance(cond, AllOf) else "any"
            parts = [self.expr(c, negate, (*path, key, i)) for i, c in enumerate(items)]
            conj = isinstance(cond, AllOf) != negate
            return parts[0] if len(parts) == 1 else {"$and" if conj else "$or": parts}
        if isinstance(cond, NotOf):
            return self.expr(cond.not_, not negate, (*path, "not"))
        if isinstance(cond, DiagnosisCondition):
            return self._flip(self.predicate(self._diagnosis(cond, path)), negate)
        if isinstance(cond, OutputCondition):
            ref = cond.output
            self.outputs.append((ref.kind, ref.name))
            name = output_name(ref.kind, ref.name)
            pred = Predicate(name, f"{ref.kind} {ref.name} is raised",
                             lambda _v, _d, raised: name in raised, layer_dependent=True)
            return self._flip(self.predicate(pred), negate)
        return self._comparison(cond, negate, path)

    @staticmethod
    def _flip(expr: dict[str, Any], negate: bool) -> dict[str, Any]:
        if not negate:
            return expr
        ((name, value),) = expr.items()
        return {name: not value}

    def _diagnosis(self, cond: DiagnosisCondition, path: YamlPath) -> Predicate:
        match = cond.diagnosis
        codes: list[str] = list(match.codes or [])
        prefixes = CodeSet.of(codes).prefixes
        if match.value_set:
            found = self.ref.value_sets.get(match.value_set)
            if found is None:
                self.problem(f"unknown value set {match.value_set!r} (rulesets/reference/"
                             "value_sets/)", *path, "diagnosis", "value_set")
            else:
                prefixes += found.prefixes
        codeset = CodeSet(tuple(sorted(set(prefixes))))
        types = frozenset(match.types or [])
        label = ",".join(match.codes or []) + (f" value set {match.value_set}"
                                                if match.value_set else "")
        name = "dx__" + hashlib.sha1(f"{codeset.prefixes}{sorted(types)}".encode()).hexdigest()[:10]

        def test(_v: dict[str, Any], diagnoses: Diagnoses, _raised: set[str]) -> bool:
            return any((not types or t in types) and codeset.matches(code)
                       for code, t in diagnoses)

        return Predicate(name, f"a diagnosis matches {label}"
                         + (f" (types {','.join(sorted(types))})" if types else ""), test,
                         reads_diagnoses=True)

    def _comparison(self, cond: Comparison, negate: bool, path: YamlPath) -> dict[str, Any]:
        spec = FACTS.get(cond.fact)
        op, value = cond.operator, cond.operand
        if spec is None:
            self.problem(f"unknown fact {cond.fact!r} (see `engine rules facts`)", *path, "fact")
            return {"unknown": True}
        self.compiled.facts.add(cond.fact)
        if op in _NUMERIC_OPS and spec.type != "number":
            self.problem(f"{op} needs a number fact; {cond.fact} is {spec.type}", *path)
        if op in ("contains",) and spec.type != "list":
            self.problem(f"contains needs a list fact; {cond.fact} is {spec.type}", *path)
        if spec.type == "list" and op not in ("contains", "is_set"):
            self.problem(f"{cond.fact} is a list: use contains", *path)
        if op in ("equals", "not_equals", "in_", "not_in"):
            # durable_rules would coerce "2" to 2 where Python would not: refuse the mix.
            for item in value if isinstance(value, list) else [value]:
                if not _fits(spec.type, item):
                    self.problem(_MISFIT[spec.type].format(fact=cond.fact, value=item), *path)
        fact = cond.fact
        if op in _AFFIRM:
            return {(_NEGATE if negate else _AFFIRM)[op]: {fact: value}}
        if op == "between":
            assert isinstance(value, tuple)  # the model holds between as [low, high]
            low, high = value
            if low > high:
                self.problem(f"between [{low}, {high}] is empty: it can never hold", *path)
            if negate:
                return {"$or": [{"$lt": {fact: low}}, {"$gt": {fact: high}}]}
            return {"$and": [{"$gte": {fact: low}}, {"$lte": {fact: high}}]}
        if op in ("equals", "not_equals"):
            positive = (op == "equals") != negate
            return {fact: value} if positive else {"$neq": {fact: value}}
        if op in ("in_", "not_in"):
            positive = (op == "in_") != negate
            assert isinstance(value, list)  # the model holds in / not_in as lists
            if not value:
                self.problem("an empty list can never match", *path)
                return {"unknown": True}
            parts = [{fact: v} if positive else {"$neq": {fact: v}} for v in value]
            return parts[0] if len(parts) == 1 else {"$or" if positive else "$and": parts}
        if op == "matches":
            try:
                pattern = re.compile(str(value))
            except re.error as exc:
                self.problem(f"bad regular expression {value!r}: {exc}", *path, "matches")
                return {"unknown": True}
            name = "re__" + hashlib.sha1(f"{fact}\0{value!r}".encode()).hexdigest()[:10]
            pred = Predicate(name, f"{fact} matches /{value}/",
                             lambda v, _d, _r: None if v.get(fact) is None
                             else bool(pattern.search(str(v[fact]))))
            return self._flip(self.predicate(pred), negate)
        if op == "contains":
            name = "has__" + hashlib.sha1(f"{fact}\0{value!r}".encode()).hexdigest()[:10]
            pred = Predicate(name, f"{fact} contains {value!r}",
                             lambda v, _d, _r: None if v.get(fact) is None
                             else value in v[fact])
            return self._flip(self.predicate(pred), negate)
        # is_set
        name = f"set__{fact}"
        pred = Predicate(name, f"{fact} is known",
                         lambda v, _d, _r: v.get(fact) is not None)
        return self._flip(self.predicate(pred), negate != (value is False))


_MISFIT = {
    "number": "{fact} is a number; {value!r} is not (remove the quotes)",
    "text": "{fact} is text; {value!r} is not (put it in quotes)",
    "boolean": "{fact} is true or false; {value!r} is neither",
}


def _fits(fact_type: str, value: Any) -> bool:
    """Whether a literal in a rule has the fact's type (YAML reads 291 as a number)."""
    if fact_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if fact_type == "text":
        return isinstance(value, str)
    if fact_type == "boolean":
        return isinstance(value, bool)
    return True


def _lint_actions(c: _Compiler) -> None:
    seen: set[tuple[str, str]] = set()
    for i, action in enumerate(c.rule.then):
        if (action.kind, action.code) in seen:
            c.problem(f"two {action.kind} actions with code {action.code!r}: outputs are "
                      "keyed by rule, kind and code, so one would overwrite the other",
                      "then", i)
        seen.add((action.kind, action.code))
        if action.kind == "task":
            task = action.task
            assert task is not None
            if task.due is None:
                c.problem(f"task {task.type!r} has no due time", "then", i, "task")
            if not task.queue:
                c.problem(f"task {task.type!r} has no queue (who does the work?)",
                          "then", i, "task")
            if task.repeat is not None:
                _lint_repeat(c, task, i)
            _lint_once_per(c, task, i)
            if task.type in task.after:
                c.problem(f"task {task.type!r} comes after itself", "then", i, "task", "after")
        if action.kind == "score":
            score = action.score
            assert score is not None
            parts = score.parts
            names = [score.fact, *(p.fact for p in parts),
                     *(p.points for p in parts if p.points)]
            for name in names:
                if name not in FACTS:
                    c.problem(f"score {score.name!r} names unknown fact {name!r}",
                              "then", i, "score")
            for part in parts:
                if part.items and part.fact in FACTS and FACTS[part.fact].type != "list":
                    c.problem(f"score {score.name!r}: items needs a list fact; {part.fact} is "
                              f"{FACTS[part.fact].type}", "then", i, "score")


def _lint_once_per(c: _Compiler, task: TaskAction, i: int) -> None:
    name = task.once_per
    if name is None:
        return
    if name not in FACTS:
        c.problem(f"task {task.type!r}: once_per names unknown fact {name!r} (see `engine "
                  "rules facts`)", "then", i, "task", "once_per")
    elif FACTS[name].varies in ("hourly", "due") or FACTS[name].type == "list":
        c.problem(f"task {task.type!r}: once_per needs a fact that names one thing and holds "
                  f"still; {name} {'is a list' if FACTS[name].type == 'list' else 'moves'}",
                  "then", i, "task", "once_per")
    elif task.repeat is not None:
        c.problem(f"task {task.type!r}: once_per and repeat do not go together", "then", i,
                  "task", "once_per")


def _lint_reconsider(c: _Compiler) -> None:
    for name in c.rule.reconsider_when or []:
        if name != "diagnoses" and name not in FACTS:
            c.problem(f"reconsider_when names unknown fact {name!r} (a fact from `engine rules "
                      "facts`, or diagnoses)", "reconsider_when")
        elif name in FACTS and FACTS[name].varies == "hourly":
            c.problem(f"reconsider_when names {name!r}, which changes as time passes: a "
                      "decision would lapse at the next evaluation", "reconsider_when")


def _lint_repeat(c: _Compiler, task: TaskAction, i: int) -> None:
    repeat, due = task.repeat, task.due
    assert repeat is not None  # the caller lints recurring tasks only
    if due is not None and (due.hours or due.midnights or due.business_days or due.or_sooner):
        c.problem(f"recurring task {task.type!r}: its due names only `after` (the first one is "
                  "due `every` days after it)", "then", i, "task", "due")
    name = repeat.every_days_fact
    if name is not None and (name not in FACTS or FACTS[name].type != "number"):
        c.problem(f"recurring task {task.type!r}: every_days_fact {name!r} is not a number "
                  "fact", "then", i, "task", "repeat")


def _contradictions(c: _Compiler, cond: Condition, path: YamlPath) -> None:
    """Flag conjunctions that can never hold: equals a and equals b, ranges that miss."""
    if not isinstance(cond, AllOf):
        for key, items in (("any", getattr(cond, "any", None)),):
            for i, sub in enumerate(items or []):
                _contradictions(c, sub, (*path, key, i))
        return
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    equal: dict[str, Any] = {}
    for i, sub in enumerate(cond.all):
        _contradictions(c, sub, (*path, "all", i))
        if not isinstance(sub, Comparison):
            continue
        op, v, f = sub.operator, sub.operand, sub.fact
        if op == "equals":
            if f in equal and equal[f] != v:
                c.problem(f"{f} cannot equal both {equal[f]!r} and {v!r}: the rule can never "
                          "fire", *path)
            equal[f] = v
        elif op in ("greater_than", "at_least"):
            assert isinstance(v, int | float)  # the model holds a number here
            low[f] = max(low.get(f, float("-inf")), float(v))
        elif op in ("less_than", "at_most"):
            assert isinstance(v, int | float)
            high[f] = min(high.get(f, float("inf")), float(v))
        elif op == "between":
            assert isinstance(v, tuple)  # [low, high]
            low[f] = max(low.get(f, float("-inf")), float(v[0]))
            high[f] = min(high.get(f, float("inf")), float(v[1]))
    for f in low.keys() & high.keys():
        if low[f] > high[f]:
            c.problem(f"{f} cannot be both >= {low[f]:g} and <= {high[f]:g}: the rule can "
                      "never fire", *path)


def _thresholds(cond: Condition, out: list[tuple[str, str, float]]) -> None:
    if isinstance(cond, AllOf | AnyOf):
        for sub in cond.all if isinstance(cond, AllOf) else cond.any:
            _thresholds(sub, out)
    elif isinstance(cond, NotOf):
        _thresholds(cond.not_, out)
    elif isinstance(cond, Comparison):
        spec = FACTS.get(cond.fact)
        if spec and spec.varies == "hourly":
            op, v = cond.operator, cond.operand
            if op == "between":
                assert isinstance(v, tuple)  # the model holds between as [low, high]
                out += [(cond.fact, "at_least", float(v[0])), (cond.fact, "greater_than",
                                                                float(v[1]))]
            elif op in _AFFIRM:
                assert isinstance(v, int | float)  # a number
                out.append((cond.fact, op, float(v)))
            elif op in ("equals", "not_equals", "in_", "not_in"):
                # An hourly fact equals a value from the instant it reaches it until just
                # after: both edges are boundaries.
                for x in v if isinstance(v, list) else [v]:
                    if isinstance(x, int | float) and not isinstance(x, bool):
                        out += [(cond.fact, "at_least", float(x)),
                                (cond.fact, "greater_than", float(x))]


def compile_book(files: list[RulesetFile], ref: Reference) -> Book:
    """Compile and lint every ruleset; raise RulesetError with every problem found."""
    problems: list[Problem] = []
    predicates: dict[str, Predicate] = {}
    compilers: list[_Compiler] = []
    seen: dict[str, Problem] = {}
    names: dict[str, RulesetFile] = {}
    for source in files:
        if source.model.name in names:
            problems.append(Problem(source.path, source.line_of("name"), None,
                                    f"ruleset name {source.model.name!r} is also used by "
                                    f"{names[source.model.name].path}"))
        names[source.model.name] = source
        for i, rule in enumerate(source.model.rules):
            where = Problem(source.path, source.line_of("rules", i), rule.id, "")
            if rule.id in seen:
                first = seen[rule.id]
                problems.append(Problem(source.path, where.line, rule.id,
                                        f"duplicate rule id (first at {first.path}:{first.line})"))
                continue
            seen[rule.id] = where
            if not rule.enabled:
                continue
            c = _Compiler(source, rule, i, ref, predicates, problems)
            c.compiled.definition = {"all": [{"m": c.expr(rule.when, False, ("when",))}]}
            _lint_actions(c)
            _lint_reconsider(c)
            _contradictions(c, rule.when, ("when",))
            compilers.append(c)

    producers: dict[tuple[str, str], list[str]] = {}
    for c in compilers:
        producers.setdefault(("rule", c.rule.id), []).append(c.rule.id)
        for action in c.rule.then:
            kind = action.output_kind
            producers.setdefault((kind, action.code), []).append(c.rule.id)
    by_id = {c.rule.id: c for c in compilers}
    # `after` is checked against every rule written (a disabled one may come back on)
    task_types = {a.task.type for f in files for r in f.model.rules for a in r.then
                  if a.task is not None}
    for c in compilers:
        for ref_ in c.outputs:
            if ref_ not in producers:
                c.problem(f"refers to {ref_[0]} {ref_[1]!r}, which no enabled rule raises: "
                          "the condition can never hold", "when")
        for i, action in enumerate(c.rule.then):
            for awaited in action.task.after if action.task is not None else []:
                if awaited not in task_types:
                    c.problem(f"task {action.code!r} comes after task {awaited!r}, which no "
                              "rule raises (check the spelling)", "then", i, "task", "after")
    layer: dict[str, int] = {}

    def depth(rule_id: str, stack: tuple[str, ...]) -> int:
        if rule_id in layer:
            return layer[rule_id]
        if rule_id in stack:
            cycle = " -> ".join((*stack[stack.index(rule_id):], rule_id))
            by_id[rule_id].problem(f"cyclic reference between rules: {cycle}", "when")
            return 0
        c = by_id[rule_id]
        deps = [p for ref_ in c.outputs for p in producers.get(ref_, [])]
        value = 0 if not deps else 1 + max(depth(d, (*stack, rule_id)) for d in deps)
        layer[rule_id] = value
        return value

    for c in compilers:
        c.compiled.layer = depth(c.rule.id, ())
    if problems:
        raise RulesetError(sorted(problems, key=lambda p: (str(p.path), p.line)))

    rules = [c.compiled for c in compilers]
    layers: list[list[CompiledRule]] = [[] for _ in range(max((r.layer for r in rules),
                                                              default=-1) + 1)]
    for r in rules:
        layers[r.layer].append(r)
    thresholds: list[tuple[str, str, float]] = []
    daily_facts: set[str] = set()
    for r in rules:
        _thresholds(r.rule.when, thresholds)
        daily_facts.update(f for f in r.facts if FACTS[f].varies == "daily")
    version = hashlib.sha256(
        ("|".join(f.digest for f in files) + ref.digest).encode()).hexdigest()[:12]
    return Book(rules, layers, predicates, ref, version, sorted(set(thresholds)),
                frozenset(daily_facts),
                files)
