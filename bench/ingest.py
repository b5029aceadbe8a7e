"""Ingest benchmark: MLLP senders as fast as ACKs come back, against a real `engine serve`.

Prints messages/second and ACK latency percentiles, beside the store's own commit limit
measured in the same run (one small row inserted and committed per transaction, with the
same durability settings), so the ratio shows how close ingest is to the storage bound.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.hl7.build import adt  # noqa: E402
from engine.hl7.framing import exchange as send  # noqa: E402
from engine.storage.db import make_engine  # noqa: E402
from harness.launch import start_server  # noqa: E402


def realistic_stream(n: int, sender: int) -> list[bytes]:
    """An A01/A08/A02/A03 mix over many concurrent stays, like a day's feed."""
    out: list[bytes] = []
    p = 0
    while len(out) < n:
        mrn, visit = f"{sender}{p:07d}", f"B{sender}-{p:07d}"
        t = [f"202603{2 + p % 25:02d}{h:02d}{(p * 7) % 60:02d}" for h in range(6, 22)]
        out.append(adt("A01", t[0], mrn=mrn, visit=visit, admit_time=t[0],
                       control_id=f"B{sender}-{uuid.uuid4().hex[:12]}",
                       extra=["DG1|1||I50.9^Heart failure^I10||20260302|A"]))
        for i in range(3):
            out.append(adt("A08", t[1 + i], mrn=mrn, visit=visit,
                           control_id=f"B{sender}-{uuid.uuid4().hex[:12]}",
                           extra=["DG1|1||I50.9^Heart failure^I10||20260302|A"]))
        out.append(adt("A02", t[5], mrn=mrn, visit=visit, location="5EAST^501^B^GENHOSP",
                       control_id=f"B{sender}-{uuid.uuid4().hex[:12]}"))
        out.append(adt("A08", t[6], mrn=mrn, visit=visit, location="5EAST^501^B^GENHOSP",
                       control_id=f"B{sender}-{uuid.uuid4().hex[:12]}"))
        out.append(adt("A03", t[8], mrn=mrn, visit=visit, discharge_time=t[8], disposition="01",
                       location="5EAST^501^B^GENHOSP",
                       control_id=f"B{sender}-{uuid.uuid4().hex[:12]}"))
        p += 1
    return out[:n]


def commit_limit(url: str, seconds: float = 3.0) -> float:
    """Single-row insert+commit transactions per second on this store: the fsync bound."""
    engine = make_engine(url, sqlite_synchronous=os.environ.get("ENGINE_SQLITE_SYNCHRONOUS",
                                                                "FULL"))
    meta = MetaData()
    table = Table(f"bench_commit_{uuid.uuid4().hex[:8]}", meta,
                  Column("id", Integer, primary_key=True), Column("v", String(50)))
    meta.create_all(engine)
    n = 0
    start = time.perf_counter()
    with engine.connect() as conn:
        while time.perf_counter() - start < seconds:
            with conn.begin():
                conn.execute(insert(table).values(v="x"))
            n += 1
    rate = n / (time.perf_counter() - start)
    meta.drop_all(engine)
    engine.dispose()
    return rate


def core_floor(url: str, seconds: float = 3.0) -> float:
    """Transactions per second of the minimal statement set one A08 needs, in SQLAlchemy Core.

    Twin check, inbound insert, identifier and encounter reads, two updates, one event
    insert and the commit: no parsing, no ORM, no logic. What any design on this stack pays.
    """
    from datetime import UTC, datetime

    from sqlalchemy import select, update

    from engine.storage.migrate import upgrade
    from engine.storage.models import (
        Encounter,
        EncounterEvent,
        InboundMessage,
        Patient,
        PatientIdentifier,
    )

    engine = make_engine(url, sqlite_synchronous=os.environ.get("ENGINE_SQLITE_SYNCHRONOUS",
                                                                "FULL"))
    upgrade(engine)
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    with engine.begin() as c:
        pid = c.execute(insert(Patient).values(version=1, updated_at=now)
                        .returning(Patient.id)).scalar_one()
        c.execute(insert(PatientIdentifier).values(patient_id=pid, system="F", value=tag,
                                                   is_mrn=True))
        eid = c.execute(insert(Encounter).values(
            patient_id=pid, visit_system="F", visit_number=tag, status="in-progress", version=1,
            updated_at=now).returning(Encounter.id)).scalar_one()
    n = 0
    start = time.perf_counter()
    with engine.connect() as c:
        while time.perf_counter() - start < seconds:
            with c.begin():
                c.execute(select(InboundMessage.id).where(
                    InboundMessage.sender == "floor", InboundMessage.control_id == f"{tag}{n}"))
                mid = c.execute(insert(InboundMessage).values(
                    channel="mllp", sender="floor", control_id=f"{tag}{n}", received_at=now,
                    raw=b"x" * 600, outcome="accepted", duplicates=0, attempts=1, ack="MSH|x"
                ).returning(InboundMessage.id)).scalar_one()
                c.execute(select(PatientIdentifier.patient_id, Patient).join(
                    Patient, Patient.id == PatientIdentifier.patient_id).where(
                    PatientIdentifier.system == "F", PatientIdentifier.value == tag)).first()
                c.execute(select(Encounter).where(Encounter.visit_system == "F",
                                                  Encounter.visit_number == tag)).first()
                c.execute(update(Encounter).where(Encounter.id == eid).values(
                    version=Encounter.version + 1, as_of=now, updated_at=now))
                c.execute(update(Patient).where(Patient.id == pid).values(as_of=now))
                c.execute(insert(EncounterEvent).values(
                    encounter_id=eid, message_id=mid, trigger="A08", event_time=now, late=False))
            n += 1
    rate = n / (time.perf_counter() - start)
    engine.dispose()
    return rate


def start_servers(url: str, processes: int) -> list:
    """One `engine serve`, or (scale-out) `processes` of them without the clock plus one
    `engine worker`, all on one database."""
    env = {"ENGINE_LOG_LEVEL": "WARNING"}
    if processes == 1:
        return [start_server(url, env=env)]
    servers = [start_server(url, env=env, command=("serve", "--no-clock"))
               for _ in range(processes)]
    return [*servers, start_server(url, env=env, command=("worker",))]


def run(url: str, connections: int, per_connection: int, warmup: int = 300,
        processes: int = 1) -> dict:
    servers = start_servers(url, processes)
    ports = [s.mllp_port for s in servers if s.mllp_port]
    streams = [realistic_stream(per_connection + warmup, c + 1) for c in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    barrier = threading.Barrier(connections + 1)

    def sender(c: int) -> None:
        sock = socket.create_connection(("127.0.0.1", ports[c % len(ports)]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for raw in streams[c][:warmup]:
            send(sock, raw)
        barrier.wait()
        for raw in streams[c][warmup:]:
            t0 = time.perf_counter()
            ack = send(sock, raw)
            latencies[c].append(time.perf_counter() - t0)
            if b"MSA|AA|" not in ack:
                errors.append(ack.decode(errors="replace")[:200])
        sock.close()

    threads = [threading.Thread(target=sender, args=(c,)) for c in range(connections)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for server in servers:
        server.stop()
    flat = sorted(x for lat in latencies for x in lat)
    q = statistics.quantiles(flat, n=100)
    return {
        "connections": connections,
        "processes": processes,
        "messages": len(flat),
        "rate": len(flat) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--messages", type=int, default=3000, help="per connection")
    parser.add_argument("--processes", type=int, default=1,
                        help="serving processes on one database (connections spread over them)")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "ENGINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    if args.store == "sqlite":
        tmp = tempfile.mkdtemp(prefix="engine-bench-")
        url = f"sqlite:///{tmp}/bench.db"
        limit_url = f"sqlite:///{tmp}/commit.db"
    else:
        from sqlalchemy import create_engine, text

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres_url.replace("postgresql://", "postgresql+psycopg://"))
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{args.postgres_url}?options=-csearch_path%3D{schema}"
        limit_url = url
    result = run(url, args.connections, args.messages, processes=args.processes)
    result["commit_limit"] = commit_limit(limit_url)
    result["core_floor"] = core_floor(limit_url)
    result["store"] = args.store
    if args.store == "postgres":
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
