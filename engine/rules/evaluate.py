"""Evaluating an encounter's facts against the compiled book, through durable_rules.

One durable_rules Host per process per book version. Its timer threads are not started:
every call is synchronous and serialized, each evaluation asserts one fact per layer and
retracts it, so nothing stays in the engine between evaluations (a soak test checks it).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from dataclasses import dataclass
from typing import Any

import durable_rules_engine
from durable.engine import Host, MessageNotHandledException

from engine.rules.compile import Book, CompiledRule, output_name
from engine.rules.facts import Derived


class _SyncHost(Host):
    """A Host whose actions only record which rule fired."""

    def __init__(self) -> None:
        self.fired: list[str] = []
        super().__init__()

    def _run(self) -> None:  # no dispatcher or timer threads: all calls are synchronous
        return None

    def get_action(self, action_name: str):
        fired = self.fired

        def record(_closure) -> None:
            fired.append(action_name)

        return record


@dataclass(frozen=True)
class Firing:
    rule: CompiledRule
    facts: dict[str, Any]  # the facts and named conditions the rule's condition read


class Evaluator:
    def __init__(self, book: Book) -> None:
        self.book = book
        self._host = _SyncHost()
        self._host.set_rulesets(book.definitions())
        self._lock = threading.Lock()
        self._closed = False
        self._ids = itertools.count()
        self._layer_facts = [
            sorted({f for r in layer for f in r.facts}) for layer in book.layers
        ]
        self._layer_preds = [
            sorted({p for r in layer for p in r.predicates}) for layer in book.layers
        ]

    def evaluate(self, derived: Derived, diagnoses: list[tuple[str, str | None]]) -> list[Firing]:
        """Every enabled rule whose condition holds for these facts, layer by layer."""
        values = derived.values
        raised: set[str] = set()
        firings: list[Firing] = []
        for n, _layer in enumerate(self.book.layers):
            fact: dict[str, Any] = {}
            for name in self._layer_facts[n]:
                value = values.get(name)
                if value is not None and not isinstance(value, list):
                    fact[name] = value
            for name in self._layer_preds[n]:
                result = self.book.predicates[name].test(values, diagnoses, raised)
                if result is not None:
                    fact[name] = result
            for rule_id in self._assert(n, fact):
                rule = self.book.rule(rule_id)
                firings.append(Firing(rule, {k: fact[k] for k in sorted(rule.facts |
                                                                         rule.predicates)
                                             if k in fact}))
                raised.add(output_name("rule", rule_id))
                for action in rule.rule.then:
                    kind = {"propose": "proposal"}.get(action.kind, action.kind)
                    raised.add(output_name(kind, action.code))
        return firings

    def close(self) -> None:
        """Free the native rulesets of a retired version; later calls fail cleanly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for ruleset in self._host._ruleset_list:
                durable_rules_engine.delete_ruleset(ruleset._handle)

    def _assert(self, layer: int, fact: dict[str, Any]) -> list[str]:
        name = self.book.layer_name(layer)
        with self._lock:
            if self._closed:
                raise RuntimeError("this ruleset version was retired by a reload")
            fact["sid"] = "0"
            fact["id"] = next(self._ids)
            self._host.fired.clear()
            try:
                self._host.assert_fact(name, fact)
            except MessageNotHandledException:
                return []
            finally:
                with contextlib.suppress(MessageNotHandledException):
                    self._host.retract_fact(name, fact)
            return sorted(set(self._host.fired))
