"""Ingest soak: a long simulated feed through one `engine serve` process, memory sampled.

The feed is `engine simulate` output (a 500-bed hospital, month after month: admissions,
transfers, daily updates, discharges, cancels, merges, resends; each month discharges the
stays it leaves open, so the census stays that of 500 beds while the history grows), sent
over one MLLP connection waiting for each ACK, rules on, SQLite by default. The server's
resident set size (VmRSS of its process) is sampled every tenth of the run. Memory is flat
when the last sample is within 20% of the sample after the first 10% (the warm-up). Every
message must be answered AA (resends are answered as duplicates, also AA).

Usage: python bench/soak_ingest.py [--messages 1000000]
Exits 1 when memory is not flat or a message was not accepted.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.core.config import DEFAULT_SITE_PROFILE  # noqa: E402
from engine.core.site import load_site_profile  # noqa: E402
from engine.hl7.framing import exchange  # noqa: E402
from engine.tools.simulate import simulate  # noqa: E402
from harness.launch import start_server  # noqa: E402

_IDS = re.compile(rb"(?<![A-Za-z0-9])(SIM|SV|S|D)(\d{6,8})(?!\d)")


def feed(messages: int, beds: int = 500, days: int = 30) -> Iterator[bytes]:
    """Month after month of one simulated hospital; identifiers made unique per month."""
    site = load_site_profile(DEFAULT_SITE_PROFILE)
    sent = 0
    month = 0
    while sent < messages:
        start = date(2026, 3, 1) + timedelta(days=days * month)
        sim = simulate(beds, days, seed=100 + month, site=site, start=start, mess=0.02,
                       discharge_at_end=True)
        tag = b"M%03d" % month
        for raw in sim.messages:
            yield _IDS.sub(lambda m, tag=tag: m.group(1) + tag + m.group(2), raw)
            sent += 1
            if sent >= messages:
                return
        month += 1


def _said(ack: bytes) -> str:
    """The ACK's MSA and ERR segments: the code, the control id and the error's text."""
    text = ack.strip(b"\x0b\x1c\r").decode(errors="replace")
    return " | ".join(seg for seg in text.split("\r") if seg.startswith(("MSA", "ERR")))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS (Linux only)")


def soak(messages: int, url: str, samples: int = 10, tolerance: float = 0.20) -> dict:
    server = start_server(url, env={"ENGINE_CLOCK_INTERVAL_S": "30"})
    pid = server.proc.pid
    every = max(messages // samples, 1)
    series = [(0, rss_kib(pid))]
    codes: dict[str, int] = {}
    refused: list[dict] = []  # what the server said about each message not accepted
    started = time.perf_counter()
    done = 0
    try:
        with socket.create_connection(("127.0.0.1", server.mllp_port), timeout=60) as sock:
            for raw in feed(messages):
                ack = exchange(sock, raw, 60)
                code = ack.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in ack else "??"
                codes[code] = codes.get(code, 0) + 1
                if code != "AA" and len(refused) < 20:
                    refused.append({"message": done + 1, "ack": _said(ack)})
                done += 1
                if done % every == 0 or done == messages:
                    series.append((done, rss_kib(pid)))
                    rate = done / (time.perf_counter() - started)
                    print(f"{done:>9,} messages  server RSS {series[-1][1] / 1024:7.1f} MiB  "
                          f"{rate:6.0f}/s", file=sys.stderr, flush=True)
    finally:
        server.stop(60)
    # The server's warnings and errors (its log carries no patient data): why it refused.
    logged = [line.rstrip() for line in server.output
              if " WARNING " in line or " ERROR " in line][:50]
    elapsed = time.perf_counter() - started
    warm = next((s for s in series if s[0] >= messages // 10), series[-1])
    growth = series[-1][1] - warm[1]
    flat = abs(growth) <= tolerance * warm[1]
    return {
        "messages": done, "seconds": round(elapsed), "messages_per_s": round(done / elapsed),
        "acks": codes, "refused": refused, "server_log": logged, "rss_kib": series,
        "rss_after_warmup_kib": warm[1],
        "rss_final_kib": series[-1][1], "growth_after_warmup_kib": growth,
        "growth_bytes_per_message": round(growth * 1024 / max(series[-1][0] - warm[0], 1), 3),
        "flat": flat, "ok": flat and set(codes) == {"AA"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engine-soak-") as tmp:
        result = soak(args.messages, f"sqlite:///{Path(tmp) / 'soak.db'}")
    print(json.dumps(result))
    verdict = "flat" if result["flat"] else "NOT flat"
    print(f"server memory {verdict}: {result['rss_after_warmup_kib'] / 1024:.1f} MiB after "
          f"{args.messages // 10:,} messages, {result['rss_final_kib'] / 1024:.1f} MiB after "
          f"{result['messages']:,}; ACKs {result['acks']}", file=sys.stderr)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
