"""durable_rules behind one door: the only module of the engine that imports it.

Written against durable-rules 2.0.28, the version pyproject.toml pins. Besides the public
`Host.set_rulesets`/`get_ruleset` it relies on internals that may change in any release:
`Host._run` (overridden: no dispatcher or timer threads), `Host.get_action`, `Host._ruleset_list`,
`Ruleset._handle`, `MessageObservedException`, and the `durable_rules_engine` native calls
(assert_fact, retract_fact, start_action_for_state, update_state, complete_and_start_action,
abandon_action, delete_ruleset) with their result codes. A new durable_rules version needs
this module re-read against its durable/engine.py, then the rules tests and bench/rules.py.

The hot path talks to the native engine the way `Host.assert_fact`/`retract_fact` do
(durable/engine.py: `Ruleset.assert_fact`, `do_actions`, `_flush_actions`) minus what only
matters for asynchronous actions: the fact is encoded to JSON once for both calls, and a
rule's action is "note its name", so no Closure, Promise or timer is built per firing.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from json.decoder import scanstring  # type: ignore[attr-defined]  # C-accelerated, untyped
from typing import Any

import durable_rules_engine
from durable.engine import Host, MessageObservedException

# json.dumps(fact, ensure_ascii=False), as durable's Ruleset.assert_fact encodes, without
# building a new encoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False).encode
# The one durable_rules session every fact is asserted in.
SESSION = "0"


def plain(value: float) -> float | int:
    """A float durable_rules' JSON reader accepts: never exponent notation (5e-05, 1e+16)."""
    value = round(value, 4)
    return int(value) if abs(value) >= 1e15 else value


class _SyncHost(Host):  # type: ignore[misc]  # durable_rules ships no types
    """Compiles and owns the native rulesets; Rulesets.fire drives them directly and reads
    each fired rule's action name from the action message, so actions themselves do nothing."""

    def _run(self) -> None:  # no dispatcher or timer threads: all calls are synchronous
        return None

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        return lambda _closure: None


class Rulesets:
    """Ruleset definitions compiled into durable_rules, asserted into synchronously.

    Calls are serialized; each asserts one fact and retracts it, so nothing stays in the
    engine between calls.
    """

    def __init__(self, definitions: dict[str, Any]) -> None:
        self.host = _SyncHost()  # read by benchmarks and the memory test (get_facts)
        self.host.set_rulesets(definitions)
        self._handles = [self.host.get_ruleset(name)._handle for name in definitions]
        self._lock = threading.Lock()
        self._closed = False
        self._ids = itertools.count()

    def fire(self, ruleset: int, fact: dict[str, Any]) -> list[str]:
        """Assert the fact into the definitions' `ruleset`-th ruleset, note the actions it
        fires, retract it: the actions' names, sorted. Adds durable's sid and id to `fact`."""
        handle = self._handles[ruleset]
        with self._lock:
            if self._closed:
                raise RuntimeError("this ruleset version was retired by a reload")
            fact["sid"] = SESSION
            fact["id"] = next(self._ids)
            text = _encode(fact)
            fired: list[str] = []
            try:
                if not _run(handle, durable_rules_engine.assert_fact(handle, text), fact, fired):
                    return []  # nothing matched (durable_rules: MessageNotHandledException)
            finally:
                _run(handle, durable_rules_engine.retract_fact(handle, text), fact, fired)
            return sorted(set(fired))

    def close(self) -> None:
        """Free the native rulesets; later calls fail cleanly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for ruleset in self.host._ruleset_list:
                durable_rules_engine.delete_ruleset(ruleset._handle)


def _run(handle: int, result: tuple[int, ...], fact: dict[str, Any], fired: list[str]) -> bool:
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
