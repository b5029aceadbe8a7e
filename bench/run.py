"""Run every benchmark and write bench/RESULTS.md (median of several runs, machine, date).

Usage: python bench/run.py [--runs N] [--messages N] [--skip-postgres]
                           [--rules-runs N] [--skip-ingest] [--skip-rules]
                           [--skip-backtest] [--skip-worklist] [--skip-metrics]
                           [--backtest-beds N] [--backtest-days N]

--skip-ingest (or --skip-rules, --skip-backtest) keeps that part of the existing RESULTS.md
as it was. bench/worklist.py, when present, is run too (its `run()` returns the lines of its
section, or a dict shown as is), and bench/metrics.py (the /metrics page on 100,000 stays).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import timeit
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def ingest(store: str, connections: int, messages: int, env: dict[str, str] | None = None,
           processes: int = 1) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "ingest.py"), "--store", store, "--connections",
         str(connections), "--messages", str(messages), "--processes", str(processes)],
        capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def rules(runs: int, seconds: float = 2.0) -> dict:
    """bench/rules.py in its own process (it pins itself to one core)."""
    out = subprocess.run(
        [sys.executable, str(HERE / "rules.py"), "--runs", str(runs), "--seconds", str(seconds)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


RULES_HEADING = "## Rules engine"
BACKTEST_HEADING = "## Back-test"
WORKLIST_HEADING = "## Worklist"
METRICS_HEADING = "## Metrics page"
PARTS = ("", RULES_HEADING, BACKTEST_HEADING, WORKLIST_HEADING, METRICS_HEADING)


def backtest(beds: int, days: int) -> dict:
    """bench/backtest.py in its own process."""
    out = subprocess.run(
        [sys.executable, str(HERE / "backtest.py"), "--beds", str(beds), "--days", str(days)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def backtest_section(r: dict) -> list[str]:
    return [
        f"{BACKTEST_HEADING}: {r['days']}-day replay of a {r['beds']}-bed simulated hospital",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        f"Command: `python bench/backtest.py --beds {r['beds']} --days {r['days']}` (via "
        "bench/run.py).",
        "",
        "| messages | visits | back-test (active + candidate replays, compare) | one replay "
        "(reference) | messages/s per replay | goal | report |",
        "|---|---|---|---|---|---|---|",
        f"| {r['messages']} | {r['visits']} | {r['backtest_s']:.0f} s "
        f"| {r['single_replay_s']:.0f} s | {r['messages_per_s_per_replay']} "
        f"| ≤ {r['goal_s']} s: {'met' if r['met'] else '**not met**'} "
        f"| {'changes' if r['changed'] else 'no change (same rulesets)'} |",
        "",
        *([] if r["met"] else [
            "What bounds it: the two replays already run side by side, one per core, so the "
            "back-test takes about as long as one replay (the reference column); a replay is "
            "one process on one core, each message a transaction through the one path (about "
            "20 SQL statements through the SQLAlchemy ORM, whose unit of work is about half "
            "the time) plus the clock's stops. On this machine the two replays need twice "
            "the reference in CPU time, more than the two cores give in 3 minutes.", ""]),
    ]


def worklist_section(args: argparse.Namespace) -> list[str]:
    """bench/worklist.py in its own process (PostgreSQL, 100,000 stays; the load is kept in
    its schema between runs, so only the first run pays for it)."""
    if args.skip_postgres:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "worklist.md"
        command = [sys.executable, str(HERE / "worklist.py"), "--results", str(out)]
        if worklist_loaded():
            command.append("--reuse")
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        text = out.read_text(encoding="utf-8").splitlines()
    body = [line for line in text if not line.startswith("## ")]
    return [f"{WORKLIST_HEADING}: 32 concurrent clients (bench/worklist.py; plans and "
            "per-request costs in bench/WORKLIST.md)", "",
            "Command: `python bench/worklist.py` (via bench/run.py, with `--reuse` once the "
            "data is loaded).", *body, ""]


def metrics_section(args: argparse.Namespace) -> list[str]:
    """bench/metrics.py in its own process (PostgreSQL, 100,000 stays; the load is kept in
    its schema between runs, so only the first run pays for it)."""
    if args.skip_postgres:
        return []
    import importlib

    metrics = importlib.import_module("bench.metrics")
    try:
        url = os.environ.get("ENGINE_TEST_POSTGRES_URL", metrics.DEFAULT_URL)
        loaded = metrics.counts(url).get("encounter", 0) >= 100_000
    except Exception:  # noqa: BLE001 - no schema yet: load it
        loaded = False
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "metrics.md"
        command = [sys.executable, str(HERE / "metrics.py"), "--results", str(out),
                   *(["--reuse"] if loaded else [])]
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        body = [line for line in out.read_text(encoding="utf-8").splitlines()
                if not line.startswith("## ")]
    return [f"{METRICS_HEADING}: 14 metrics on 100,000 stays (bench/metrics.py)", "",
            "Command: `python bench/metrics.py` (via bench/run.py, with `--reuse` once the "
            "data is loaded).", *body, ""]


def worklist_loaded() -> bool:
    """Whether bench/worklist.py's data is already in PostgreSQL (its `--reuse`)."""
    import importlib

    worklist = importlib.import_module("bench.worklist")
    try:
        sizes = worklist.counts(worklist.schema_url(worklist.DEFAULT_URL))
    except Exception:  # noqa: BLE001 - no schema yet: load it
        return False
    return sizes.get("encounters", 0) >= 100_000


def rules_section(r: dict, runs: int) -> list[str]:
    met = r["evaluations_per_s"] >= 10_000 and r["ratio"] >= 0.5
    return [
        f"{RULES_HEADING}: encounter evaluations on one core (shipped rulesets)",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        f"Command: `python bench/rules.py --runs {runs}` (via bench/run.py), pinned to CPU "
        f"{r['cpu']}; "
        f"{r['encounters']} synthetic encounters, {r['runs']} alternating runs of "
        f"{r['seconds_per_run']:g} s each, medians.",
        "",
        "| evaluations/s | bare durable_rules/s | ratio | rules | layers | facts asserted "
        "per evaluation | firings per evaluation | native engine alone/s |",
        "|---|---|---|---|---|---|---|---|",
        f"| {r['evaluations_per_s']:.0f} | {r['bare_per_s']:.0f} | {r['ratio']:.2f} "
        f"| {r['rules']} | {r['layers']} ({'+'.join(map(str, r['layer_sizes']))}) "
        f"| {r['facts_asserted_per_evaluation']:g} | {r['firings_per_evaluation']:.2f} "
        f"| {r['native_per_s']:.0f} |",
        "",
        f"Targets (at least 10,000 evaluations/s and half the bare rate): "
        f"{'met' if met else '**not met**'}. Runs: evaluations/s "
        f"{r['evaluations_per_s_runs']}, bare/s {r['bare_per_s_runs']}, ratio "
        f"{r['ratio_runs']}. Facts left in durable_rules afterwards: "
        f"{r['facts_left_in_engine']}.",
        "",
        "- *evaluations/s*: per encounter, derive the facts, `Matcher.match` (one fact "
        "asserted and retracted per layer) and `desired_outputs`; no database.",
        "- *bare durable_rules/s*: the same compiled definitions in a stock durable_rules "
        "`Host` (without its timer threads) with do-nothing actions, asserting and retracting "
        "the very fact dicts the Matcher asserted (recorded beforehand; the bench checks "
        "both fire the same rules), per encounter.",
        "- *ratio*: median of the per-run ratios evaluations/s ÷ bare/s.",
        "- *native engine alone*: durable_rules' native calls on pre-encoded JSON, no Python "
        "host at all: the floor under both.",
        "- Memory: `make soak` (bench/soak_rules.py) runs a million evaluations and samples "
        "RSS every 50,000.",
        "",
    ]


def kept_part(heading: str) -> list[str]:
    """One part of the existing RESULTS.md ("" for the ingest part), to keep as it was."""
    path = HERE / "RESULTS.md"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8").rstrip("\n").splitlines()
    starts = {h: next((i for i, line in enumerate(text) if line.startswith(h)), None)
              for h in PARTS if h}
    at = 0 if not heading else starts.get(heading)
    if at is None:
        return []
    later = [i for i in starts.values() if i is not None and i > at]
    part = text[at:min(later, default=len(text))]
    while part and not part[-1].strip():
        part.pop()
    return [*part, ""] if part else []


def median_of(runs: list[dict]) -> dict:
    keys = ("rate", "p50_ms", "p99_ms", "commit_limit", "core_floor")
    result = {k: statistics.median(r[k] for r in runs) for k in keys}
    result["processes"] = runs[0].get("processes", 1)
    result["errors"] = sum(r["errors"] for r in runs)
    result["runs"] = len(runs)
    return result


def parse_costs() -> dict[str, float]:
    """Per-message cost of reading an A01: our reader + event mapping vs hl7apy's full parse."""
    from hl7apy.parser import parse_message

    from engine.core.config import DEFAULT_SITE_PROFILE
    from engine.core.site import load_site_profile
    from engine.hl7.adt import header_of, to_event
    from engine.hl7.build import adt
    from engine.hl7.message import parse

    site = load_site_profile(DEFAULT_SITE_PROFILE)
    raw = adt("A01", "202603021015", extra=["DG1|1||I50.9^Heart failure^I10||20260302|A"])
    text = raw.decode()

    def ours() -> None:
        msg = parse(text)
        to_event(msg, header_of(msg), site)

    n = 2000
    fast = timeit.timeit(ours, number=n) / n
    slow = timeit.timeit(lambda: parse_message(text, find_groups=False), number=50) / 50
    return {"fast_us": fast * 1e6, "hl7apy_ms": slow * 1e3}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--rules-runs", type=int, default=5)
    parser.add_argument("--skip-ingest", action="store_true",
                        help="only the rules benchmark; keep the ingest figures in RESULTS.md")
    parser.add_argument("--skip-rules", action="store_true",
                        help="keep the rules figures in RESULTS.md")
    parser.add_argument("--skip-backtest", action="store_true",
                        help="keep the back-test figures in RESULTS.md")
    parser.add_argument("--skip-worklist", action="store_true",
                        help="keep the worklist figures in RESULTS.md")
    parser.add_argument("--skip-metrics", action="store_true",
                        help="keep the metrics-page figures in RESULTS.md")
    parser.add_argument("--backtest-beds", type=int, default=500)
    parser.add_argument("--backtest-days", type=int, default=30)
    args = parser.parse_args()

    lines = ingest_part(args) if not args.skip_ingest else kept_part("")
    if not lines:
        lines = ["# Benchmark results", ""]
    if args.skip_rules:
        lines += kept_part(RULES_HEADING)
    else:
        result = rules(args.rules_runs)
        print("rules", json.dumps(result), flush=True)
        lines += rules_section(result, args.rules_runs)
    if args.skip_backtest:
        lines += kept_part(BACKTEST_HEADING)
    else:
        result = backtest(args.backtest_beds, args.backtest_days)
        print("backtest", json.dumps(result), flush=True)
        lines += backtest_section(result)
    lines += (kept_part(WORKLIST_HEADING) if args.skip_worklist
              else worklist_section(args) or kept_part(WORKLIST_HEADING))
    lines += (kept_part(METRICS_HEADING) if args.skip_metrics
              else metrics_section(args) or kept_part(METRICS_HEADING))
    (HERE / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'}")


def ingest_part(args: argparse.Namespace) -> list[str]:
    off = {"ENGINE_RULESETS": "off"}
    configs = [
        ("SQLite (default: FULL sync, rules on)", "sqlite", 1, {}),
        ("SQLite, rules off", "sqlite", 1, off),
        ("SQLite (synchronous=NORMAL), rules off", "sqlite", 1,
         {"ENGINE_SQLITE_SYNCHRONOUS": "NORMAL", **off}),
    ]
    if not args.skip_postgres:
        configs += [("PostgreSQL, rules on", "postgres", 1, {}),
                    ("PostgreSQL, rules on", "postgres", 4, {}),
                    ("PostgreSQL, rules off", "postgres", 4, off),
                    # Scale-out, beside its one-process reference with the same senders.
                    ("PostgreSQL, rules on", "postgres", 6, {}),
                    ("PostgreSQL, rules on, scale-out (+ `engine worker`)", "postgres", 6,
                     {"processes": "3"})]
    rows = []
    for label, store, conns, env in configs:
        env = dict(env)
        processes = int(env.pop("processes", "1"))
        runs = [ingest(store, conns, args.messages // conns, env, processes)
                for _ in range(args.runs)]
        result = median_of(runs)
        rows.append((label, conns, result))
        print(label, conns, processes, json.dumps(result), flush=True)
    parse = parse_costs()

    lines = [
        "# Benchmark results",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        f"Command: `python bench/run.py --runs {args.runs} --messages {args.messages}`. "
        "Each figure is the median of the runs.",
        "",
        "## Ingest over MLLP (A01/A08/A02/A03 mix, senders wait for each ACK)",
        "",
        "| store | processes | connections | messages/s | ACK p50 ms | ACK p99 ms "
        "| commit limit/s | Core floor/s | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, conns, r in rows:
        lines.append(
            f"| {label} | {r['processes']} | {conns} | {r['rate']:.0f} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} "
            f"| {r['commit_limit']:.0f} | {r['core_floor']:.0f} | {r['errors']} |"
        )
    lines += [
        "",
        "- *commit limit*: one-row insert+commit transactions per second on the same store with "
        "the same durability settings (the storage bound).",
        "- *Core floor*: transactions per second of the bare statement set one A08 needs "
        "(twin check, inbound insert, two reads, two updates, one insert, commit) in SQLAlchemy "
        "Core, with no parsing, ORM or logic: what any design on this stack pays.",
        "",
        "## Parsing one A01 (reference)",
        "",
        f"- engine fast reader + ADT mapping: {parse['fast_us']:.0f} µs",
        f"- hl7apy `parse_message`: {parse['hl7apy_ms']:.2f} ms",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
