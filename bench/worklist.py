"""Worklist benchmark: a case manager's worklist page and the FHIR Task search by owner,
under 32 concurrent clients, against real `engine serve` processes on PostgreSQL holding
100,000 active encounters and 2,000,000 tasks.

Usage: python bench/worklist.py [--url postgresql://postgres@127.0.0.1:5432/test]
           [--encounters 100000] [--tasks-per-encounter 20] [--clients 32] [--seconds 20]
           [--servers 2] [--think-ms 0] [--reuse] [--results bench/WORKLIST.md]

The data goes into its own schema (`bench_worklist`), generated in Python and loaded with
COPY (the one statement SQLAlchemy cannot express): 2,000 case managers with 50 stays each
and 500 UR nurses; per stay 20 tasks, about 4 of them open, due between two days ago and
three days ahead. `--reuse` keeps an existing load. Each scenario runs closed-loop (every
client sends its next request when the previous answer arrives) after a warm-up, and
reports p50/p95/p99 and throughput; `--think-ms` adds a pause per client between requests.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.schema import CreateSchema, DropSchema  # noqa: E402

from engine.storage.db import make_engine, normalise_url  # noqa: E402
from engine.storage.migrate import upgrade  # noqa: E402
from engine.storage.models import (  # noqa: E402
    CaseAssignment,
    Encounter,
    Patient,
    PatientIdentifier,
    RuleOutput,
)
from harness.launch import bearer, start_server  # noqa: E402

SCHEMA = "bench_worklist"
UNITS = ["4WEST", "5EAST", "3NORTH", "6SOUTH", "ICU", "OBS", "7WEST", "2SOUTH"]
PAYERS = ["medicare", "medicare_advantage", "medicaid", "commercial", "self_pay"]
CM_TYPES = ["im-notice", "moon-notice", "discharge-planning-evaluation", "confirm-discharge-plan",
            "confirm-transition-outpatient-followup", "tcm-contact", "follow-up-appointment",
            "im-follow-up-notice", "psychosocial-assessment", "caregiver-meeting", "dme-order",
            "transport"]
UR_TYPES = ["initial-ur-review", "status-review", "authorization-request", "short-stay-review",
            "continued-stay-review", "avoidable-day-review"]
PRIORITIES = ["routine"] * 6 + ["urgent"] * 3 + ["asap", "stat"]
PER_CASE_MANAGER = 50
PER_UR_NURSE = 200


DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def schema_url(base: str) -> str:
    url = normalise_url(base)
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={SCHEMA}')}"


def _ts(when: datetime) -> str:
    return when.isoformat()


def _copy(conn, table, columns: list[str], lines: list[str]) -> None:
    """COPY rows (tab-separated text, \\N for NULL) into a table of the engine's schema."""
    names = ", ".join(columns)
    with conn.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            buffer.write("\n")
        copy.write(buffer.getvalue())


def _rows(encounters: int, per_encounter: int, now: datetime, rng: random.Random):
    """(patients, identifiers, encounters, assignments, task chunks) as COPY lines."""
    patients, idents, encs, assigned = [], [], [], []
    for e in range(1, encounters + 1):
        admit = now - timedelta(hours=rng.uniform(6, 24 * 9))
        patients.append(f"{e}\tBENCH{e:06d}\tPAT\tF\t1\t{_ts(now)}")
        idents.append(f"{e}\t{e}\tGENHOSP\tB{e:07d}\tMR\tt")
        unit = UNITS[(e // 50) % len(UNITS)]
        encs.append(f"{e}\t{e}\tGENHOSP\tBV{e:07d}\tin-progress\tinpatient\tI\t{_ts(admit)}\t"
                    f"{unit}\t{e % 40}\tA\tMED\t{PAYERS[e % len(PAYERS)]}\t1\t{_ts(now)}")
        assigned.append(f"{e}\t{e}\tcase_manager\t{case_manager(e)}\t{_ts(admit)}\tengine")
        assigned.append(f"{encounters + e}\t{e}\tur_nurse\t{ur_nurse(e)}\t{_ts(admit)}\tengine")
    return patients, idents, encs, assigned


def case_manager(encounter: int) -> str:
    return f"cm{(encounter - 1) // PER_CASE_MANAGER:04d}"


def ur_nurse(encounter: int) -> str:
    return f"ur{(encounter - 1) // PER_UR_NURSE:04d}"


def _task_lines(first_enc: int, last_enc: int, per_encounter: int, now: datetime,
                rng: random.Random, next_id: int) -> tuple[list[str], int]:
    lines = []
    facts = json.dumps({"payer_class": "medicare", "care_status": "inpatient",
                        "midnights_in_hospital": 3, "lace_score": 11})
    for e in range(first_enc, last_enc + 1):
        open_slots = set(rng.sample(range(per_encounter), 4))
        for n in range(per_encounter):
            ur = n % 10 >= 7
            code = (UR_TYPES if ur else CM_TYPES)[n % (6 if ur else 14)]
            owner = ur_nurse(e) if ur else case_manager(e)
            fired = now - timedelta(hours=rng.uniform(1, 200))
            due = now + timedelta(hours=rng.uniform(-48, 72))
            if n in open_slots:
                status, task_status = "active", rng.choice(
                    ["ready", "ready", "ready", "in-progress", "in-progress", "on-hold"])
                ended = outcome = "\\N"
            else:
                status = task_status = rng.choice(["completed"] * 7 + ["cancelled"] * 3)
                ended = _ts(due - timedelta(hours=rng.uniform(0, 24)))
                outcome = "done" if status == "completed" else "conditions no longer hold"
            detail = json.dumps({"citation": "42 CFR 405.1205", "instructions": f"Do {code}"})
            lines.append("\t".join((
                str(next_id), str(e), str(e), f"rule-{code}/task/{code}/{n}", "task", code,
                f"rule-{code}", "bench", "v1", status, f"Work on {code}",
                rng.choice(PRIORITIES), "ur_nurse" if ur else "case_manager", _ts(due),
                detail, facts, _ts(fired), _ts(fired), ended, str(1), task_status, owner,
                outcome)))
            next_id += 1
    return lines, next_id


TASK_COLUMNS = ["id", "encounter_id", "patient_id", "key", "kind", "code", "rule_id", "ruleset",
                "ruleset_version", "status", "title", "priority", "queue", "due_at", "detail",
                "facts", "fired_at", "updated_at", "ended_at", "version", "task_status",
                "owner", "outcome"]


def load(url: str, encounters: int, per_encounter: int) -> None:
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(DropSchema(SCHEMA, cascade=True, if_exists=True))
        conn.execute(CreateSchema(SCHEMA))
    admin.dispose()
    engine = make_engine(schema_url(url))
    upgrade(engine)
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    patients, idents, encs, assigned = _rows(encounters, per_encounter, now, rng)
    task_indexes = list(RuleOutput.__table__.indexes)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")  # no FK checks while loading
        _copy(conn, Patient.__table__, ["id", "family", "given", "sex", "version", "updated_at"],
              patients)
        _copy(conn, PatientIdentifier.__table__,
              ["id", "patient_id", "system", "value", "type_code", "is_mrn"], idents)
        _copy(conn, Encounter.__table__,
              ["id", "patient_id", "visit_system", "visit_number", "status", "care_status",
               "patient_class", "admit_time", "unit", "room", "bed", "hospital_service",
               "payer_class", "version", "updated_at"], encs)
        _copy(conn, CaseAssignment.__table__,
              ["id", "encounter_id", "role", "user_name", "assigned_at", "assigned_by"], assigned)
        conn.commit()
    finally:
        raw.close()
    with engine.begin() as sa_conn:
        for index in task_indexes:
            index.drop(sa_conn)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
        next_id, chunk = 1, 5000
        for first in range(1, encounters + 1, chunk):
            lines, next_id = _task_lines(first, min(first + chunk - 1, encounters),
                                         per_encounter, now, rng, next_id)
            _copy(conn, RuleOutput.__table__, TASK_COLUMNS, lines)
            conn.commit()
            print(f"  tasks {next_id - 1:,} ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr)
    finally:
        raw.close()
    with engine.begin() as sa_conn:
        for index in task_indexes:
            index.create(sa_conn)
    with engine.connect() as sa_conn:
        sa_conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def counts(url: str) -> dict[str, int]:
    engine = make_engine(schema_url(url))
    with engine.connect() as conn:
        out = {
            "encounters": conn.scalar(select(func.count()).select_from(Encounter)),
            "tasks": conn.scalar(select(func.count()).select_from(RuleOutput)),
            "open_tasks": conn.scalar(select(func.count()).select_from(RuleOutput).where(
                RuleOutput.status == "active")),
        }
    engine.dispose()
    return out


async def _client(http: httpx.AsyncClient, urls: list[str], make, stop_at: float,
                  warm_until: float, out: list[float], think: float, errors: list[int]):
    rng = random.Random()
    while (now := time.perf_counter()) < stop_at:
        url = rng.choice(urls) + make(rng)
        t0 = time.perf_counter()
        try:
            response = await http.get(url)
        except httpx.TransportError:
            errors.append(0)
            continue
        took = time.perf_counter() - t0
        if response.status_code != 200:
            errors.append(response.status_code)
        elif now >= warm_until:
            out.append(took)
        if think:
            await asyncio.sleep(think)


async def scenario(bases: list[str], headers: dict[str, str], make, clients: int,
                   seconds: float, think: float, warmup: float = 3.0) -> dict:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as http:
        latencies: list[float] = []
        errors: list[int] = []
        start = time.perf_counter()
        await asyncio.gather(*(_client(http, bases, make, start + warmup + seconds,
                                       start + warmup, latencies, think, errors)
                               for _ in range(clients)))
    return summarise(latencies, seconds, len(errors))


def worklist_path(rng: random.Random) -> str:
    return f"/api/worklist?owner=cm{rng.randrange(2000):04d}&page_size=50"


def fhir_owner_path(rng: random.Random) -> str:
    return f"/fhir/Task?owner=cm{rng.randrange(2000):04d}&_count=50"


def fhir_open_path(rng: random.Random) -> str:
    return (f"/fhir/Task?owner=cm{rng.randrange(2000):04d}&status=ready,in-progress,on-hold"
            "&_sort=due&_count=50")


def health_path(_rng: random.Random) -> str:
    return "/health"


SCENARIOS = {
    "reference: GET /health (one SELECT 1, no auth, no rendering)": health_path,
    "worklist page (GET /api/worklist?owner=X, 50 rows, counts)": worklist_path,
    "FHIR Task search by owner (GET /fhir/Task?owner=X&_count=50)": fhir_owner_path,
    "FHIR open tasks by owner, by due (status=ready,in-progress,on-hold&_sort=due)":
        fhir_open_path,
}


def direct(url: str, clients: int, seconds: float) -> dict[str, dict]:
    """The same two reads without HTTP: `clients` threads calling worklist() and the FHIR
    search (parse, run, render) on their own sessions, to separate the database and the
    query code from the HTTP server."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.api.fhir import search, tasks
    from engine.api.fhir.router import search_registry
    from engine.api.runtime import Runtime
    from engine.core.config import Settings
    from engine.work.worklist import Filters, worklist

    runtime = Runtime.open(Settings(database_url=schema_url(url), rulesets=None,
                                    db_workers=clients), migrate=False)
    registry = search_registry()

    def read_worklist(rng: random.Random) -> None:
        with runtime.readers() as session:
            worklist(session, runtime.clock.now(), runtime.site.zone,
                     Filters(owner=f"cm{rng.randrange(2000):04d}"))

    def read_fhir(rng: random.Random) -> None:
        query = search.parse(registry, "Task", [("owner", f"cm{rng.randrange(2000):04d}"),
                                                ("_count", "50")], runtime.site.zone)
        with runtime.readers() as session:
            page = search.run(session, query)
            json.dumps(search.bundle(query, page, "http://bench/fhir",
                                     tasks.TASK.render(session, page.rows, runtime.staffing)))

    def loop(read, stop_at: float, out: list[float]) -> None:
        rng = random.Random()
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            read(rng)
            out.append(time.perf_counter() - t0)

    results = {}
    try:
        for name, read in (("worklist() in-process", read_worklist),
                           ("FHIR Task search by owner in-process", read_fhir)):
            latencies: list[float] = []
            with ThreadPoolExecutor(clients) as pool:
                stop_at = time.perf_counter() + seconds
                running = [pool.submit(loop, read, stop_at, latencies) for _ in range(clients)]
                for future in running:
                    future.result()
            results[name] = summarise(latencies, seconds, 0)
    finally:
        runtime.close()
    return results


def summarise(latencies: list[float], seconds: float, errors: int) -> dict:
    latencies = sorted(latencies)

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {"requests": len(latencies), "errors": errors,
            "per_s": round(len(latencies) / seconds, 1), "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--encounters", type=int, default=100_000)
    parser.add_argument("--tasks-per-encounter", type=int, default=20)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--think-ms", type=float, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep the data already loaded")
    parser.add_argument("--results", type=Path, default=None,
                        help="write a Markdown section to this file")
    args = parser.parse_args()
    if not args.reuse:
        load(args.url, args.encounters, args.tasks_per_encounter)
    sizes = counts(args.url)
    print(json.dumps(sizes), file=sys.stderr)
    env = {"ENGINE_RULESETS": "off", "ENGINE_LOG_LEVEL": "WARNING",
           "ENGINE_ESCALATION_GRACE_MINUTES": "100000000", "ENGINE_DB_WORKERS": "8"}
    servers = [start_server(schema_url(args.url), mllp=False, env=env)
               for _ in range(args.servers)]
    results: dict[str, dict] = {}
    try:
        bases = [s.base_url for s in servers]
        headers = bearer(servers[0])  # an integration client, as the EHR would sign in
        for name, make in SCENARIOS.items():
            one = asyncio.run(scenario(bases, headers, make, 1, min(args.seconds, 5), 0, warmup=1))
            loaded = asyncio.run(scenario(bases, headers, make, args.clients, args.seconds,
                                          args.think_ms / 1000))
            results[name] = {"single_client": one, "concurrent": loaded}
            print(json.dumps({name: results[name]}), file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
    in_process = direct(args.url, args.clients, args.seconds)
    print(json.dumps(in_process), file=sys.stderr)
    summary = {"sizes": sizes, "clients": args.clients, "servers": args.servers,
               "think_ms": args.think_ms, "results": results, "in_process": in_process,
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "cpus": os.cpu_count()}
    if args.results:
        args.results.write_text(report(summary))
    print(json.dumps(summary))


def report(summary: dict) -> str:
    sizes = summary["sizes"]
    lines = [
        "## Worklist and FHIR Task search (bench/worklist.py)",
        "",
        f"PostgreSQL, {sizes['encounters']:,} active encounters, {sizes['tasks']:,} tasks "
        f"({sizes['open_tasks']:,} open); {summary['servers']} `engine serve` processes; "
        f"{summary['clients']} concurrent closed-loop clients (httpx, same machine"
        f"{', think ' + str(summary['think_ms']) + ' ms' if summary['think_ms'] else ''}); "
        f"measured {datetime.now(UTC).date().isoformat()}.",
        "",
        "| request | 1 client p50 / p95 | concurrent p50 | p95 | p99 | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in summary["results"].items():
        one, many = r["single_client"], r["concurrent"]
        lines.append(f"| {name} | {one['p50_ms']} / {one['p95_ms']} ms | {many['p50_ms']} ms | "
                     f"{many['p95_ms']} ms | {many['p99_ms']} ms | {many['per_s']} |")
    lines += ["", f"Without HTTP ({summary['clients']} threads in one process, same database):",
              "", "| read | p50 | p95 | p99 | reads/s |", "|---|---|---|---|---|"]
    for name, r in summary["in_process"].items():
        lines.append(f"| {name} | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms | "
                     f"{r['per_s']} |")
    lines += ["", f"Machine: {summary['cpus']} CPUs; load average at the end "
              f"{summary['load_average']} (the clients, the servers and PostgreSQL share "
              "the machine)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
