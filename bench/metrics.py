"""Metrics benchmark: the /metrics page (14 metrics, their charts and tables) rendered by a
real `engine serve` on PostgreSQL holding 100,000 stays with their tasks, barriers, avoidable
days and payer authorizations, beside references measured in the same run.

Usage: python bench/metrics.py [--url postgresql://postgres@127.0.0.1:5432/test]
           [--stays 100000] [--renders 7] [--reuse] [--results FILE]

The data goes into its own schema (`bench_metrics`), generated in Python and loaded with
COPY (bulk, not through the HL7 path): 70,000 patients (so some come back), 100,000 stays
over six months (90% discharged, 85% inpatient, the rest observation), a status period and
7 tasks per stay (notices, reviews, planning work; most completed around their due time,
some open and overdue), 30,000 barriers, 20,000 avoidable-day records, 40,000 payer
authorizations. `--reuse` keeps an existing load. Each figure is the median of `--renders`
sequential requests after one warm-up; the references are GET /health (one SELECT 1) and
one SELECT count(*) over the stays, timed the same way; the page's own parts (the 14 SQL
queries, the 14 charts drawn anew) are timed in-process too. Charts are kept by content, so
the plain page after its warm-up draws none; a new period each request redraws the charts
whose tables depend on the period.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402
from sqlalchemy.schema import CreateSchema, DropSchema  # noqa: E402

from engine.storage.db import make_engine, normalise_url  # noqa: E402
from engine.storage.migrate import upgrade  # noqa: E402
from engine.storage.models import (  # noqa: E402
    AvoidableDay,
    Barrier,
    Encounter,
    Patient,
    PayerAuthorization,
    RuleOutput,
    StatusPeriod,
)
from harness.launch import bearer, start_server  # noqa: E402

SCHEMA = "bench_metrics"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
UNITS = ["4WEST", "5EAST", "3NORTH", "6SOUTH", "ICU", "7WEST", "2SOUTH", "OBS"]
SERVICES = ["MED", "SUR", "CAR", "ORT", "NEU", "ONC"]
PLANS = [("MCR001", "medicare", "MEDICARE"), ("MCA100", "medicare_advantage", "HUMANA MA"),
         ("MCD200", "medicaid", "STATE MEDICAID"), ("COM300", "commercial", "ACME HEALTH"),
         ("SELF", "self_pay", "SELF PAY")]
DRGS = ["291", "292", "293", "470", "871", "872", "190", "191", "192", "193", "194", "195",
        "377", "378", "379", "392", "603", "683", "689", "690", "064", "065", "066", "247",
        "281", "282", "309", "310", "312", "313", "480", "481", "482", "521", "522", "536"]
TASKS = [("im-notice", "case_manager"), ("im-follow-up-notice", "case_manager"),
         ("initial-ur-review", "ur_nurse"), ("continued-stay-review", "ur_nurse"),
         ("discharge-planning-evaluation", "case_manager"),
         ("confirm-discharge-plan", "case_manager"), ("authorization-request", "ur_nurse")]
CATEGORIES = [("post_acute_placement", "post_acute_provider", "PA01"),
              ("payer", "payer", "PY01"), ("patient_family", "patient_family", "PF01"),
              ("physician", "physician", "PH01"), ("hospital_system", "hospital", "HS01"),
              ("community_resource", "community", "CR01")]


def schema_url(base: str) -> str:
    url = normalise_url(base)
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={SCHEMA}')}"


def _ts(when: datetime | None) -> str:
    return "\\N" if when is None else when.isoformat()


def _copy(conn, table, columns: list[str], lines: list[str]) -> None:
    """COPY rows (tab-separated text, \\N for NULL) into a table of the engine's schema."""
    names = ", ".join(f'"{c}"' for c in columns)  # quoted: status_period has "end"
    with conn.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        copy.write("\n".join(lines) + "\n")


def generate(stays: int, now: datetime, rng: random.Random) -> dict[str, tuple[list[str], list]]:
    """Every table's COPY columns and lines."""
    patients = max(stays * 7 // 10, 1)
    pat = [f"{p}\tBENCH{p:06d}\tPAT\tF\t1\t{_ts(now)}" for p in range(1, patients + 1)]
    encs, periods, tasks, barriers, days, auths = [], [], [], [], [], []
    task_id = barrier_id = day_id = auth_id = 0
    for e in range(1, stays + 1):
        admit = now - timedelta(hours=rng.uniform(2, 24 * 180))
        los = timedelta(hours=rng.uniform(4, 24 * 12))
        out = admit + los if rng.random() < 0.9 and admit + los < now else None
        inpatient = rng.random() < 0.85
        plan, payer_class, payer_name = PLANS[e % len(PLANS)]
        unit, service = UNITS[rng.randrange(len(UNITS))], SERVICES[rng.randrange(6)]
        drg = DRGS[rng.randrange(len(DRGS))] if inpatient and rng.random() < 0.95 else "\\N"
        encs.append("\t".join((
            str(e), str(rng.randrange(1, patients + 1)), "GENHOSP", f"BV{e:07d}",
            "finished" if out else "in-progress", "inpatient" if inpatient else "observation",
            "I" if inpatient else "O", _ts(admit), _ts(out), unit, service, plan, payer_name,
            payer_class, drg, "1", _ts(now))))
        periods.append(f"{e}\t{e}\t{'inpatient' if inpatient else 'observation'}\t"
                       f"{_ts(admit)}\t{_ts(out)}\tf")
        owner_cm, owner_ur = f"cm{e % 400:04d}", f"ur{e % 100:04d}"
        for code, queue in TASKS + ([("moon-notice", "case_manager")] if not inpatient else []):
            task_id += 1
            due = admit + timedelta(hours=rng.uniform(4, 72))
            roll = rng.random()
            if roll < 0.8:
                status = task_status = "completed"
                ended: datetime | None = due + timedelta(hours=rng.uniform(-30, 10))
            elif roll < 0.9 and not out:
                status, task_status, ended = "active", rng.choice(["ready", "in-progress"]), None
            else:
                status = task_status = "cancelled"
                ended = due
            owner = "\\N" if rng.random() < 0.2 else (owner_ur if queue == "ur_nurse"
                                                       else owner_cm)
            tasks.append("\t".join((
                str(task_id), str(e), "1", f"rule-{code}/task/{code}", "task", code,
                f"rule-{code}", "bench", "v1", status, f"Work on {code}", "routine", queue,
                _ts(due), _ts(due - timedelta(hours=2)), _ts(now), _ts(ended), "1",
                task_status, owner)))
        if rng.random() < 0.3:
            barrier_id += 1
            category, _party, reason = CATEGORIES[rng.randrange(len(CATEGORIES))]
            opened = admit + timedelta(hours=rng.uniform(0, 48))
            resolved = out if out else (None if rng.random() < 0.7 else now)
            barriers.append("\t".join((str(barrier_id), str(e), category, reason,
                                       _ts(opened), "cm0001", _ts(resolved),
                                       "cm0001" if resolved else "\\N", _ts(opened),
                                       "cm0001", _ts(now), "cm0001", "1")))
        if out and rng.random() < 0.2:
            day_id += 1
            category, party, reason = CATEGORIES[rng.randrange(len(CATEGORIES))]
            first = (out - timedelta(days=rng.randrange(1, 4))).date()
            last = first + timedelta(days=rng.randrange(0, 3))
            status = rng.choice(["confirmed"] * 7 + ["proposed", "rejected", "confirmed"])
            days.append("\t".join((str(day_id), str(e), first.isoformat(), last.isoformat(),
                                   reason, category, party, status, "person", "ur0001",
                                   _ts(now), "ur0001", _ts(now), "1")))
        if rng.random() < 0.4:
            auth_id += 1
            status = rng.choice(["approved"] * 5 + ["pending", "pended", "denied",
                                                    "partially_approved"])
            auths.append("\t".join((str(auth_id), str(e), payer_name, plan, status, "web",
                                    "ur0001", _ts(admit), "ur0001", _ts(now), "1")))
    return {
        "patient": (["id", "family", "given", "sex", "version", "updated_at"], pat),
        "encounter": (["id", "patient_id", "visit_system", "visit_number", "status",
                       "care_status", "patient_class", "admit_time", "discharge_time", "unit",
                       "hospital_service", "payer_plan", "payer_name", "payer_class",
                       "working_drg", "version", "updated_at"], encs),
        "status_period": (["id", "encounter_id", "care_status", "start", "end", "cancelled"],
                          periods),
        "rule_output": (["id", "encounter_id", "patient_id", "key", "kind", "code", "rule_id",
                         "ruleset", "ruleset_version", "status", "title", "priority", "queue",
                         "due_at", "fired_at", "updated_at", "ended_at", "version",
                         "task_status", "owner"], tasks),
        "barrier": (["id", "encounter_id", "category", "reason_code", "opened_at", "opened_by",
                     "resolved_at", "resolved_by", "entered_at", "entered_by", "updated_at",
                     "updated_by", "version"], barriers),
        "avoidable_day": (["id", "encounter_id", "first_day", "last_day", "reason_code",
                           "category", "responsible_party", "status", "source", "entered_by",
                           "entered_at", "updated_by", "updated_at", "version"], days),
        "payer_authorization": (["id", "encounter_id", "payer", "plan", "status", "source",
                                 "entered_by", "entered_at", "updated_by", "updated_at",
                                 "version"], auths),
    }


TABLES = {t.__tablename__: t.__table__ for t in (Patient, Encounter, StatusPeriod, RuleOutput,
                                                  Barrier, AvoidableDay, PayerAuthorization)}


def load(url: str, stays: int) -> None:
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(DropSchema(SCHEMA, cascade=True, if_exists=True))
        conn.execute(CreateSchema(SCHEMA))
    admin.dispose()
    engine = make_engine(schema_url(url))
    upgrade(engine)
    started = time.perf_counter()
    data = generate(stays, datetime.now(UTC), random.Random(15))
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")  # no FK checks while loading
        for name, (columns, lines) in data.items():
            _copy(conn, TABLES[name], columns, lines)
            print(f"  {name}: {len(lines):,}", file=sys.stderr)
        conn.commit()
    finally:
        raw.close()
    with engine.connect() as sa_conn:
        # as autovacuum leaves a table: statistics and the visibility map (index-only scans)
        sa_conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "VACUUM ANALYZE")
    engine.dispose()
    print(f"loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def counts(url: str) -> dict[str, int]:
    engine = make_engine(schema_url(url))
    with engine.connect() as conn:
        out = {name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
               for name, table in TABLES.items()}
    engine.dispose()
    return out


def _median_ms(call, runs: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 1)


def in_process(url: str, runs: int) -> dict[str, float]:
    """The page's parts without HTTP: the 14 queries, then the 14 charts of their tables."""
    from engine.api.web import charts
    from engine.core.config import DEFAULT_RULESETS
    from engine.reporting.catalogue import METRICS, compute_all
    from engine.reporting.scope import Scope
    from engine.reporting.table import Context
    from engine.rules.reference import load_reference

    engine = make_engine(schema_url(url))
    from engine.storage.db import session_factory

    readers = session_factory(engine, read_only=True)
    ctx = Context(datetime.now(UTC), __import__("zoneinfo").ZoneInfo("America/Chicago"),
                  load_reference(DEFAULT_RULESETS / "reference").drgs)
    tables = {}

    def queries() -> None:  # as the page runs them: families side by side
        tables.update(compute_all(readers, Scope(), lambda: Context(ctx.now, ctx.zone,
                                                                    ctx.drgs)))

    def draw() -> None:  # cold: every chart drawn
        charts._drawn.cache_clear()
        for metric in METRICS:
            charts.svg(metric, tables[metric.key])

    def count() -> None:
        with readers() as session:
            session.execute(text("SELECT count(*) FROM encounter")).scalar()

    try:
        return {"count_ms": _median_ms(count, runs), "queries_ms": _median_ms(queries, runs),
                "charts_ms": _median_ms(draw, runs),
                "per_query_ms": {m.key: _median_ms(lambda m=m: _one(readers, m, ctx), 3)
                                 for m in METRICS}}
    finally:
        engine.dispose()


def _one(readers, metric, ctx) -> None:
    """One metric alone (a context of its own: nothing shared with the others)."""
    from engine.reporting.scope import Scope
    from engine.reporting.table import Context

    with readers() as session:
        metric.query(session, Scope(), Context(ctx.now, ctx.zone, ctx.drgs))


def over_http(url: str, runs: int) -> dict[str, float]:
    env = {"ENGINE_RULESETS": "off", "ENGINE_LOG_LEVEL": "WARNING",
           "ENGINE_ESCALATION_GRACE_MINUTES": "100000000"}
    server = start_server(schema_url(url), mllp=False, env=env)
    try:
        headers = bearer(server, "supervisor")
        month = (date.today() - timedelta(days=30)).isoformat()
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as http:
            def get(path: str, **params: str):
                def call() -> None:
                    answer = http.get(path, params=params)
                    assert answer.status_code == 200, (path, answer.status_code,
                                                       answer.text[:300])
                return call
            size = len(http.get("/metrics").text)
            days = iter(range(1, 10_000))

            def new_period() -> None:  # a period not asked before: its charts are drawn
                start = (date.today() - timedelta(days=170 - next(days))).isoformat()
                get("/metrics", **{"from": start})()
            return {
                "health_ms": _median_ms(get("/health"), runs),
                "page_ms": _median_ms(get("/metrics"), runs),
                "page_new_period_ms": _median_ms(new_period, runs),
                "page_month_unit_ms": _median_ms(get("/metrics", **{"from": month,
                                                                    "unit": "4WEST"}), runs),
                "csv_ms": _median_ms(get("/metrics/los-by-drg-family.csv"), runs),
                "page_bytes": size,
            }
    finally:
        server.stop()


def report(summary: dict) -> str:
    sizes, http, parts = summary["sizes"], summary["http"], summary["in_process"]
    verdict = "met" if http["page_ms"] < 1000 else "**not met**"
    lines = [
        "## Metrics page (bench/metrics.py)",
        "",
        f"PostgreSQL, {sizes['encounter']:,} stays, {sizes['rule_output']:,} tasks, "
        f"{sizes['barrier']:,} barriers, {sizes['avoidable_day']:,} avoidable-day records, "
        f"{sizes['payer_authorization']:,} authorizations; one `engine serve`, one client, "
        f"median of {summary['renders']} requests after a warm-up; measured "
        f"{datetime.now(UTC).date().isoformat()}.",
        "",
        "| request | median |",
        "|---|---|",
        f"| reference: GET /health (one SELECT 1) | {http['health_ms']} ms |",
        f"| reference: SELECT count(*) FROM encounter (in-process) | {parts['count_ms']} ms |",
        f"| GET /metrics, no filters (14 metrics, charts, tables; {http['page_bytes'] // 1024}"
        f" KiB) | **{http['page_ms']} ms** (goal < 1 s: {verdict}) |",
        f"| GET /metrics?from=<a date not asked before> (the period's charts drawn anew) | "
        f"{http['page_new_period_ms']} ms |",
        f"| GET /metrics?from=<30 days ago>&unit=4WEST | {http['page_month_unit_ms']} ms |",
        f"| GET /metrics/los-by-drg-family.csv | {http['csv_ms']} ms |",
        f"| of the page: the 14 metrics' queries (in-process, families side by side) | "
        f"{parts['queries_ms']} ms |",
        f"| of the page: the 14 charts drawn anew (matplotlib SVG, in-process) | "
        f"{parts['charts_ms']} ms |",
        "",
        "Each metric alone (ms; a family's metrics share one GROUP BY on the page): "
        + ", ".join(f"{k} {v}" for k, v in parts["per_query_ms"].items())
        + ".",
        "",
        f"Machine: {summary['cpus']} CPUs; load average at the end {summary['load_average']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ENGINE_TEST_POSTGRES_URL",
                                                        DEFAULT_URL))
    parser.add_argument("--stays", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the data already loaded")
    parser.add_argument("--results", type=Path, default=None,
                        help="write a Markdown section to this file")
    args = parser.parse_args()
    if not args.reuse:
        load(args.url, args.stays)
    else:  # a load from before the latest migration: bring it up to date
        engine = make_engine(schema_url(args.url))
        upgrade(engine)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE")
        engine.dispose()
    sizes = counts(args.url)
    print(json.dumps(sizes), file=sys.stderr)
    parts = in_process(args.url, args.renders)
    print(json.dumps(parts), file=sys.stderr)
    http = over_http(args.url, args.renders)
    summary = {"sizes": sizes, "renders": args.renders, "http": http, "in_process": parts,
               "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    if args.results:
        args.results.write_text(report(summary), encoding="utf-8")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
