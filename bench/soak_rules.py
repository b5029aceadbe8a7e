"""Rules-engine soak: a million encounter evaluations, memory sampled as they go.

Each evaluation is what bench/rules.py times (derive the facts, Matcher.match,
desired_outputs), rotating over a synthetic population so the engine sees ever-new fact ids
and varying facts. The resident set size (VmRSS in /proc/self/status) is sampled every
`--every` evaluations after a garbage collection. Memory is flat when the last sample is
within 20% of the sample taken after the first 10% of the evaluations (the warm-up: caches,
allocator arenas and the engine's per-session state are in place by then); the growth after
warm-up is also given in bytes per evaluation. Finally durable_rules must hold no facts.

Usage: python bench/soak_rules.py [--evaluations 1000000] [--every 50000] (or `make soak`).
Exits 1 when memory is not flat or facts remain.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rules import (  # noqa: E402
    evaluate_one,
    facts_held,
    load_rulebook,
    pin_to_one_core,
    population,
)


def rss_kib() -> int:
    """Resident set size of this process, KiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def soak(evaluations: int = 1_000_000, every: int = 50_000, encounters: int = 2000,
         tolerance: float = 0.20, progress: bool = True) -> dict:
    rulebook = load_rulebook()
    pop = population(encounters)
    size = len(pop)
    gc.collect()
    series: list[tuple[int, int]] = [(0, rss_kib())]
    start = time.perf_counter()
    done = 0
    while done < evaluations:
        chunk = min(every, evaluations - done)
        for i in range(done, done + chunk):
            snap, now = pop[i % size]
            evaluate_one(rulebook, snap, now)
        done += chunk
        gc.collect()
        series.append((done, rss_kib()))
        if progress:
            print(f"{done:>9,} evaluations  RSS {series[-1][1] / 1024:8.1f} MiB  "
                  f"{done / (time.perf_counter() - start):8.0f}/s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - start
    warm = next((s for s in series if s[0] >= evaluations // 10), series[-1])
    final = series[-1]
    growth = final[1] - warm[1]
    names = list(rulebook.book.definitions())
    held = facts_held(rulebook.matcher._host, names)
    flat = abs(growth) <= tolerance * warm[1]
    return {
        "evaluations": done,
        "encounters": size,
        "seconds": round(elapsed, 1),
        "evaluations_per_s": round(done / elapsed),
        "rss_kib": series,
        "rss_after_warmup_kib": warm[1],
        "rss_final_kib": final[1],
        "growth_after_warmup_kib": growth,
        "growth_bytes_per_evaluation": round(growth * 1024 / max(final[0] - warm[0], 1), 3),
        "tolerance": tolerance,
        "flat": flat,
        "facts_held": held,
        "ok": flat and held == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50_000, help="sample RSS this often")
    parser.add_argument("--encounters", type=int, default=2000)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: last)")
    args = parser.parse_args()
    pin_to_one_core(args.cpu)
    result = soak(args.evaluations, args.every, args.encounters)
    print(json.dumps(result))
    verdict = "flat" if result["flat"] else "NOT flat"
    print(f"memory {verdict}: {result['rss_after_warmup_kib'] / 1024:.1f} MiB after "
          f"{result['evaluations'] // 10:,} evaluations, {result['rss_final_kib'] / 1024:.1f} "
          f"MiB after {result['evaluations']:,} ({result['growth_bytes_per_evaluation']} bytes "
          f"per evaluation); facts held by durable_rules: {result['facts_held']}",
          file=sys.stderr)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
