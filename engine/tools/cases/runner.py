"""Running a case: a story replayed through the real one path (`Intake.hl7`) on a throw-away
SQLite database, then the clock; or facts evaluated without a story.

A story step that completes a task goes the way a person's completion goes in production:
`engine.work.lifecycle` (load, transition) and then the stay is re-evaluated
(`engine.planning.evaluation.after_work`), as the web worklist and the FHIR API do.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

from sqlalchemy import select

from engine.core.clock import FixedClock
from engine.core.errors import EngineError
from engine.core.roles import Principal
from engine.core.site import SiteProfile
from engine.core.vocabulary import InputOutcome, OutputKind, OutputStatus
from engine.hl7.build import BuildError, site_message
from engine.intake.path import Intake
from engine.intake.replay import advance
from engine.planning import evaluation
from engine.planning.rulebook import Rulebook
from engine.planning.tick import tick
from engine.rules.due import due_time
from engine.rules.facts import Derived
from engine.rules.outputs import desired_outputs
from engine.rules.snapshot import Snapshot
from engine.storage.db import make_engine, session_factory
from engine.storage.migrate import upgrade
from engine.storage.models import Encounter, RuleOutput
from engine.tools.cases import records
from engine.tools.cases.diff import Output, case_problems, differences, when_text
from engine.tools.cases.files import LoadedCase, Result, load_case_file
from engine.tools.cases.schema import Case, StoryEvent, local_time
from engine.work import lifecycle
from engine.work.staffing import Staffing
from engine.work.ur_record.problems import RecordInvalid
from engine.work.ur_record.stay import locked

# Who completes a task in a story: a person of the role its queue maps to (a case manager
# when unmapped), with the permission and the role check the worklist applies.
CASE_MANAGER = Principal("case manager (test story)", "user", "case_manager")


def _worker(task: RuleOutput, staffing: Staffing) -> Principal:
    role = staffing.role_for_queue(task.queue) or CASE_MANAGER.role
    return CASE_MANAGER if role == CASE_MANAGER.role else Principal(
        f"{role.replace('_', ' ')} (test story)", "user", role)
COMPLETION_OUTCOME = "completed in test story"


class StoryError(EngineError):
    """The story could not be told: a message was refused, or the visit never appeared."""


@contextmanager
def _captured_errors() -> Iterator[list[str]]:
    """Errors the engine logs while a story runs (a rule that crashes must fail the case)."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(level=logging.ERROR)
    logger = logging.getLogger("engine")
    logger.addHandler(handler)
    propagate = logger.propagate
    logger.propagate = False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _diagnoses(items: Sequence[tuple[str, str] | str] | None) -> list[tuple[str, str | None]]:
    return [(item, None) if isinstance(item, str) else (item[0], item[1]) for item in items or []]


def _output(row: RuleOutput) -> Output:
    return Output(row.kind, row.code, row.rule_id, row.due_at, row.priority, row.queue,
                  row.severity, row.value, (row.detail or {}).get("tier"),
                  (row.detail or {}).get("plan"))


def hl7_message(event: StoryEvent, when: datetime, site: SiteProfile, control_id: str) -> bytes:
    """The synthetic ADT (or ORU^R01) message a story step sends, in the site's dialect."""
    try:
        return site_message(event.step(), when, site, control_id)
    except BuildError as exc:
        raise StoryError(str(exc)) from exc


class Runner:
    """Runs cases against one loaded rulebook and site profile."""

    def __init__(self, rulebook: Rulebook, site: SiteProfile) -> None:
        self.rulebook = rulebook
        self.site = site
        self.zone = site.zone
        self._workdir = tempfile.TemporaryDirectory(prefix="engine-cases-")
        self._n = 0

    def close(self) -> None:
        self._workdir.cleanup()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def run(self, loaded: LoadedCase) -> Result:
        case = loaded.case
        result = Result(loaded.path, loaded.line, case.name, [], case.known_gap)
        problems = case_problems(case, self.rulebook.book, self.zone)
        if problems:
            result.failures = problems
            result.invalid = True
            return result
        try:
            outputs = self._story(case, result) if case.story else self._facts(case)
        except StoryError as exc:
            result.failures = [str(exc)]
            return result
        result.failures += differences(case, outputs, self.zone)
        result.outputs = sorted(o.label for o in outputs)
        return result

    def _facts(self, case: Case) -> list[Output]:
        values = {k: v for k, v in (case.facts or {}).items() if v is not None}
        diagnoses = _diagnoses(case.diagnoses)
        if case.diagnoses is not None:
            values.setdefault("diagnosis_codes", [code for code, _ in diagnoses])
        firings = self.rulebook.matcher.match(Derived(values), diagnoses)
        at = local_time(case.at, self.zone) if case.at is not None else None
        outputs = []
        for d in desired_outputs(self.rulebook.book, firings, values):
            due = None
            if d.due is not None and at is not None:
                due = due_time(d.due, Snapshot(), at, self.zone,
                               self.rulebook.book.reference.holidays)
            f = d.fields
            outputs.append(Output(f["kind"], f["code"], f["rule_id"], due, f["priority"],
                                  f["queue"], f["severity"], f["value"], f["detail"].get("tier"),
                                  f["detail"].get("plan")))
        return outputs

    def _story(self, case: Case, result: Result) -> list[Output]:
        assert case.story is not None
        self._n += 1
        url = f"sqlite:///{Path(self._workdir.name) / f'case{self._n}.db'}"
        engine = make_engine(url, sqlite_synchronous="OFF")
        try:
            upgrade(engine)
            sessions = session_factory(engine)
            first = local_time(case.story[0].at, self.zone)
            clock = FixedClock(first)
            intake = Intake(sessions, self.site, clock)
            intake.rules.current = self.rulebook
            arrived = first
            with _captured_errors() as errors:
                for i, event in enumerate(case.story, 1):
                    when = local_time(event.at, self.zone)
                    arrived = max(arrived, when)  # late messages arrive now, dated then
                    advance(intake, clock, arrived)  # boundaries on the way, as in production
                    if event.complete is not None:
                        self._complete(sessions, event, when)
                        tick(sessions, self.rulebook, arrived, all_open=True)
                        continue
                    if event.records:
                        self._record(sessions, event, when)
                        tick(sessions, self.rulebook, arrived, all_open=True)
                        continue
                    raw = hl7_message(event, when, self.site, f"CASE{self._n:05d}{i:03d}")
                    receipt = intake.hl7(raw, channel="file")
                    if receipt.outcome != InputOutcome.ACCEPTED:
                        raise StoryError(f"story step {i} ({event.event} at "
                                         f"{when_text(when, self.zone)}) was not accepted: "
                                         f"{receipt.outcome} ({receipt.reason})")
                    if receipt.warnings:  # a case tests what its story says, all of it
                        raise StoryError(f"story step {i} ({event.event} at "
                                         f"{when_text(when, self.zone)}) was applied with "
                                         f"warnings: {receipt.warnings.replace(chr(10), '; ')}")
                at = local_time(case.at, self.zone) if case.at is not None else arrived
                advance(intake, clock, at)
                tick(sessions, self.rulebook, at, all_open=True)
            result.failures += [f"engine error: {e}" for e in errors]
            visit = case.visit or case.story[-1].visit
            with sessions() as session:
                enc = session.scalars(select(Encounter).where(
                    Encounter.visit_number == visit)).first()
                if enc is None:
                    raise StoryError(f"no encounter with visit number {visit!r} in the story")
                rows = session.scalars(select(RuleOutput).where(
                    RuleOutput.encounter_id == enc.id,
                    RuleOutput.status == OutputStatus.ACTIVE))
                return [_output(r) for r in rows]
        finally:
            engine.dispose()

    def _complete(self, sessions, event: StoryEvent, when: datetime) -> None:
        """A person of the task's role completes the visit's open tasks of this type, as the
        worklist would: through the task lifecycle, then the stay is re-evaluated once."""
        with sessions() as session, session.begin():
            ids = list(session.scalars(select(RuleOutput.id).join(Encounter).where(
                Encounter.visit_number == event.visit, RuleOutput.kind == OutputKind.TASK,
                RuleOutput.code == event.complete, RuleOutput.status == OutputStatus.ACTIVE)))
            if not ids:
                raise StoryError(f"no open task {event.complete!r} to complete at "
                                 f"{when_text(when, self.zone)}")
            task = None
            for task_id in ids:
                task = lifecycle.load(session, task_id)
                assert task is not None
                if event.review is not None:  # the review is recorded from the task
                    self._write(partial(records.review, session, event=event, when=when,
                                        site=self.site, task_id=task_id),
                                session, event, when, task.encounter_id)
                try:
                    staffing = self.rulebook.staffing
                    lifecycle.transition(session, task, "complete", _worker(task, staffing),
                                         now=when, outcome=COMPLETION_OUTCOME,
                                         staffing=staffing, chosen=event.choose)
                except lifecycle.TaskError as exc:
                    raise StoryError(f"task {event.complete!r} could not be completed at "
                                     f"{when_text(when, self.zone)}: {exc.message}") from exc
            assert task is not None  # ids is not empty: checked above
            evaluation.after_work(session, self.rulebook, task, when)


    def _record(self, sessions, event: StoryEvent, when: datetime) -> None:
        """A person writes the stay's UR record; the stay is re-evaluated after it, as the
        web and FHIR edges do after a record changes."""
        with sessions() as session, session.begin():
            enc_id = session.scalars(select(Encounter.id).where(
                Encounter.visit_number == event.visit)).first()
            if enc_id is None:
                raise StoryError(f"no stay with visit {event.visit!r} to record on at "
                                 f"{when_text(when, self.zone)}")
            enc = self._write(lambda enc: records.write(
                session, enc, event, when, self.site, self.rulebook.book.reference),
                session, event, when, enc_id)
            evaluation.evaluate(session, self.rulebook, enc, when)

    def _write(self, write: Callable[[Encounter], None], session, event: StoryEvent,
               when: datetime, enc_id: int) -> Encounter:
        enc = locked(session, enc_id)
        try:
            write(enc)
        except RecordInvalid as exc:
            raise StoryError(f"{', '.join(event.records)} at {when_text(when, self.zone)} "
                             f"was refused: {exc.message}") from exc
        return enc


def run_files(paths: list[Path], rulebook: Rulebook, site: SiteProfile, *,
              select: str | None = None,
              progress: Callable[[Result], None] | None = None) -> list[Result]:
    """Load and run every case in these files (those whose name contains `select`)."""
    results: list[Result] = []
    with Runner(rulebook, site) as runner:
        for path in paths:
            loaded, broken = load_case_file(path)
            for item in broken:
                results.append(item)
                if progress:
                    progress(item)
            for case in loaded:
                if select and select.lower() not in case.case.name.lower():
                    continue
                result = runner.run(case)
                results.append(result)
                if progress:
                    progress(result)
    return results
