"""Evaluating an encounter's facts against the compiled book, through durable_rules.

One durable_rules Host per process per book version. Its timer threads are not started:
every call is synchronous and serialized, each evaluation asserts one fact per layer and
retracts it, so nothing stays in the engine between evaluations (a soak test checks it).

The hot path talks to the native engine the way `Host.assert_fact`/`retract_fact` do
(durable/engine.py: `Ruleset.assert_fact`, `do_actions`, `_flush_actions`) minus what only
matters for asynchronous actions: the fact is encoded to JSON once for both calls, and a
rule's action is "note its name", so no Closure, Promise or timer is built per firing.
bench/rules.py measures it beside the stock Host asserting the same facts.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from dataclasses import dataclass
from json.decoder import scanstring
from typing import Any

import durable_rules_engine
from durable.engine import Host, MessageObservedException

from engine.rules.compile import Book, CompiledRule, output_name
from engine.rules.facts import Derived

# json.dumps(fact, ensure_ascii=False), as durable's Ruleset.assert_fact encodes, without
# building a new encoder on every call.
log = logging.getLogger("engine.rules")
_encode = json.JSONEncoder(ensure_ascii=False).encode


def _plain(value: float) -> float | int:
    """A float durable_rules' JSON reader accepts: never exponent notation (5e-05, 1e+16)."""
    value = round(value, 4)
    return int(value) if abs(value) >= 1e15 else value


class _SyncHost(Host):
    """Compiles and owns the native rulesets; Evaluator._assert drives them directly and
    reads each fired rule's name from the action message, so actions themselves do nothing."""

    def _run(self) -> None:  # no dispatcher or timer threads: all calls are synchronous
        return None

    def get_action(self, action_name: str):
        return lambda _closure: None


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
        # Everything evaluate() looks up per firing, computed once per book.
        self._layer_tests = [[(name, book.predicates[name].test) for name in names]
                             for names in self._layer_preds]
        # Which rules read each named condition: to say whose condition failed.
        self._users: dict[str, list[str]] = {}
        for rule in book.rules:
            for name in rule.predicates:
                self._users.setdefault(name, []).append(rule.id)
        self._handles = [self._host.get_ruleset(book.layer_name(n))._handle
                         for n in range(len(book.layers))]
        self._rules: dict[str, tuple[CompiledRule, tuple[str, ...], tuple[str, ...]]] = {}
        for rule in book.rules:
            raised = [output_name("rule", rule.id)]
            for action in rule.rule.then:
                kind = action.output_kind
                raised.append(output_name(kind, action.code))
            self._rules.setdefault(rule.id, (rule, tuple(sorted(rule.facts | rule.predicates)),
                                             tuple(raised)))

    def evaluate(self, derived: Derived, diagnoses: list[tuple[str, str | None]]) -> list[Firing]:
        """Every enabled rule whose condition holds for these facts, layer by layer."""
        values = derived.values
        raised: set[str] = set()
        firings: list[Firing] = []
        rules = self._rules
        for n, names in enumerate(self._layer_facts):
            fact: dict[str, Any] = {}
            for name in names:
                value = values.get(name)
                if value is not None and not isinstance(value, list):
                    fact[name] = _plain(value) if type(value) is float else value
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
                raised.update(outputs)
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
        """Assert the fact, note the rules it fires, retract it: the rules' ids, sorted."""
        handle = self._handles[layer]
        with self._lock:
            if self._closed:
                raise RuntimeError("this ruleset version was retired by a reload")
            fact["sid"] = "0"
            fact["id"] = next(self._ids)
            text = _encode(fact)
            fired: list[str] = []
            try:
                if not _run(handle, durable_rules_engine.assert_fact(handle, text), fact, fired):
                    return []  # nothing matched (durable_rules: MessageNotHandledException)
            finally:
                _run(handle, durable_rules_engine.retract_fact(handle, text), fact, fired)
            return sorted(set(fired))


def _run(handle: int, result: tuple, fact: dict[str, Any], fired: list[str]) -> bool:
    """After an assert or retract: run the actions it started (Ruleset._handle_result,
    do_actions and _flush_actions with synchronous actions that record the rule's name).
    False when the engine did not handle the fact."""
    if result[0] == 1:
        return False
    if result[0] == 2:
        raise MessageObservedException(fact)
    state_handle = 0 if result[0] == 3 else result[1]
    started = durable_rules_engine.start_action_for_state(handle, state_handle)
    if not started:
        return True
    state, message = started[0], started[1]
    while message:
        # The started action is the message's first key, e.g. {"score-lace": {"m": {...}}}:
        # decode that string only, not the whole fact (durable: next(iter(json.loads(...)))).
        fired.append(scanstring(message, message.index('"') + 1)[0])
        try:
            durable_rules_engine.update_state(handle, state)
            message = durable_rules_engine.complete_and_start_action(handle, state_handle)
        except BaseException:
            durable_rules_engine.abandon_action(handle, state_handle)
            raise
    return True
