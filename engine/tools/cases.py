"""Test cases kept beside the rulesets (rulesets/tests/*.yaml), and the runner for them.

Clinical informaticists write cases the way they talk about patients: a short ADT story (or
just the facts) and a moment, then the outputs they expect and the ones they must not see.
A story runs through the real one path (`Intake.hl7`) on a throw-away SQLite database and
then the clock, so a case checks the rules together with fact derivation, due times and
reconciliation, exactly as production would see them.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.core.errors import EngineError
from engine.core.site import CareStatus, SiteProfile
from engine.core.vocabulary import OutputKind, OutputStatus, TaskStatus
from engine.rules.facts import FACTS, Derived
from engine.rules.loader import _lines, yaml_error
from engine.rules.model import Priority, Severity

if TYPE_CHECKING:  # the database and durable_rules load only when a case runs
    from engine.planning.rulebook import Rulebook
    from engine.rules.compile import Book
    from engine.storage.models import RuleOutput

KINDS = ("task", "flag", "score", "proposal")
Instant = str | datetime
DiagnosisType = Literal["A", "W", "F"]
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def local_time(value: Instant, zone: ZoneInfo) -> datetime:
    """A case's time: hospital-local unless it carries an offset. Raises ValueError.

    In the repeated autumn hour a local time means its first occurrence (write an offset
    for the second); a spring-forward time that never happened on the wall clock is refused.
    """
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip()
        if not _TIME.match(text):
            raise ValueError(f"{text!r} is not a time: write YYYY-MM-DD HH:MM (local time), "
                             "optionally with an offset such as -06:00")
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        return when.astimezone(UTC)
    aware = when.replace(tzinfo=zone)
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != when:
        raise ValueError(f"{when:%Y-%m-%d %H:%M} never happened in {zone.key} "
                         "(the clocks sprang forward)")
    return aware.astimezone(UTC)


def _check_time(value: Instant | None) -> Instant | None:
    if value is not None and not isinstance(value, datetime):
        local_time(value, ZoneInfo("UTC"))  # format only; the zone is the site's
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StoryEvent(_Strict):
    """One step of a story in clinical words: an ADT message (the site profile supplies the
    dialect), a lab result message (R01), or a person completing a task."""

    event: str | None = Field(default=None, pattern=r"^(A\d\d|R01)$", description="ADT "
                              "trigger: A01 admit, A04 register, A06 observation to "
                              "inpatient, A03 discharge, A11 cancel admit...; R01 lab results")
    complete: str | None = Field(default=None, description="A task type the case manager "
                                 "completes at this time (a notice delivered, a review done).")
    labs: dict[str, float] | None = Field(default=None, description="With R01: results by "
                                          "name (hemoglobin g/dL, sodium mmol/L).")
    at: Instant = Field(description="When it happened, local time unless it has an offset.")
    visit: str = Field(default="V1", description="Visit number (PV1-19).")
    mrn: str = Field(default="MRN1", description="Medical record number (PID-3).")
    status: CareStatus | None = Field(
        default=None, description="Care status; sent as the site profile's class/type for it.")
    class_: str | None = Field(default=None, alias="class", description="PV1-2 as sent.")
    type: str | None = Field(default=None, description="PV1-18 as sent.")
    payer: str | None = Field(default=None, description="IN1-2 plan code as sent, or a payer "
                              "class (medicare...) sent as a plan the site maps to it.")
    authorization: str | None = Field(default=None, description="IN1-14.")
    unit: str | None = Field(default=None, description="PV1-3.1 unit.")
    admission_type: str | None = Field(default=None, description="PV1-4: E, U, R, C...")
    service: str | None = Field(default=None, description="PV1-10 hospital service.")
    admit_source: str | None = Field(default=None, description="PV1-14.")
    diagnoses: list[tuple[str, DiagnosisType] | str] | None = Field(
        default=None, description="DG1 segments: [code, type] or code.")
    drg: str | None = Field(default=None, description="DRG-1 working DRG.")
    disposition: str | None = Field(default=None, description="PV1-36 at discharge.")
    expected_discharge: date | None = Field(default=None, description="PV2-9.")
    birth_date: date = Field(default=date(1945, 6, 12), description="PID-7.")
    sex: str = Field(default="F", description="PID-8.")
    prior_mrn: str | None = Field(default=None, description="A40 merge: MRG-1.")

    @model_validator(mode="after")
    def _time(self) -> StoryEvent:
        _check_time(self.at)
        if (self.event is None) == (self.complete is None):
            raise ValueError("a story step is either an `event` or a `complete`")
        if (self.event == "R01") != (self.labs is not None):
            raise ValueError("lab results (`labs`) come with event R01, and R01 with labs")
        return self


class _OutputRef(_Strict):
    task: str | None = None
    flag: str | None = None
    score: str | None = None
    proposal: str | None = None

    @model_validator(mode="after")
    def _one(self):
        given = [k for k in KINDS if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("name exactly one of task, flag, score, proposal")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k))

    @property
    def code(self) -> str:
        return getattr(self, self.kind)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.code}"


class Absent(_OutputRef):
    """An output that must not be active."""


class Expected(_OutputRef):
    """An output that must be active; any field given must match too."""

    rule: str | None = Field(default=None, description="The rule that raised it.")
    due: Instant | None = None
    priority: Priority | None = None
    queue: str | None = None
    severity: Severity | None = None
    value: float | None = Field(default=None, description="A score's value.")

    @model_validator(mode="after")
    def _time(self) -> Expected:
        _check_time(self.due)
        return self


class Case(_Strict):
    name: str = Field(min_length=1, description="The clinical story in one line.")
    story: list[StoryEvent] | None = Field(default=None, min_length=1)
    facts: dict[str, Any] | None = Field(default=None, description="Fact values (see `engine "
                                         "rules facts`), evaluated without a story.")
    diagnoses: list[tuple[str, DiagnosisType] | str] | None = Field(
        default=None, description="With facts: the diagnoses diagnosis conditions read.")
    visit: str | None = Field(default=None, description="Whose outputs to check (default: "
                              "the visit of the story's last event).")
    at: Instant | None = Field(default=None, description="When to look (default: the last "
                               "story event).")
    expect: list[Expected] = Field(default_factory=list)
    not_: list[Absent] = Field(default_factory=list, alias="not")
    known_gap: str | None = Field(default=None, description="Why this case fails today (a "
                                  "rule awaiting a fix); it fails the run once it passes.")

    @model_validator(mode="after")
    def _shape(self) -> Case:
        if (self.story is None) == (self.facts is None):
            raise ValueError("a case has either a story or facts")
        if self.facts is not None and self.visit is not None:
            raise ValueError("visit goes with a story")
        if self.story is not None and self.diagnoses is not None:
            raise ValueError("in a story, diagnoses come with the events (DG1)")
        if not self.expect and not self.not_:
            raise ValueError("a case lists outputs to expect, or not to see, or both")
        _check_time(self.at)
        return self


class CaseFile(_Strict):
    description: str = ""
    cases: list[Case] = Field(min_length=1)


# -- loading ------------------------------------------------------------------------------

@dataclass
class LoadedCase:
    case: Case
    path: Path
    line: int
    problems: list[str] = field(default_factory=list)  # the case cannot run as written


@dataclass
class Result:
    path: Path
    line: int
    name: str
    failures: list[str]
    known_gap: str | None = None
    invalid: bool = False
    outputs: list[str] = field(default_factory=list)  # active at `at`, for -v

    @property
    def verdict(self) -> Literal["pass", "fail", "gap"]:
        if self.invalid:
            return "fail"
        if self.known_gap:
            return "gap" if self.failures else "fail"
        return "fail" if self.failures else "pass"

    @property
    def messages(self) -> list[str]:
        if self.known_gap and not self.failures and not self.invalid:
            return [f"passes now, though marked as a known gap ({self.known_gap}): "
                    "remove `known_gap`"]
        return self.failures


def case_files(target: Path) -> list[Path]:
    """A folder's tests/*.yaml (or the folder itself if it holds the cases), or one file."""
    if target.is_file():
        return [target]
    folder = target / "tests" if (target / "tests").is_dir() else target
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def load_case_file(path: Path) -> tuple[list[LoadedCase], list[Result]]:
    """The cases of one file, or the reasons the file cannot be read (with lines)."""
    def broken(line: int, message: str, name: str = "(file)") -> Result:
        return Result(path, line, name, [message], invalid=True)

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        return [], [broken(1, f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError:
        return [], [broken(1, "not UTF-8 text")]
    except yaml.MarkedYAMLError as exc:
        line, _rule, message = yaml_error(exc)
        return [], [broken(line, message)]
    except yaml.YAMLError as exc:
        return [], [broken(1, f"YAML error: {exc}")]
    if not isinstance(data, dict) or node is None:
        return [], [broken(1, "a test file is a mapping with `cases:`")]
    lines = _lines(node)

    def known(loc: tuple) -> tuple:
        """The error's location in the file, without pydantic's union-member names."""
        path: tuple = ()
        for part in loc:
            part = {"class_": "class", "not_": "not"}.get(part, part)
            if (*path, part) in lines:
                path = (*path, part)
        return path

    try:
        model = CaseFile.model_validate(data)
    except ValidationError as exc:
        results = []
        for err in exc.errors():
            loc = known(err["loc"])
            name = "(file)"
            if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
                raw = data["cases"][loc[1]] if isinstance(data.get("cases"), list) else None
                name = str(raw.get("name", f"case {loc[1] + 1}")) if isinstance(raw, dict) \
                    else f"case {loc[1] + 1}"
            shown = loc[:-1] if err["type"] == "extra_forbidden" else loc
            where = ".".join(str(p) for p in (shown[2:] if name != "(file)" else shown))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {err['loc'][-1]!r}"
            results.append(broken(lines.get(loc, 1), f"{where}: {msg}" if where else msg, name))
        return [], results
    return [LoadedCase(c, path, lines.get(("cases", i), 1))
            for i, c in enumerate(model.cases)], []


# -- outputs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Output:
    """An active output as a case sees it."""

    kind: str
    code: str
    rule_id: str
    due: datetime | None = None
    priority: str | None = None
    queue: str | None = None
    severity: str | None = None
    value: float | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.code}"

    @classmethod
    def of(cls, row: RuleOutput) -> Output:
        return cls(row.kind, row.code, row.rule_id, row.due_at, row.priority, row.queue,
                   row.severity, row.value)


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return "none" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def differences(case: Case, outputs: list[Output], zone: ZoneInfo) -> list[str]:
    """What differs between the case's expectations and the active outputs."""
    problems = []
    for want in case.expect:
        found = [o for o in outputs if (o.kind, o.code) == (want.kind, want.code)]
        if not found:
            problems.append(f"expected {want.label}: not raised")
            continue
        mismatches: list[str] = []
        for got in found:
            mismatches = _mismatches(want, got, zone)
            if not mismatches:
                break
        problems += [f"{want.label}: {m}" for m in mismatches]
    for unwanted in case.not_:
        for got in outputs:
            if (got.kind, got.code) == (unwanted.kind, unwanted.code):
                problems.append(f"unexpected {got.label} (raised by rule {got.rule_id})")
    if problems:
        shown = ", ".join(sorted(o.label for o in outputs)) or "none"
        problems.append(f"active outputs: {shown}")
    return problems


def _mismatches(want: Expected, got: Output, zone: ZoneInfo) -> list[str]:
    out = []
    if want.rule is not None and want.rule != got.rule_id:
        out.append(f"rule expected {want.rule}, got {got.rule_id}")
    if want.due is not None:
        due = local_time(want.due, zone)
        # Cases are written to the minute; a boundary fires a second past it.
        if got.due is None or got.due.astimezone(UTC).replace(second=0, microsecond=0) != due:
            out.append(f"due expected {_when(due, zone)}, got {_when(got.due, zone)}")
    for name in ("priority", "queue", "severity"):
        expected = getattr(want, name)
        if expected is not None and expected != getattr(got, name):
            out.append(f"{name} expected {expected}, got {getattr(got, name) or 'none'}")
    if want.value is not None and (got.value is None or abs(got.value - want.value) > 1e-6):
        out.append(f"value expected {want.value:g}, got "
                   f"{'none' if got.value is None else format(got.value, 'g')}")
    return out


# -- checking a case against the loaded rules ---------------------------------------------

def _diagnoses(items: list[tuple[str, str] | str] | None) -> list[tuple[str, str | None]]:
    return [(item, None) if isinstance(item, str) else (item[0], item[1]) for item in items or []]


_FITS: dict[str, Callable[[Any], bool]] = {
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "text": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
}


def case_problems(case: Case, book: Book, zone: ZoneInfo) -> list[str]:
    """Mistakes in the case itself: unknown facts, outputs no rule raises, impossible times."""
    problems = []
    for name, value in (case.facts or {}).items():
        spec = FACTS.get(name)
        if spec is None:
            problems.append(f"unknown fact {name!r} (see `engine rules facts`)")
        elif value is not None and not _FITS[spec.type](value):
            problems.append(f"fact {name} is {spec.type}; {value!r} is not")
    raisable = {}
    for source in book.files:
        for rule in source.model.rules:
            for action in rule.then:
                kind = action.output_kind
                raisable.setdefault((kind, action.code), []).append(rule)
    for ref in [*case.expect, *case.not_]:
        rules = raisable.get((ref.kind, ref.code))
        if not rules:
            problems.append(f"no rule raises {ref.label}: check the spelling")
        elif isinstance(ref, Expected) and not any(r.enabled for r in rules):
            problems.append(f"{ref.label} is raised only by disabled rule(s) "
                            f"{', '.join(r.id for r in rules)}")
        if isinstance(ref, Expected) and ref.due is not None:
            try:
                local_time(ref.due, zone)
            except ValueError as exc:
                problems.append(f"{ref.label} due: {exc}")
    times = []
    for i, event in enumerate(case.story or [], 1):
        try:
            times.append(local_time(event.at, zone))
        except ValueError as exc:
            problems.append(f"story step {i}: {exc}")
    try:
        at = local_time(case.at, zone) if case.at is not None else None
    except ValueError as exc:
        problems.append(f"at: {exc}")
        at = None
    if at is not None and times and at < max(times):
        problems.append("`at` is before the story's last event")
    return problems


# -- running ------------------------------------------------------------------------------

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
        from engine.rules.due import due_time
        from engine.rules.outputs import desired_outputs
        from engine.rules.snapshot import Snapshot

        values = {k: v for k, v in (case.facts or {}).items() if v is not None}
        diagnoses = _diagnoses(case.diagnoses)
        if case.diagnoses is not None:
            values.setdefault("diagnosis_codes", [code for code, _ in diagnoses])
        firings = self.rulebook.evaluator.evaluate(Derived(values), diagnoses)
        at = local_time(case.at, self.zone) if case.at is not None else None
        outputs = []
        for d in desired_outputs(self.rulebook.book, firings, values):
            due = None
            if d.due is not None and at is not None:
                due = due_time(d.due, Snapshot(), at, self.zone,
                               self.rulebook.book.reference.holidays)
            f = d.fields
            outputs.append(Output(f["kind"], f["code"], f["rule_id"], due, f["priority"],
                                  f["queue"], f["severity"], f["value"]))
        return outputs

    def _story(self, case: Case, result: Result) -> list[Output]:
        from sqlalchemy import select

        from engine.core.clock import FixedClock
        from engine.intake.path import Intake
        from engine.intake.replay import advance
        from engine.planning.tick import tick
        from engine.storage.db import make_engine, session_factory
        from engine.storage.migrate import upgrade
        from engine.storage.models import Encounter, RuleOutput

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
                        _complete(sessions, event, when)
                        tick(sessions, self.rulebook, arrived, all_open=True)
                        continue
                    raw = hl7_message(event, when, self.site, f"CASE{self._n:05d}{i:03d}")
                    receipt = intake.hl7(raw, channel="file")
                    if receipt.outcome != "accepted":
                        raise StoryError(f"story step {i} ({event.event} at "
                                         f"{_when(when, self.zone)}) was not accepted: "
                                         f"{receipt.outcome} ({receipt.reason})")
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
                    RuleOutput.encounter_id == enc.id, RuleOutput.status == OutputStatus.ACTIVE))
                return [Output.of(r) for r in rows]
        finally:
            engine.dispose()


def _complete(sessions, event: StoryEvent, when: datetime) -> None:
    """A person completes the visit's open task of this type (as the worklist would)."""
    from sqlalchemy import select

    from engine.storage.models import Encounter, RuleOutput

    with sessions() as session, session.begin():
        rows = list(session.scalars(select(RuleOutput).join(Encounter).where(
            Encounter.visit_number == event.visit, RuleOutput.kind == OutputKind.TASK,
            RuleOutput.code == event.complete, RuleOutput.status == OutputStatus.ACTIVE)))
        if not rows:
            raise StoryError(f"no open task {event.complete!r} to complete at "
                             f"{_when(when, ZoneInfo('UTC'))}")
        for row in rows:
            row.status, row.task_status = OutputStatus.COMPLETED, TaskStatus.COMPLETED
            row.ended_at = row.updated_at = when
            row.version += 1


class StoryError(EngineError):
    """The story could not be told: a message was refused, or the visit never appeared."""


# -- HL7 for stories ----------------------------------------------------------------------

def _status_codes(status: str, site: SiteProfile) -> tuple[str, str]:
    """The PV1-2 class and PV1-18 type this site sends for a care status."""
    for rule in site.care_status:
        if rule.status == status:
            pair = (rule.patient_class or "", rule.patient_type or "")
            if site.status_for(pair[0] or None, pair[1] or None) == status:
                return pair
    raise StoryError(f"the site profile has no patient class/type for status {status!r}; "
                     "give class and type instead")


def _plan(payer: str, site: SiteProfile) -> str:
    if payer in site.payers:
        return payer
    for plan, payer_class in site.payers.items():
        if payer_class == payer:
            return plan
    return payer  # an unmapped plan code: the site's default payer class applies


def _ts(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y%m%d%H%M%S%z")


_IMPLIED_STATUS = {"A01": "inpatient", "A06": "inpatient", "A05": "preadmit"}


def _results(event: StoryEvent, ts: str, site: SiteProfile, control_id: str, pid: str) -> bytes:
    """An ORU^R01 with one OBX per lab (LOINC codes and units from engine.core.lab_codes)."""
    from engine.core.lab_codes import LOINC

    codes = {name: (code, unit) for code, (name, unit) in LOINC.items()}
    segments = [
        f"MSH|^~\\&|LAB|{site.receiving_facility}|{site.receiving_application}|"
        f"{site.receiving_facility}|{ts}||ORU^R01|{control_id}|P|2.5.1",
        pid,
        f"PV1|1||||||||||||||||||{event.visit}^^^{site.visit_number_authority}^VN",
        f"OBR|1|||CHEM^Chemistry||{ts}|{ts}",
    ]
    for n, (name, value) in enumerate((event.labs or {}).items(), 1):
        if name not in codes:
            raise StoryError(f"lab {name!r} is not one the engine reads ({', '.join(codes)})")
        code, unit = codes[name]
        segments.append(f"OBX|{n}|NM|{code}^{name}^LN||{value:g}|{unit}|||||F|||{ts}")
    return ("\r".join(segments) + "\r").encode()


def hl7_message(event: StoryEvent, when: datetime, site: SiteProfile, control_id: str) -> bytes:
    """One synthetic ADT (or ORU^R01) message for a story step, in the site's own dialect."""
    zone = site.zone
    ts = _ts(when, zone)
    trigger = event.event
    patient_class, patient_type = event.class_ or "", event.type or ""
    status = event.status or (None if event.class_ or event.type else
                              _IMPLIED_STATUS.get(trigger))
    if status is not None and not (event.class_ or event.type):
        patient_class, patient_type = _status_codes(status, site)
    mrn = site.mrn
    pid3 = f"{event.mrn}^^^{mrn.assigning_authority}^{mrn.identifier_type or ''}"
    pid = f"PID|1||{pid3}||STORY^CASE||{event.birth_date:%Y%m%d}|{event.sex}"
    if trigger == "R01":
        return _results(event, ts, site, control_id, pid)
    segments = [
        f"MSH|^~\\&|CASES|{site.receiving_facility}|{site.receiving_application}|"
        f"{site.receiving_facility}|{ts}||ADT^{trigger}|{control_id}|P|2.5.1",
        f"EVN|{trigger}|{ts}|||||{ts}",
        pid,
    ]
    if trigger == "A40":
        if not event.prior_mrn:
            raise StoryError("an A40 merge needs prior_mrn")
        segments.append(f"MRG|{event.prior_mrn}^^^{mrn.assigning_authority}^"
                        f"{mrn.identifier_type or ''}")
    else:
        pv1 = [""] * 46
        pv1[0], pv1[1] = "PV1", "1"
        pv1[2] = patient_class
        pv1[3] = event.unit or ""
        pv1[4] = event.admission_type or ""
        pv1[10] = event.service or ""
        pv1[14] = event.admit_source or ""
        pv1[18] = patient_type
        pv1[19] = f"{event.visit}^^^{site.visit_number_authority}^VN"
        pv1[36] = event.disposition or ""
        if trigger == "A03":
            pv1[45] = ts
        segments.append("|".join(pv1).rstrip("|"))
        if event.expected_discharge is not None:
            segments.append(f"PV2|||||||||{event.expected_discharge:%Y%m%d}")
        for n, (code, dx_type) in enumerate(_diagnoses(event.diagnoses), 1):
            segments.append(f"DG1|{n}||{code}^^I10|||{dx_type or ''}")
        if event.drg:
            segments.append(f"DRG|{event.drg}")
        if event.payer:
            in1 = [""] * 15
            in1[0], in1[1], in1[2] = "IN1", "1", _plan(event.payer, site)
            in1[4] = "PAYER"
            in1[14] = event.authorization or ""
            segments.append("|".join(in1).rstrip("|"))
    return ("\r".join(segments) + "\r").encode()


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
