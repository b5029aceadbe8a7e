"""Matching an encounter's facts against the compiled book: which rules fire. Pure.

Rules run layer by layer (a later layer reads earlier layers' outputs); each layer's fact
goes through durable_rules (engine.rules.durable, the only module that touches it), one
ruleset per layer per book version, asserted and retracted, so nothing stays in the
engine between matchings (a soak test checks it). bench/rules.py measures it beside the
stock durable_rules Host asserting the same facts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from engine.rules.compile import Book, CompiledRule, output_name
from engine.rules.durable import Rulesets, plain
from engine.rules.facts import Derived

log = logging.getLogger("engine.rules")


@dataclass(frozen=True)
class Firing:
    rule: CompiledRule
    facts: dict[str, Any]  # the facts and named conditions the rule's condition read


class Matcher:
    """Which rules of one book version fire for a stay's facts."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self._rulesets = Rulesets(book.definitions())
        self._layer_facts = [
            sorted({f for r in layer for f in r.facts}) for layer in book.layers
        ]
        self._layer_preds = [
            sorted({p for r in layer for p in r.predicates}) for layer in book.layers
        ]
        # Everything match() looks up per firing, computed once per book.
        self._layer_tests = [[(name, book.predicates[name].test) for name in names]
                             for names in self._layer_preds]
        # Which rules read each named condition: to say whose condition failed.
        self._users: dict[str, list[str]] = {}
        for rule in book.rules:
            for name in rule.predicates:
                self._users.setdefault(name, []).append(rule.id)
        self._rules: dict[str, tuple[CompiledRule, tuple[str, ...], tuple[str, ...]]] = {}
        for rule in book.rules:
            raised = [output_name("rule", rule.id)]
            for action in rule.rule.then:
                kind = action.output_kind
                raised.append(output_name(kind, action.code))
            self._rules.setdefault(rule.id, (rule, tuple(sorted(rule.facts | rule.predicates)),
                                             tuple(raised)))

    def match(self, derived: Derived, diagnoses: list[tuple[str, str | None]],
              withheld: frozenset[str] = frozenset()) -> list[Firing]:
        """Every enabled rule whose condition holds for these facts, layer by layer.

        `withheld`: output names (compile.output_name) a person's decision holds back; later
        layers read them as not raised (a declined LTACH proposal lets home be the default)."""
        values = derived.values
        raised: set[str] = set()
        firings: list[Firing] = []
        rules = self._rules
        for n, names in enumerate(self._layer_facts):
            fact: dict[str, Any] = {}
            for name in names:
                value = values.get(name)
                if value is not None and not isinstance(value, list):
                    fact[name] = plain(value) if type(value) is float else value
            for name, test in self._layer_tests[n]:
                try:
                    result = test(values, diagnoses, raised)
                except Exception as exc:  # noqa: BLE001 - one rule's defect stays its own
                    log.error("rule(s) %s: condition %s failed (%s); treated as unknown",
                              ", ".join(self._users[name]), name, type(exc).__name__)
                    result = None
                if result is not None:
                    fact[name] = result
            for rule_id in self._assert(n, fact):
                rule, keys, outputs = rules[rule_id]
                firings.append(Firing(rule, {k: fact[k] for k in keys if k in fact}))
                raised.update(o for o in outputs if o not in withheld)
        return firings

    def close(self) -> None:
        """Free the native rulesets of a retired version; later calls fail cleanly."""
        self._rulesets.close()

    @property
    def _host(self) -> Any:  # durable.engine.Host (untyped), not imported here
        """The durable_rules Host, for benchmarks and the memory test to inspect."""
        return self._rulesets.host

    def _assert(self, layer: int, fact: dict[str, Any]) -> list[str]:
        """The ids of the rules the layer's fact fires, sorted (bench/rules.py records here)."""
        return self._rulesets.fire(layer, fact)
