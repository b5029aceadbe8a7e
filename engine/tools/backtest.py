"""Back-testing a candidate ruleset: replay stored history through it and the active one.

Both replays run on throw-away SQLite copies with the clock following event time, so
time-based rules fire as they would have; the comparison lists, per rule, the outputs the
candidate would add, remove or retime. The live database is only read. Where the platform
can fork, the candidate's replay runs in a child process beside the active one: the two
share nothing but the message list, and a replay is CPU-bound, so two cores halve the wait.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.vocabulary import InputOutcome, OutputStatus
from engine.intake.path import Intake
from engine.intake.replay import finish, replay
from engine.planning.rulebook import Rulebook
from engine.storage.db import make_engine, session_factory
from engine.storage.migrate import upgrade
from engine.storage.models import Encounter, InboundMessage, RuleOutput

START = datetime(1900, 1, 1, tzinfo=UTC)


@dataclass
class RuleDelta:
    added: int = 0
    removed: int = 0
    retimed: int = 0


@dataclass
class Report:
    messages: int
    encounters: int
    active_version: str
    candidate_version: str
    per_rule: dict[str, RuleDelta] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(d.added or d.removed or d.retimed for d in self.per_rule.values())


def stored_history(sessions, since: datetime | None) -> list[bytes]:
    """Accepted HL7 inputs in event-time order (FHIR inputs are not replayed here)."""
    query = (select(InboundMessage.raw)
             .where(InboundMessage.outcome == InputOutcome.ACCEPTED,
                    InboundMessage.channel.in_(("mllp", "file")))
             .order_by(InboundMessage.event_time, InboundMessage.id))
    if since is not None:
        query = query.where(InboundMessage.event_time >= since)
    with sessions() as session:
        return [bytes(raw) for raw in session.scalars(query)]


def _outputs(sessions) -> dict[tuple[str, str, str], datetime | None]:
    """(visit system, visit number, key) -> due, for every output the replay left standing."""
    with sessions() as session:
        rows = session.execute(
            select(Encounter.visit_system, Encounter.visit_number, RuleOutput.key,
                   RuleOutput.due_at)
            .join(Encounter, Encounter.id == RuleOutput.encounter_id)
            .where(RuleOutput.status != OutputStatus.CANCELLED))
        return {(system, visit, key): due for system, visit, key, due in rows}


def _replay(folder: Path, name: str, site, rulebook: Rulebook, messages: list[bytes],
            until: datetime, progress: Callable[[int], None] | None):
    engine = make_engine(f"sqlite:///{folder / name}.db", sqlite_synchronous="OFF")
    upgrade(engine)
    sessions = session_factory(engine)
    clock = FixedClock(START)
    intake = Intake(sessions, site, clock)
    intake.rules.current = rulebook
    replay(intake, clock, messages,
           on_receipt=(lambda _r: progress(1)) if progress is not None else None)
    finish(intake, clock, until)
    result = _outputs(sessions)
    engine.dispose()
    return result


Outputs = dict[tuple[str, str, str], datetime | None]


class _Elsewhere:
    """The candidate's replay in a forked child; its progress is a shared counter."""

    def __init__(self, folder: Path, site, rulebook: Rulebook, messages: list[bytes],
                 until: datetime) -> None:
        ctx = multiprocessing.get_context("fork")
        self.done = ctx.Value("q", 0, lock=False)
        self.reported = 0
        self._receive, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=self._run, daemon=True,
                                args=(send, folder, site, rulebook, messages, until))
        self.proc.start()
        send.close()

    def _run(self, send, folder, site, rulebook, messages, until) -> None:
        def count(_n: int) -> None:
            self.done.value += 1
        try:
            send.send(("ok", _replay(folder, "candidate", site, rulebook, messages, until,
                                     count)))
        except BaseException as exc:  # noqa: BLE001 - the parent raises it with the reason
            send.send(("error", f"{type(exc).__name__}: {exc}"))
        send.close()

    def progress(self, report: Callable[[int], None] | None) -> None:
        new = self.done.value - self.reported
        if new and report is not None:
            report(new)
        self.reported += new

    def result(self, report: Callable[[int], None] | None) -> Outputs:
        while not self._receive.poll(0.2):
            self.progress(report)
            if not self.proc.is_alive() and not self._receive.poll(0):
                raise RuntimeError(f"the candidate's replay process died "
                                   f"(exit code {self.proc.exitcode})")
        status, payload = self._receive.recv()
        self.proc.join()
        self.progress(report)
        if status != "ok":
            raise RuntimeError(f"the candidate's replay failed: {payload}")
        return payload


def _both(folder: Path, site, active: Rulebook, candidate: Rulebook, messages: list[bytes],
          until: datetime, progress: Callable[[int], None] | None) -> tuple[Outputs, Outputs]:
    """Active and candidate replays: side by side where we can fork, else one after the other."""
    if "fork" not in multiprocessing.get_all_start_methods() or (os.cpu_count() or 1) < 2:
        return (_replay(folder, "active", site, active, messages, until, progress),
                _replay(folder, "candidate", site, candidate, messages, until, progress))
    child = _Elsewhere(folder, site, candidate, messages, until)
    try:
        def mine(n: int) -> None:
            child.progress(progress)
            if progress is not None:
                progress(n)
        before = _replay(folder, "active", site, active, messages, until, mine)
        return before, child.result(progress)
    finally:
        if child.proc.is_alive():
            child.proc.kill()
            child.proc.join()


def backtest(live_sessions, site, active: Rulebook, candidate: Rulebook, *,
             since: datetime | None = None, until: datetime | None = None,
             progress: Callable[[int], None] | None = None) -> Report:
    messages = stored_history(live_sessions, since)
    with live_sessions() as session:
        last = session.scalar(select(InboundMessage.event_time)
                              .where(InboundMessage.outcome == InputOutcome.ACCEPTED)
                              .order_by(InboundMessage.event_time.desc()).limit(1))
    end = until or last or START
    with tempfile.TemporaryDirectory(prefix="engine-backtest-") as tmp:
        folder = Path(tmp)
        before, after = _both(folder, site, active, candidate, messages, end, progress)
    report = Report(len(messages), len({key[:2] for key in before | after}),
                    active.version, candidate.version)
    for key in before.keys() | after.keys():
        rule = key[2].split("/", 1)[0]
        delta = report.per_rule.setdefault(rule, RuleDelta())
        if key not in before:
            delta.added += 1
        elif key not in after:
            delta.removed += 1
        elif before[key] != after[key]:
            delta.retimed += 1
    report.per_rule = dict(sorted(report.per_rule.items()))
    return report


def summary(report: Report) -> Counter[str]:
    total: Counter[str] = Counter()
    for delta in report.per_rule.values():
        total.update(added=delta.added, removed=delta.removed, retimed=delta.retimed)
    return total
