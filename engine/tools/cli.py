"""The `engine` command: serve, ingest, inspect the quarantine, migrate, run the demo."""

from __future__ import annotations

# Each command imports the floors it needs when it runs (ruff PLC0415 is waived for this
# module in pyproject.toml): `engine --help` and the quick commands start in about half the
# time the whole server, app, simulator and case runner take to import.
import asyncio
import logging
import os
import secrets
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from engine.core.config import Settings, get_settings
from engine.core.errors import EngineError
from engine.tools.rules_cli import rules_app
from engine.tools.security_cli import clients_app, users_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
hl7_app = typer.Typer(no_args_is_help=True,
                      help="HL7 quarantine and warnings: list and replay; what was acknowledged "
                           "as harmless.")
app.add_typer(db_app, name="db")
app.add_typer(hl7_app, name="hl7")
app.add_typer(rules_app, name="rules")
app.add_typer(users_app, name="users")
app.add_typer(clients_app, name="clients")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ROOT = Path(__file__).resolve().parents[2]


class CliError(EngineError):
    """A failure to report as one line and a non-zero exit."""


def _runtime(settings: Settings | None = None, migrate: bool = True):
    from engine.api.runtime import Runtime

    return Runtime.open(settings or get_settings(), migrate=migrate)


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0 picks a free one).")] = 8080,
    mllp_port: Annotated[int, typer.Option(help="MLLP port (0 picks a free one).")] = 2575,
    no_mllp: Annotated[bool, typer.Option(help="Run the HTTP API only.")] = False,
    no_clock: Annotated[bool, typer.Option(
        help="Leave the clock (time-based re-evaluation) to `engine worker` processes.")] = False,
) -> None:
    """Run the FHIR API and the MLLP listener in one process (upgrades the database first)."""
    settings = get_settings()
    _run_server(settings, host, port, None if no_mllp else mllp_port, clock=not no_clock)


@app.command()
def mllp(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port.")] = 2575,
) -> None:
    """Run the MLLP listener alone."""
    _run_server(get_settings(), host, None, port)


@app.command()
def worker() -> None:
    """Run the background role alone: the clock and the ruleset watcher (beside
    `engine serve --no-clock` processes sharing one PostgreSQL)."""
    from engine.api.server import work

    settings = get_settings()
    _logging(settings)
    runtime = _runtime(settings)

    def announce(_bound: dict[str, int]) -> None:
        out.print(f"worker on database {settings.database_url.split('@')[-1]}", highlight=False)
        out.print("ready", highlight=False)
        sys.stdout.flush()

    asyncio.run(work(runtime, announce))


def _run_server(settings: Settings, host: str, port: int | None, mllp_port: int | None,
                *, clock: bool = True) -> None:
    from engine.api.server import serve as serve_forever

    _logging(settings)
    runtime = _runtime(settings)

    def announce(bound: dict[str, int]) -> None:
        if "http" in bound:
            out.print(f"HTTP  http://{host}:{bound['http']}/fhir/metadata")
        if "mllp" in bound:
            out.print(f"MLLP  {host}:{bound['mllp']}")
        out.print(f"database {settings.database_url.split('@')[-1]}", highlight=False)
        out.print("ready", highlight=False)
        sys.stdout.flush()

    asyncio.run(serve_forever(runtime, host=host, port=port, mllp_port=mllp_port,
                              announce=announce, clock=clock))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema to the latest migration."""
    from engine.storage.migrate import current_revision

    runtime = _runtime()
    out.print(f"database at revision {current_revision(runtime.engine)}")
    runtime.close()


def _hl7_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and not p.name.endswith((".md", ".py"))
            )
        elif path.is_file():
            yield path
        else:
            raise CliError(f"no such file or folder: {path}")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help=".hl7 files or folders of them.")],
    clock: Annotated[str, typer.Option(
        help="'wall': rules see the current time; 'events': the clock follows the messages' "
             "event times, so time-based rules fire as the stream's time passes.")] = "wall",
) -> None:
    """Load HL7 files through the same path as the MLLP listener, with a summary."""
    from engine.core.clock import FixedClock
    from engine.hl7.framing import split_file
    from engine.intake.replay import replay

    if clock not in ("wall", "events"):
        raise CliError(f"--clock must be 'wall' or 'events', not {clock!r}")
    files = list(_hl7_files(paths))
    messages = [m for f in files for m in split_file(f.read_bytes())]
    if not messages:
        raise CliError(f"no HL7 messages found in {', '.join(map(str, paths))}")
    from engine.api.runtime import Runtime

    stream_clock = FixedClock(datetime(1900, 1, 1, tzinfo=UTC)) if clock == "events" else None
    runtime = Runtime.open(get_settings(), clock=stream_clock)
    counts: Counter[str] = Counter()
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("ingest", total=len(messages))

        def count(receipt) -> None:
            counts[receipt.outcome] += 1
            progress.advance(task)

        if stream_clock is not None:
            replay(runtime.intake, stream_clock, messages, on_receipt=count)
        else:
            for raw in messages:
                count(runtime.intake.hl7(raw, channel="file"))
    runtime.close()
    out.print(
        f"{len(messages)} messages from {len(files)} file(s): "
        f"accepted {counts['accepted']}, duplicate {counts['duplicate']}, "
        f"ignored {counts['ignored']}, errors {counts['error'] + counts['rejected']}"
        + (f", storage unavailable {counts['unavailable']}" if counts["unavailable"] else ""),
        highlight=False,
    )
    if counts["unavailable"]:
        raise typer.Exit(1)


@app.command()
def simulate(
    beds: Annotated[int, typer.Option(min=1, help="Staffed beds.")] = 100,
    days: Annotated[int, typer.Option(min=1, help="Days of feed.")] = 7,
    seed: Annotated[int, typer.Option(help="Same seed, same stream.")] = 1,
    mess: Annotated[float, typer.Option(
        min=0, max=1, help="Rate of duplicates, late updates, cancels and merges.")] = 0.02,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Write the stream here (and the truth to FILE.truth.json).")] = None,
    mllp: Annotated[str | None, typer.Option(
        help="Send the stream to HOST:PORT over MLLP, waiting for each ACK.")] = None,
) -> None:
    """Generate a synthetic hospital's ADT stream (no real patients) and its truth."""
    import json
    import socket

    from engine.core.site import load_site_profile
    from engine.hl7.framing import exchange
    from engine.tools.simulate import simulate as run_simulation

    if (out_file is None) == (mllp is None):
        raise CliError("give exactly one of --out FILE or --mllp HOST:PORT")
    sim = run_simulation(beds, days, seed, load_site_profile(get_settings().site_profile),
                         mess=mess)
    summary = ", ".join(f"{k} {v}" for k, v in sim.counts.items())
    if out_file is not None:
        out_file.write_bytes(b"\n".join(sim.messages))
        truth = out_file.with_name(out_file.name + ".truth.json")
        truth.write_text(json.dumps({v: t.as_dict() for v, t in sim.truth.items()}, indent=1))
        out.print(f"{len(sim.messages)} messages for {len(sim.truth)} visits -> {out_file} "
                  f"(truth: {truth}); {summary}", highlight=False)
        return
    host, _, port = (mllp or "").rpartition(":")
    if not host or not port.isdigit():
        raise CliError(f"--mllp must be HOST:PORT, not {mllp!r}")
    counts: Counter[str] = Counter()
    with socket.create_connection((host, int(port)), timeout=30) as sock, Progress(
            TextColumn("send"), BarColumn(), MofNCompleteColumn(), console=err,
            transient=True) as progress:
        task = progress.add_task("send", total=len(sim.messages))
        for raw in sim.messages:
            try:
                ack = exchange(sock, raw)
            except OSError as exc:
                raise CliError(f"MLLP exchange with {mllp} failed: {exc}") from exc
            counts[ack.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in ack else "??"] += 1
            progress.advance(task)
    out.print(f"sent {len(sim.messages)} messages to {mllp}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), highlight=False)


@app.command()
def tick(
    at: Annotated[str | None, typer.Option(
        help="Evaluate at this instant (ISO 8601; local hospital time unless it has an "
             "offset). Default: now.")] = None,
    due_only: Annotated[bool, typer.Option(
        help="Only encounters whose next time boundary has passed.")] = False,
) -> None:
    """Evaluate all open encounters (or only the due ones) at a given instant."""
    from engine.api.runtime import Runtime
    from engine.planning.tick import count_due
    from engine.planning.tick import tick as run_tick

    settings = get_settings()
    runtime = Runtime.open(settings)
    instant = _instant(at, runtime.site.zone) if at else datetime.now(UTC)
    if runtime.rules.current is None:
        raise CliError(f"no rulesets found in {settings.rulesets}")
    total = count_due(runtime.sessions, instant, all_open=not due_only)
    with Progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("evaluate", total=total)
        done = run_tick(runtime.sessions, runtime.rules.current, instant,
                        all_open=not due_only, progress=lambda n: progress.advance(task, n))
    runtime.close()
    out.print(f"evaluated {done} encounter(s) at {instant.isoformat()}", highlight=False)


def _instant(text: str, zone) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CliError(f"{text!r} is not an ISO 8601 date-time (e.g. 2026-03-02T09:00)") from exc
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _inbound_table(rows, last: str, value) -> Table:
    """Inbound rows as the operator reads them: which message, what became of it, and one
    column of why (the refusal's reason, the warnings)."""
    table = Table("id", "received", "channel", "type", "control id", "outcome", last)
    for row in rows:
        table.add_row(
            str(row.id), row.received_at.strftime("%Y-%m-%d %H:%M:%S"), row.channel,
            f"{row.message_type or '?'}^{row.trigger or '?'}", row.control_id or "",
            row.outcome, value(row) or "",
        )
    return table


@hl7_app.command("quarantine")
def quarantine(limit: Annotated[int, typer.Option(help="Rows to show.")] = 50) -> None:
    """List inputs that were refused (AE/AR) and are kept for replay (harmless ones
    acknowledged without being applied: `engine hl7 ignored`)."""
    from sqlalchemy import func, select

    from engine.core.vocabulary import InputOutcome
    from engine.intake.path import QUARANTINED
    from engine.storage.models import InboundMessage

    runtime = _runtime()
    with runtime.readers() as session:
        total = session.scalar(
            select(func.count()).where(InboundMessage.outcome.in_(QUARANTINED))
        )
        rows = session.scalars(
            select(InboundMessage)
            .where(InboundMessage.outcome.in_(QUARANTINED))
            .order_by(InboundMessage.id)
            .limit(limit)
        ).all()
        ignored_total = session.scalar(
            select(func.count()).where(InboundMessage.outcome == InputOutcome.IGNORED))
        table = _inbound_table(rows, "reason", lambda row: row.reason)
    runtime.close()
    out.print(table)
    out.print(f"{total} quarantined input(s)")
    if ignored_total:
        out.print(f"{ignored_total} input(s) acknowledged as harmless and not applied: "
                  "engine hl7 ignored")


@hl7_app.command("ignored")
def ignored(
    rows: Annotated[bool, typer.Option("--rows", help="List each message, not only triggers.")]
    = False,
    limit: Annotated[int, typer.Option(help="Rows to show with --rows.")] = 50,
) -> None:
    """List inputs acknowledged (AA) as harmless and not applied, by trigger, with why."""
    from sqlalchemy import func, select

    from engine.core.vocabulary import InputOutcome
    from engine.storage.models import InboundMessage

    runtime = _runtime()
    is_ignored = InboundMessage.outcome == InputOutcome.IGNORED
    with runtime.readers() as session:
        by_trigger = session.execute(
            select(InboundMessage.trigger, func.count(), func.min(InboundMessage.received_at),
                   func.max(InboundMessage.received_at), func.max(InboundMessage.reason))
            .where(is_ignored).group_by(InboundMessage.trigger).order_by(InboundMessage.trigger)
        ).all()
        table = Table("trigger", "messages", "first received", "last received", "why")
        for trigger, count, first, last, why in by_trigger:
            table.add_row(trigger or "?", str(count), first.strftime("%Y-%m-%d %H:%M:%S"),
                          last.strftime("%Y-%m-%d %H:%M:%S"), why or "")
        listed = Table("id", "received", "channel", "type", "control id")
        if rows:
            for row in session.scalars(select(InboundMessage).where(is_ignored)
                                       .order_by(InboundMessage.id).limit(limit)):
                listed.add_row(str(row.id), row.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                               row.channel, f"{row.message_type or '?'}^{row.trigger or '?'}",
                               row.control_id or "")
    runtime.close()
    out.print(table)
    if rows:
        out.print(listed)
    total = sum(count for _, count, *_rest in by_trigger)
    out.print(f"{total} ignored input(s) in {len(by_trigger)} trigger(s)")


@hl7_app.command("warnings")
def warnings(limit: Annotated[int, typer.Option(help="Rows to show.")] = 50) -> None:
    """List inputs that were accepted with warnings: a value cut to fit, an unmapped code,
    an unusable time read from elsewhere. The raw message is kept whole."""
    from sqlalchemy import func, select

    from engine.storage.models import InboundMessage

    runtime = _runtime()
    warned = InboundMessage.warnings.is_not(None)
    with runtime.readers() as session:
        total = session.scalar(select(func.count()).where(warned))
        rows = session.scalars(
            select(InboundMessage).where(warned).order_by(InboundMessage.id).limit(limit)
        ).all()
        table = _inbound_table(rows, "warnings", lambda row: row.warnings)
    runtime.close()
    out.print(table)
    out.print(f"{total} input(s) accepted with warnings")


@hl7_app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Inbound message ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Replay the whole quarantine.")] = False,
) -> None:
    """Run quarantined inputs through the path again, after a fix."""
    from sqlalchemy import select

    from engine.intake.path import REPLAYABLE
    from engine.storage.models import InboundMessage

    if not ids and not all_:
        raise CliError("name message ids to replay, or --all")
    runtime = _runtime()
    if all_:
        with runtime.readers() as session:
            ids = list(session.scalars(
                select(InboundMessage.id).where(InboundMessage.outcome.in_(REPLAYABLE))
                .order_by(InboundMessage.event_time, InboundMessage.id)
            ))
    counts: Counter[str] = Counter()
    for message_id in ids or []:
        try:
            receipt = runtime.intake.replay(message_id)
        except LookupError as exc:
            raise CliError(str(exc)) from exc
        counts[receipt.outcome] += 1
        out.print(f"{message_id}: {receipt.outcome}" + (f" ({receipt.reason})" if receipt.reason
                                                       else ""), highlight=False)
    runtime.close()
    out.print(f"replayed {sum(counts.values())}: " + ", ".join(f"{k} {v}" for k, v in
                                                              sorted(counts.items())))


@app.command()
def demo(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    mllp_port: Annotated[int, typer.Option()] = 2575,
) -> None:
    """Load the synthetic demo hospital into the embedded SQLite store and serve it."""
    if "ENGINE_DATABASE_URL" not in os.environ:  # the demo's own store: rebuilt on each start
        os.environ["ENGINE_DATABASE_URL"] = "sqlite:///demo.db"
        for stale in ("demo.db", "demo.db-wal", "demo.db-shm"):
            Path(stale).unlink(missing_ok=True)
    get_settings.cache_clear()
    settings = get_settings()
    from engine.tools.demo import load_demo

    # Only a simulated hospital (duplicates, late messages, cancels and merges included): the
    # dated story files in fixtures/hl7/stories would be stays open for months by now
    # (`engine ingest fixtures/hl7/stories` loads them). A 60-bed hospital over the week up
    # to now, loaded in event time with its staff working, so the worklists look live.
    with Progress(TextColumn("demo hospital"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("load", total=None)
        loaded = load_demo(settings, progress=lambda done, total: progress.update(
            task, completed=done, total=total))
    counts = loaded.counts
    runtime = _runtime(settings)
    password, secret = _demo_accounts(runtime)
    runtime.close()
    print(f"demo data loaded: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}; "
          f"{loaded.completed} tasks completed by the simulated staff")
    base = f"http://{host}:{port}"
    print(f"""
DEMO ONLY: these accounts are for trying the engine on synthetic data; never keep them
on a system with real patients (engine users disable NAME; engine clients disable NAME).
  web sign-in  {base}/login
  users        {', '.join(f'{n} ({r})' for n, r, _ in demo_users(settings))}
  password     {password}   (the same for every demo user, new on each start)
  EHR client   client_id {DEMO_CLIENT}  client_secret {secret}
  a token      curl -u {DEMO_CLIENT}:{secret} -d grant_type=client_credentials {base}/auth/token
""")
    _run_server(settings, host, port, mllp_port)


DEMO_USERS = (("cm.demo", "case_manager"), ("ur.demo", "ur_nurse"), ("sup.demo", "supervisor"),
              ("director.demo", "director"), ("info.demo", "informaticist"),
              ("admin.demo", "admin"))
DEMO_CLIENT = "ehr.demo"


def demo_users(settings) -> list[tuple[str, str, str]]:
    """(name, role, display) of the demo's people: for case manager, UR nurse and supervisor
    the first such person of the staffing file, who has work assigned, so the worklist the
    demo opens on is full; a generic `*.demo` account where the file names no one."""
    from engine.work.staffing import from_file

    people = from_file(settings.staffing_file).people
    out = []
    for name, role in DEMO_USERS:
        staff = next((p for p in people if p.role == role), None)
        out.append((staff.name, role, staff.display or staff.name) if staff
                   else (name, role, f"Demo {role.replace('_', ' ')}"))
    return out


def _demo_accounts(runtime) -> tuple[str, str]:
    """One demo user per role and an EHR client, with fresh credentials on every start."""
    from engine.core.roles import ROLES
    from engine.security import passwords, users

    settings = runtime.settings
    passwords.configure(settings.password_hash_time_cost, settings.password_hash_memory_kib)
    password = secrets.token_urlsafe(12)
    for name, role, display in demo_users(settings):
        try:
            users.add_user(runtime.sessions, name, role, password, display_name=display)
        except users.AccountError:  # kept from an earlier demo: new password, enabled
            users.set_password(runtime.sessions, name, password)
            users.set_active(runtime.sessions, "user", name, True)
    scope = " ".join(sorted(p.value for p in ROLES["integration"]))
    try:
        _, secret = users.add_client(runtime.sessions, DEMO_CLIENT, scope)
    except users.AccountError:
        secret = users.new_secret(runtime.sessions, DEMO_CLIENT)
        users.set_active(runtime.sessions, "client", DEMO_CLIENT, True)
    return password, secret


def main() -> None:
    """Console entry point: known failures become one line on stderr and exit status 1."""
    from sqlalchemy.exc import OperationalError

    from engine.core.site import SiteProfileError
    from engine.rules.loader import RulesetError
    from engine.security.tokens import SigningKeyError
    from engine.security.users import AccountError

    try:
        app(standalone_mode=True)
    except (CliError, AccountError, SigningKeyError) as exc:
        err.print(f"error: {exc}", highlight=False)
        raise SystemExit(1) from None
    except SiteProfileError as exc:
        err.print(f"error: {exc}", highlight=False)
        raise SystemExit(1) from None
    except RulesetError as exc:
        for problem in exc.problems:
            err.print(str(problem), highlight=False)
        err.print(f"error: {len(exc.problems)} ruleset problem(s); fix them or set "
                  "ENGINE_RULESETS", highlight=False)
        raise SystemExit(1) from None
    except OperationalError as exc:
        err.print(f"error: database unavailable ({str(exc.orig).strip().splitlines()[0]})",
                  highlight=False)
        raise SystemExit(1) from None
    except OSError as exc:
        err.print(f"error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})",
                  highlight=False)
        raise SystemExit(1) from None
