"""Rules-engine benchmark: encounter evaluations per second beside bare durable_rules.

Builds a synthetic population of encounters (observation, inpatient and ED stays; Medicare,
Medicare Advantage, commercial, Medicaid and self-pay; social-risk Z codes and Charlson
conditions; prior stays; lengths of stay from hours to weeks) and measures, on one core:

- *encounter evaluation*: derive the facts, run Matcher.match and desired_outputs, per
  encounter (everything a re-evaluation does except the database);
- *bare durable_rules*: the same compiled definitions (Book.definitions()) registered in a
  plain durable_rules Host with do-nothing actions, asserting and retracting the very fact
  dicts the Matcher asserts (recorded once, outside the timed loop), layer by layer. Like
  the Matcher's host it does not start the stock Host's dispatcher and timer threads
  (`Host._run`): they would only add background wake-ups to the measurement, and the
  benchmark is single-threaded on purpose.

The two are timed alternately, several rounds, in one process; each figure is the median of
the rounds and the ratio is the median of the per-round ratios. Prints one JSON object.

Usage: python bench/rules.py [--encounters 2000] [--runs 5] [--seconds 2] [--cpu N]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import durable_rules_engine as dre  # noqa: E402
from durable.engine import Host, MessageNotHandledException  # noqa: E402

from engine.core.config import DEFAULT_RULESETS, DEFAULT_SITE_PROFILE  # noqa: E402
from engine.core.site import load_site_profile  # noqa: E402
from engine.planning.rulebook import Rulebook  # noqa: E402
from engine.rules.outputs import desired_outputs  # noqa: E402
from engine.rules.snapshot import PastStay, Period, Snapshot  # noqa: E402

# A weekday afternoon in March 2026 (UTC); each encounter is evaluated near it.
BASE_NOW = datetime(2026, 3, 11, 19, 30, tzinfo=UTC)

PAYERS = [  # (payer class, plan code, weight)
    ("medicare", "MCR001", 35), ("medicare_advantage", "MCA100", 20),
    ("commercial", "COM300", 15), ("commercial", "COM301", 10), ("medicaid", "MCD200", 15),
    ("self_pay", "SELF", 5),
]
# Diagnoses that make Charlson conditions (Quan 2005), social-risk Z codes, and everyday
# codes that score nothing.
CHARLSON_CODES = ["I21.4", "I25.2", "I50.9", "I50.23", "I11.0", "I70.209", "I63.9", "I69.354",
                  "F03.90", "G30.9", "J44.1", "J45.909", "M06.9", "K25.4", "K70.30", "K74.60",
                  "E11.9", "E11.22", "E10.65", "G81.91", "N18.4", "N18.6", "Z99.2", "C34.90",
                  "C50.911", "C18.9", "C78.7", "C79.51", "K72.90", "B20"]
SOCIAL_CODES = ["Z59.0", "Z59.1", "Z60.2", "Z63.6", "Z74.2", "Z59.4", "Z56.0"]
OTHER_CODES = ["R07.9", "R55", "K21.9", "N39.0", "J18.9", "A41.9", "S72.001A", "I48.91",
               "E87.1", "R41.82", "M54.5", "L03.115", "D64.9", "E86.0", "Z79.01"]
UNITS = ["4WEST", "5EAST", "6NORTH", "TELE", "OBSU", "ED", "ICU", "STEPDOWN"]
SERVICES = ["MED", "SUR", "CAR", "ONC", "NEU", "ORT"]
TASK_TYPES = ["initial-ur-review", "im-notice", "moon-notice", "status-review",
              "discharge-planning-evaluation"]


def _hours(rng: random.Random, low: float, high: float) -> float:
    """Log-uniform: as many short stays as long ones per factor of time."""
    return 10 ** rng.uniform(math.log10(low), math.log10(high))


def synthetic_encounter(rng: random.Random, n: int) -> tuple[Snapshot, datetime]:
    """One synthetic encounter and the instant it is evaluated at. No real person's data."""
    now = BASE_NOW + timedelta(minutes=rng.randrange(0, 60 * 24 * 7))
    kind = rng.choices(["ed", "observation", "inpatient", "obs_to_inpatient", "discharged"],
                       [15, 25, 35, 10, 15])[0]
    los = _hours(rng, 1.5, 24 * 21)  # 1.5 hours to three weeks
    admit = now - timedelta(hours=los)
    periods: list[Period] = []
    start = admit
    if kind != "ed" and rng.random() < 0.55:  # came in through the ED
        ed_end = start + timedelta(hours=min(rng.uniform(1, 14), los * 0.4))
        periods.append(Period("emergency", start, ed_end))
        start = ed_end
    if kind == "ed":
        periods.append(Period("emergency", start, None))
    elif kind == "observation":
        periods.append(Period("observation", start, None))
    elif kind == "inpatient":
        periods.append(Period("inpatient", start, None))
    else:
        split = start + (now - start) * rng.uniform(0.2, 0.7)
        periods.append(Period("observation", start, split))
        periods.append(Period("inpatient", split, None))
    discharge = None
    status = "in-progress"
    if kind == "discharged":
        discharge = now - timedelta(hours=_hours(rng, 0.5, 24 * 20))
        if discharge <= admit:
            discharge = admit + timedelta(hours=2)
        status = "finished"
        periods[-1] = Period(periods[-1].value, periods[-1].start, discharge)
    elif rng.random() < 0.03:
        status = "onleave"
    care_status = periods[-1].value
    patient_class, patient_type = {"emergency": ("E", "ER"), "observation": ("O", "OBS"),
                                   "inpatient": ("I", "IN")}[care_status]
    payer_class, plan, _ = rng.choices(PAYERS, [w for _, _, w in PAYERS])[0]
    age = int(rng.triangular(18, 101, 74)) if payer_class.startswith("medicare") else \
        int(rng.triangular(0, 90, 45))
    birth = date(now.year - age, rng.randrange(1, 13), rng.randrange(1, 29))

    codes = rng.sample(CHARLSON_CODES, rng.choice([0, 0, 1, 1, 2, 3, 4]))
    codes += rng.sample(OTHER_CODES, rng.randrange(1, 5))
    if rng.random() < 0.18:
        codes += rng.sample(SOCIAL_CODES, rng.randrange(1, 3))
    rng.shuffle(codes)
    diagnoses = [(code, rng.choice(["A", "W", "F", None])) for code in codes]

    locations: list[Period] = []
    t = admit
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        unit = "ED" if not locations and periods[0].value == "emergency" else rng.choice(UNITS)
        locations.append(Period(unit, t, None))
        t = t + (now - t) * rng.uniform(0.1, 0.6)
    past: list[PastStay] = []
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3, 5])):
        days_before = rng.uniform(2, 400)
        p_admit = admit - timedelta(days=days_before)
        p_len = timedelta(hours=_hours(rng, 3, 24 * 10))
        statuses = frozenset(rng.sample(["emergency", "observation", "inpatient"],
                                        rng.randrange(1, 3)))
        p_discharge = min(p_admit + p_len, admit - timedelta(hours=1))
        past.append(PastStay(p_admit, p_discharge, statuses))
    open_tasks = sorted(rng.sample(TASK_TYPES, rng.choice([0, 0, 1, 2])))
    completed = sorted(set(rng.sample(TASK_TYPES, rng.choice([0, 0, 0, 1]))) - set(open_tasks))
    snap = Snapshot(
        encounter_id=n + 1, patient_id=n + 1, birth_date=birth, sex=rng.choice("FMFMU"),
        status=status, care_status=care_status, patient_class=patient_class,
        patient_type=patient_type, unit=locations[-1].value,
        hospital_service=rng.choice(SERVICES),
        admission_type=rng.choices(["E", "U", "R", "C"], [45, 20, 25, 10])[0],
        admit_source=rng.choice(["1", "2", "4", "7"]), payer_class=payer_class, payer_plan=plan,
        authorization=f"AUTH{n}" if rng.random() < 0.4 else None,
        working_drg=rng.choice([None, "291", "292", "871", "190", "470"]),
        discharge_disposition="01" if discharge else None, admit_time=admit,
        discharge_time=discharge,
        pending_discharge_time=(now - timedelta(hours=rng.uniform(0.5, 20))
                                if status == "in-progress" and rng.random() < 0.1 else None),
        expected_discharge_date=((now + timedelta(days=rng.randrange(-2, 6))).date()
                                 if rng.random() < 0.5 else None),
        last_event_time=now - timedelta(minutes=rng.randrange(1, 600)),
        status_periods=periods, locations=locations, diagnoses=diagnoses, past_stays=past,
        open_task_types=open_tasks, completed_task_types=completed,
    )
    return snap, now


def population(n: int, seed: int = 20260311) -> list[tuple[Snapshot, datetime]]:
    rng = random.Random(seed)
    return [synthetic_encounter(rng, i) for i in range(n)]


def load_rulebook(rulesets: Path = DEFAULT_RULESETS) -> Rulebook:
    # Matching only: nothing is assigned, so no staffing file.
    return Rulebook.load(rulesets, load_site_profile(DEFAULT_SITE_PROFILE), staffing_file=None)


def evaluate_one(rulebook: Rulebook, snap: Snapshot, now: datetime) -> int:
    """What one re-evaluation computes in memory: facts, firings, desired outputs."""
    derived = rulebook.facts(snap, now)
    firings = rulebook.matcher.match(derived, snap.diagnoses)
    return len(desired_outputs(rulebook.book, firings, derived.values))


class BareHost(Host):
    """A plain durable_rules Host whose actions do nothing, without the timer threads."""

    def _run(self) -> None:
        return None

    def get_action(self, action_name: str):
        def nothing(_closure) -> None:
            return None

        return nothing


class RecordingHost(BareHost):
    """The bare host for the correctness check: its actions note the rule."""

    def __init__(self) -> None:
        self.fired: list[str] = []
        super().__init__()

    def get_action(self, action_name: str):
        def note(_closure) -> None:
            self.fired.append(action_name)

        return note


Recorded = list[list[tuple[str, dict[str, Any]]]]


def recorded_facts(rulebook: Rulebook, pop: list[tuple[Snapshot, datetime]]) -> Recorded:
    """The (ruleset, fact) pairs the Matcher asserts for each encounter, in order."""
    matcher = rulebook.matcher
    calls: list[tuple[str, dict[str, Any]]] = []
    original = matcher._assert

    def recording(layer: int, fact: dict[str, Any]) -> list[str]:
        fired = original(layer, fact)
        calls.append((rulebook.book.layer_name(layer), dict(fact)))  # with its sid and id
        return fired

    matcher._assert = recording  # type: ignore[method-assign]
    try:
        out = []
        for snap, now in pop:
            calls.clear()
            evaluate_one(rulebook, snap, now)
            out.append(list(calls))
    finally:
        del matcher._assert
    return out


def bare_one(host: Host, facts: list[tuple[str, dict[str, Any]]]) -> None:
    """What a plain durable_rules user writes: assert, "no match" is fine, retract."""
    for name, fact in facts:
        try:
            host.assert_fact(name, fact)
        except MessageNotHandledException:
            pass
        finally:
            with contextlib.suppress(MessageNotHandledException):
                host.retract_fact(name, fact)


def native_one(handles: list[int], texts: list[tuple[int, str]]) -> None:
    """The native engine alone: assert, run the started actions, retract (no Python host)."""
    for layer, text in texts:
        handle = handles[layer]
        for result in (dre.assert_fact(handle, text), dre.retract_fact(handle, text)):
            if result[0] != 1:
                state_handle = 0 if result[0] == 3 else result[1]
                started = dre.start_action_for_state(handle, state_handle)
                if started:
                    message = started[1]
                    while message:
                        dre.update_state(handle, started[0])
                        message = dre.complete_and_start_action(handle, state_handle)


def check_same_matches(rulebook: Rulebook, pop: list[tuple[Snapshot, datetime]],
                       facts: Recorded) -> int:
    """The stock Host fires the same rules on the recorded facts as the Matcher did."""
    host = RecordingHost()
    host.set_rulesets(rulebook.book.definitions())
    total = 0
    for (snap, now), recorded in zip(pop, facts, strict=True):
        ours = sorted(f.rule.id for f in rulebook.matcher.match(
            rulebook.facts(snap, now), snap.diagnoses))
        host.fired.clear()
        bare_one(host, recorded)
        # A rule with `any` is several durable_rules alternatives: it may fire once for each
        # that matches; the Matcher counts the rule once.
        if sorted(set(host.fired)) != ours:
            raise SystemExit(f"encounter {snap.encounter_id}: the Matcher fired {ours}, "
                             f"bare durable_rules {sorted(host.fired)}")
        total += len(ours)
    return total


def facts_held(host: Host, names: list[str]) -> int:
    """Facts durable_rules still holds for the one session ("0") the Matcher uses."""
    total = 0
    for name in names:
        try:
            total += len(host.get_facts(name, "0"))
        except Exception:  # noqa: BLE001 - a ruleset never asserted into has no state yet
            continue
    return total


def rate(step: Callable[[int], None], size: int, seconds: float) -> float:
    """Calls per second of step(i) over i = 0, 1, ... (wrapping at size), for ~seconds."""
    gc.collect()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(size):
            step(i)
        done += size
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def pin_to_one_core(cpu: int | None) -> int | None:
    """Run on one core (the last allowed one unless told): the target is per core."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    chosen = cpu if cpu is not None else allowed[-1]
    os.sched_setaffinity(0, {chosen})
    return chosen


def run(encounters: int = 2000, runs: int = 5, seconds: float = 2.0,
        cpu: int | None = None) -> dict[str, Any]:
    pinned = pin_to_one_core(cpu)
    rulebook = load_rulebook()
    book = rulebook.book
    names = list(book.definitions())
    pop = population(encounters)
    facts = recorded_facts(rulebook, pop)
    fired = check_same_matches(rulebook, pop, facts)
    outputs = sum(evaluate_one(rulebook, s, t) for s, t in pop)
    bare = BareHost()
    bare.set_rulesets(book.definitions())
    # The floor under both: the native engine's own calls on pre-encoded JSON, in a third
    # host's rulesets (for the record; the target compares with the stock Host).
    floor = BareHost()
    floor.set_rulesets(book.definitions())
    handles = [floor.get_ruleset(name)._handle for name in names]
    texts = [[(names.index(name), json.dumps(fact, ensure_ascii=False)) for name, fact in f]
             for f in facts]

    def ours(i: int) -> None:
        snap, now = pop[i]
        evaluate_one(rulebook, snap, now)

    def reference(i: int) -> None:
        bare_one(bare, facts[i])

    def native(i: int) -> None:
        native_one(handles, texts[i])

    series: dict[str, list[float]] = {"ours": [], "bare": [], "native": [], "ratio": []}
    for step in (ours, reference, native):  # warm-up
        rate(step, len(pop), min(seconds, 1.0))
    for _ in range(runs):  # alternate, so drift on a shared machine hits both alike
        a = rate(ours, len(pop), seconds)
        b = rate(reference, len(pop), seconds)
        series["ours"].append(a)
        series["bare"].append(b)
        series["ratio"].append(a / b)
        series["native"].append(rate(native, len(pop), seconds / 2))
    asserted = sum(len(f) for f in facts)
    return {
        "encounters": len(pop),
        "runs": runs,
        "seconds_per_run": seconds,
        "cpu": pinned,
        "rules": len(book.rules),
        "layers": len(book.layers),
        "layer_sizes": [len(layer) for layer in book.layers],
        "book_version": book.version,
        "facts_asserted_per_evaluation": asserted / len(pop),
        "keys_per_fact": sum(len(d) for f in facts for _, d in f) / asserted,
        "firings_per_evaluation": fired / len(pop),
        "outputs_per_evaluation": outputs / len(pop),
        "evaluations_per_s": statistics.median(series["ours"]),
        "bare_per_s": statistics.median(series["bare"]),
        "ratio": statistics.median(series["ratio"]),
        "native_per_s": statistics.median(series["native"]),
        "evaluations_per_s_runs": [round(x) for x in series["ours"]],
        "bare_per_s_runs": [round(x) for x in series["bare"]],
        "ratio_runs": [round(x, 3) for x in series["ratio"]],
        "facts_left_in_engine": sum(facts_held(h, names)
                                    for h in (bare, floor, rulebook.matcher._host)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encounters", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="per timed run")
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: last)")
    args = parser.parse_args()
    print(json.dumps(run(args.encounters, args.runs, args.seconds, args.cpu)))


if __name__ == "__main__":
    main()
