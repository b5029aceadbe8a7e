"""A short soak of the rules engine: evaluations leave nothing behind.

The full soak (a million evaluations, `make soak`, bench/soak_rules.py) is too long for CI;
this runs 50,000 encounter evaluations over a synthetic population and checks that resident
memory stops growing after a warm-up and that durable_rules holds no facts afterwards.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from durable.engine import Host

from bench.rules import evaluate_one, facts_held, load_rulebook, population
from bench.soak_rules import rss_kib

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reads VmRSS from /proc (Linux)")

WARMUP = 10_000
EVALUATIONS = 50_000
# A leak of 100 bytes per evaluation would show as ~3.9 MiB here; measured growth is ~0.
MAX_GROWTH_KIB = 2048


class _PlainHost(Host):
    def _run(self) -> None:
        return None

    def get_action(self, action_name: str):
        return lambda _closure: None


def test_evaluations_leave_no_facts_and_memory_flat():
    rulebook = load_rulebook()
    names = list(rulebook.book.definitions())
    pop = population(500, seed=7)
    fired = 0
    for i in range(WARMUP):
        snap, now = pop[i % len(pop)]
        fired += evaluate_one(rulebook, snap, now)
    assert fired > WARMUP  # the population makes rules fire (2-3 outputs per encounter)
    gc.collect()
    before = rss_kib()
    for i in range(WARMUP, EVALUATIONS):
        snap, now = pop[i % len(pop)]
        evaluate_one(rulebook, snap, now)
    gc.collect()
    growth = rss_kib() - before
    assert growth < MAX_GROWTH_KIB, f"RSS grew {growth} KiB over {EVALUATIONS - WARMUP} evaluations"
    host = rulebook.matcher._host
    assert [host.get_facts(name, "0") for name in names] == [[] for _ in names]
    assert facts_held(host, names) == 0


def test_the_facts_check_sees_a_fact_left_behind():
    """The check above is not vacuous: a fact asserted and not retracted is reported."""
    rulebook = load_rulebook()
    name = next(iter(rulebook.book.definitions()))
    host = _PlainHost()
    host.set_rulesets(rulebook.book.definitions())
    fact = {"sid": "0", "id": "left-behind", "care_status": "inpatient",
            "encounter_status": "in-progress"}
    host.assert_fact(name, fact)
    assert facts_held(host, [name]) == 1
    host.retract_fact(name, fact)
    assert facts_held(host, [name]) == 0
