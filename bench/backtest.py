"""Back-test speed: a 30-day feed of a 500-bed simulated hospital replayed in event time.

The live store is filled once (not timed) with `engine simulate` output; then `backtest()`
replays the stored history through the active rulesets and a candidate (the same files,
so the report must show no change), each on a throw-away SQLite copy with the clock
following event time: what `engine rules backtest` does. Goal: at most 3 minutes.
A single replay of the same history is timed too, as the reference.

Usage: python bench/backtest.py [--beds 500] [--days 30]; prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core.clock import FixedClock  # noqa: E402
from engine.core.config import (  # noqa: E402
    DEFAULT_RULESETS,
    DEFAULT_SITE_PROFILE,
    get_settings,
)
from engine.core.site import load_site_profile  # noqa: E402
from engine.intake.path import Intake  # noqa: E402
from engine.intake.replay import replay  # noqa: E402
from engine.planning.rulebook import Rulebook  # noqa: E402
from engine.storage.db import make_engine, session_factory  # noqa: E402
from engine.storage.migrate import upgrade  # noqa: E402
from engine.tools.backtest import START, backtest, stored_history  # noqa: E402
from engine.tools.simulate import simulate  # noqa: E402


def run(beds: int, days: int) -> dict:
    site = load_site_profile(DEFAULT_SITE_PROFILE)
    sim = simulate(beds, days, seed=1, site=site)
    with tempfile.TemporaryDirectory(prefix="engine-bench-backtest-") as tmp:
        live = make_engine(f"sqlite:///{tmp}/live.db", sqlite_synchronous="OFF")
        upgrade(live)
        sessions = session_factory(live)
        intake = Intake(sessions, site, FixedClock(START))  # rules off: filling, not timed
        for raw in sim.messages:
            intake.hl7(raw, channel="file")
        history = stored_history(sessions, None)
        staffing = get_settings().staffing_file  # the configured file, as `engine rules backtest`
        active = Rulebook.load(DEFAULT_RULESETS, site, staffing_file=staffing)
        candidate = Rulebook.load(DEFAULT_RULESETS, site, staffing_file=staffing)

        single = make_engine(f"sqlite:///{tmp}/single.db", sqlite_synchronous="OFF")
        upgrade(single)
        clock = FixedClock(START)
        one = Intake(session_factory(single), site, clock)
        one.rules.current = active
        t0 = time.perf_counter()
        replay(one, clock, history)
        single_s = time.perf_counter() - t0
        single.dispose()

        t0 = time.perf_counter()
        report = backtest(sessions, site, active, candidate)
        backtest_s = time.perf_counter() - t0
        live.dispose()
    return {"beds": beds, "days": days, "messages": len(history), "visits": len(sim.truth),
            "backtest_s": round(backtest_s, 1), "single_replay_s": round(single_s, 1),
            "messages_per_s_per_replay": round(len(history) / single_s),
            "changed": report.changed, "goal_s": 180, "met": backtest_s <= 180}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--beds", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps(run(args.beds, args.days)))


if __name__ == "__main__":
    main()
