"""`engine rules ...`: the clinical informaticist's tools for rulesets.

check (schema, compile, lint), test (the cases beside the rulesets), explain (why each rule
fired or not for one encounter), facts (the catalogue) and schema (for editors). Every
failure is one clear line and a non-zero exit; problems in files read `file:line: ...` so
editors can jump to them.
"""

from __future__ import annotations

# Each command imports the floors it needs when it runs (ruff PLC0415 is waived for this
# module in pyproject.toml): `engine --help` and the quick commands start in about half the
# time the whole server, app, simulator and case runner take to import.
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from engine.core.vocabulary import EncounterStatus

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from engine.core.config import Settings
    from engine.core.site import SiteProfile
    from engine.planning.rulebook import Rulebook
    from engine.rules.compile import Book

rules_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Rulesets: check, test, explain, facts, schema.")
# No markup: rule text is full of [brackets] that rich would take for style tags.
out = Console(soft_wrap=True, highlight=False, markup=False)
err = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "rulesets" / "ruleset.schema.json"

PathArg = Annotated[Path | None, typer.Argument(
    help="A rulesets folder or one ruleset file (default: ENGINE_RULESETS or ./rulesets).",
    show_default=False)]
SiteOpt = Annotated[Path | None, typer.Option(
    "--site", help="Site profile (default: ENGINE_SITE_PROFILE).", show_default=False)]


def _fail(message: str) -> NoReturn:
    err.print(f"error: {message}")
    raise typer.Exit(1)


def _settings() -> Settings:
    from engine.core.config import get_settings

    try:
        return get_settings()
    except ValueError as exc:  # pydantic-settings: a malformed ENGINE_* variable
        _fail(f"invalid settings: {str(exc).splitlines()[0]}")


def _rulesets(path: Path | None) -> Path:
    from engine.core.config import DEFAULT_RULESETS

    if path is None:
        configured = _settings().rulesets
        path = configured if configured and str(configured) else DEFAULT_RULESETS
    try:  # problems read better as rulesets/x.yaml:12 than as a long absolute path
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


def _site(path: Path | None) -> SiteProfile:
    from engine.core.site import SiteProfileError, load_site_profile

    try:
        return load_site_profile(path or _settings().site_profile)
    except SiteProfileError as exc:
        _fail(str(exc))


def _problems(problems: list) -> NoReturn:
    for problem in problems:
        out.print(str(problem))
    _fail(f"{len(problems)} problem(s); nothing was loaded")


def _compile(target: Path) -> Book:
    """Load and compile a folder or one file; print every problem and exit 1 on any."""
    from engine.rules.compile import compile_book
    from engine.rules.loader import RulesetError, load_file, load_folder
    from engine.rules.reference import ReferenceTableError, load_reference

    if not target.exists():
        _fail(f"no such file or folder: {target}")
    folder = target if target.is_dir() else target.parent
    try:
        files = [load_file(target)] if target.is_file() else load_folder(target)
        if not files:
            _fail(f"no ruleset files (*.yaml) in {target}")
        return compile_book(files, load_reference(folder / "reference"))
    except RulesetError as exc:
        _problems(exc.problems)
    except ReferenceTableError as exc:
        _problems([exc])


def _rulebook(target: Path, site: SiteProfile) -> Rulebook:
    from engine.core.config import get_settings
    from engine.planning.rulebook import Rulebook

    # New tasks in test stories and back-tests go to the people of the configured file.
    return Rulebook(_compile(target), site, staffing_file=get_settings().staffing_file)


def _time(text: str | None, zone: ZoneInfo) -> datetime:
    from engine.tools.cases import local_time

    if text is None:
        return datetime.now(UTC)
    try:
        return local_time(text, zone)
    except ValueError as exc:
        _fail(str(exc))


@rules_app.command()
def facts(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False
          ) -> None:
    """The fact catalogue: every name a rule's condition may use."""
    from engine.rules.facts import CATALOGUE

    if as_json:
        print(json.dumps([{"name": f.name, "type": f.type, "unit": f.unit or None,
                           "varies": f.varies or None, "description": f.description}
                          for f in CATALOGUE], indent=2))
        return
    table = Table("fact", "type", "unit", "changes", "description", show_lines=False)
    for f in CATALOGUE:
        table.add_row(f.name, f.type, f.unit, {"hourly": "hourly", "daily": "at midnight",
                                               "due": "at a due time"}.get(f.varies, ""),
                      f.description)
    out.print(table)
    out.print(f"{len(CATALOGUE)} facts")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _queues_mapped(book: Book, staffing_path: Path | None) -> None:
    """Every queue a rule names must be worked by a role of the staffing file: an unmapped
    queue's work has no owner and no one whose role may complete it."""
    from engine.work.staffing import from_file

    if staffing_path is not None and not staffing_path.is_file():
        _fail(f"no such staffing file: {_shown(staffing_path)}")
    try:
        staffing = from_file(staffing_path)
    except ValueError as exc:
        _fail(str(exc).splitlines()[0])
    where: dict[str, str] = {}
    for f in book.files:
        for i, rule in enumerate(f.model.rules):
            for j, action in enumerate(rule.then):
                if action.task is not None and action.task.queue:
                    line = f.line_of("rules", i, "then", j, "task", "queue")
                    where.setdefault(action.task.queue, f"{f.path}:{line} rule {rule.id}")
    missing = staffing.unmapped(where)
    if missing:
        named = ", ".join(f"{q!r} ({where[q]})" for q in missing)
        file = _shown(staffing_path) if staffing_path else "no staffing file (ENGINE_STAFFING_FILE)"
        _fail(f"queue{'s' if len(missing) > 1 else ''} {named} not mapped to a role in {file}: "
              "add under queues: (case_manager, ur_nurse or supervisor)")


StaffingOpt = Annotated[Path | None, typer.Option(
    "--staffing", help="Staffing file whose queues must cover the rules' queues (default: "
    "ENGINE_STAFFING_FILE).", show_default=False)]


@rules_app.command()
def check(path: PathArg = None, staffing: StaffingOpt = None) -> None:
    """Validate, compile and lint rulesets (and their test files), and check that the staffing
    file maps every queue a rule names to a role; exit 1 on any problem."""
    from engine.tools.cases import case_files, case_problems, load_case_file

    target = _rulesets(path)
    book = _compile(target)
    _queues_mapped(book, staffing or _settings().staffing_file)
    problems: list[str] = []
    if target.is_dir() and (target / "tests").is_dir():
        zone = _site(None).zone
        for case_file in case_files(target):
            cases, broken = load_case_file(case_file)
            problems += [f"{r.path}:{r.line}: case {r.name!r}: {m}"
                         for r in broken for m in r.messages]
            problems += [f"{c.path}:{c.line}: case {c.case.name!r}: {m}"
                         for c in cases for m in case_problems(c.case, book, zone)]
    if problems:
        for problem in problems:
            out.print(problem)
        _fail(f"{len(problems)} problem(s) in test files")
    total = sum(len(f.model.rules) for f in book.files)
    names = ", ".join(f"{f.model.name} {f.model.version}" for f in book.files)
    out.print(f"ok: {len(book.files)} file(s), {total} rules ({len(book.rules)} enabled), "
              f"{len(book.layers)} layer(s), version {book.version} ({names})")


@rules_app.command()
def test(
    path: PathArg = None,
    select: Annotated[str | None, typer.Option(
        "-k", help="Only cases whose name contains this text.")] = None,
    rulesets: Annotated[Path | None, typer.Option(
        help="Rulesets to test (default: PATH, or the folder above a tests/ file).")] = None,
    site: SiteOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="List passing cases too.")
                       ] = False,
) -> None:
    """Run the test cases kept beside the rulesets (rulesets/tests/*.yaml)."""
    from engine.tools.cases import case_files
    from engine.tools.cases.runner import run_files

    target = _rulesets(path)
    if not target.exists():
        _fail(f"no such file or folder: {target}")
    if rulesets is None:
        rulesets = target if target.is_dir() else (
            target.parent.parent if target.parent.name == "tests" else target.parent)
    files = case_files(target)
    if not files:
        _fail(f"no test files in {target if target.is_file() else target / 'tests'}")
    profile = _site(site)
    rulebook = _rulebook(rulesets, profile)
    counts = {"pass": 0, "fail": 0, "gap": 0}

    def show(result) -> None:
        counts[result.verdict] += 1
        if result.verdict == "pass" and not verbose:
            return
        word = {"pass": "PASS", "fail": "FAIL", "gap": "GAP "}[result.verdict]
        out.print(f"{word} {result.path}:{result.line}: {result.name}")
        if result.verdict == "gap":
            out.print(f"     known gap: {result.known_gap.strip()}")
        if result.verdict != "pass":
            for message in result.messages:
                out.print(f"     {message}")
        elif result.outputs:
            out.print(f"     active: {', '.join(result.outputs)}")

    results = run_files(files, rulebook, profile, select=select, progress=show)
    if not results:
        _fail(f"no cases matched {select!r}" if select else "no cases")
    summary = (f"{len(results)} case(s) in {len(files)} file(s): {counts['pass']} passed, "
               f"{counts['fail']} failed" + (f", {counts['gap']} known gap(s)"
                                             if counts["gap"] else ""))
    if counts["fail"]:
        out.print(summary)
        raise typer.Exit(1)
    out.print(summary)


@rules_app.command()
def explain(
    encounter: Annotated[str, typer.Argument(help="Visit number (PV1-19), or id:N.")],
    at: Annotated[str | None, typer.Option(
        "--at", help="When to evaluate: local time 'YYYY-MM-DD HH:MM' or with an offset "
        "(default: now).")] = None,
    rulesets: Annotated[Path | None, typer.Option(
        help="Explain against these rulesets instead (a draft, say).")] = None,
    rule: Annotated[list[str] | None, typer.Option(
        "--rule", help="Only this rule (repeatable).")] = None,
    show_facts: Annotated[bool, typer.Option("--facts", help="Also list every fact value.")
                          ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Every rule, whether it fires for ENCOUNTER and why: each condition and its value.

    Nothing is written: the encounter is evaluated as it stands, at --at.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from engine.rules.explain import explain as explain_rules
    from engine.rules.explain import render, show_value
    from engine.rules.facts import CATALOGUE
    from engine.storage.db import make_engine, session_factory
    from engine.storage.models import Encounter

    settings = _settings()
    site = _site(None)
    now = _time(at, site.zone)
    rulebook = _rulebook(_rulesets(rulesets), site)
    unknown = set(rule or []) - {r.id for f in rulebook.book.files for r in f.model.rules}
    if unknown:
        _fail(f"no rule {', '.join(sorted(unknown))} in the rulesets")
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine, read_only=True)() as session:
            if encounter.startswith("id:"):
                try:
                    enc = session.get(Encounter, int(encounter[3:]))
                except ValueError:
                    _fail(f"{encounter!r}: id: takes a number")
            else:
                matches = list(session.scalars(select(Encounter).where(
                    Encounter.visit_number == encounter).limit(2)))
                if len(matches) > 1:
                    _fail(f"visit number {encounter} is used by more than one visit system; "
                          "use id:N")
                enc = matches[0] if matches else None
            if enc is None:
                _fail(f"no encounter {encounter}")
            evaluation = rulebook.evaluate_encounter(session, enc, now, write=False)
            enc_id, visit_number = enc.id, enc.visit_number
            decided = _decisions(rulebook.book, evaluation, site.zone)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"cannot read the database ({reason})")
    finally:
        engine.dispose()

    values = evaluation.derived.values
    diagnoses = evaluation.snapshot.diagnoses
    cancelled = evaluation.snapshot.status == EncounterStatus.CANCELLED
    explanations = explain_rules(rulebook.book, values, diagnoses)
    if cancelled:  # the engine raises nothing for a cancelled visit, whatever the facts
        for e in explanations:
            if e.status == "fired":
                e.status = "not fired"
    engine_fired = {f.rule.id for f in evaluation.firings}
    ours = {e.rule.id for e in explanations if e.status == "fired"}
    only = set(rule) if rule else None
    local = now.astimezone(site.zone).strftime("%Y-%m-%d %H:%M %Z")
    if as_json:
        print(json.dumps({
            "encounter": {"id": enc_id, "visit_number": visit_number,
                          "status": evaluation.snapshot.status},
            "at": now.isoformat(), "version": rulebook.version,
            "facts": {k: _jsonable(v) for k, v in sorted(values.items())},
            "diagnoses": [list(d) for d in diagnoses],
            "rules": [e.as_dict() for e in explanations if only is None or e.rule.id in only],
            "decisions": [d for d in decided if only is None or d["rule"] in only],
        }, indent=2, default=str))
    else:
        out.print(f"encounter {visit_number} (id {enc_id}, {evaluation.snapshot.status}, "
                  f"{evaluation.snapshot.care_status or 'no status'}) at {local}; "
                  f"rulesets version {rulebook.version}")
        if cancelled:
            out.print("the visit is cancelled: no rule fires for it")
        if show_facts:
            out.print("facts:")
            for spec in CATALOGUE:
                value = values.get(spec.name)
                unit = f" {spec.unit}" if spec.unit and value is not None else ""
                out.print(f"  {spec.name} = {show_value(value)}{unit}")
            out.print("  diagnoses = " + (", ".join(f"{c} ({t or '?'})" for c, t in diagnoses)
                                          or "none"))
        held = {d["rule"]: d["said"] for d in decided if d["holding_back"]}
        for line in render(explanations, only=only, held=held):
            out.print(line)
        shown = [d for d in decided if only is None or d["rule"] in only]
        if shown:
            out.print("\ndecisions (people declined this work; the rule does not raise it again "
                      "while they hold):")
        for d in shown:
            back = f"  [holding back: {', '.join(d['holding_back'])}]" if d["holding_back"] \
                else ""
            out.print(f"  {d['rule']}: {d['output']} {d['said']}{back}")
        fired = sorted(ours)
        out.print(f"\n{len(fired)} rule(s) fire: {', '.join(fired) or 'none'}")
    if ours != engine_fired:
        _fail("the explanation disagrees with the engine on "
              f"{', '.join(sorted(ours ^ engine_fired))}; please report this")


def _decisions(book: Any, evaluation: Any, zone: Any) -> list[dict[str, Any]]:
    """The stay's decisions that hold, as `explain` shows them (what each holds back now)."""
    from engine.rules.reconsider import holds_while
    from engine.work.decisions import describe

    rules = {r.id: r for r in book.rules}
    out = []
    for d in evaluation.decisions:
        rule = rules.get(d.rule_id)
        out.append({"rule": d.rule_id, "output": d.output_key, "by": d.by, "at": d.at,
                    "reason": d.reason_code, "text": d.reason_text,
                    "holds_while": list(holds_while(rule)) if rule else [],
                    "said": describe(d, zone, holds_while(rule) if rule else ()),
                    "holding_back": sorted(k for k, v in evaluation.withheld.items()
                                           if v is d)})
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def schema_text() -> str:
    """The JSON Schema of the ruleset format, as shipped in rulesets/ruleset.schema.json."""
    from engine.rules.model import Ruleset

    schema = Ruleset.model_json_schema(by_alias=True)
    # "Exactly one of" lives in model validators, which JSON Schema cannot see; say it with
    # property counts so editors flag `{fact: x}` or `{fact: x, equals: 1, in: [2]}` too.
    defs = schema["$defs"]
    defs["Comparison"].update(minProperties=2, maxProperties=2)
    defs["Action"].update(minProperties=1, maxProperties=1)
    defs["OutputRef"].update(minProperties=1, maxProperties=1)
    defs["DiagnosisMatch"]["anyOf"] = [{"required": ["codes"]}, {"required": ["value_set"]}]
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Ruleset",
        **{k: v for k, v in schema.items() if k != "title"},
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


@rules_app.command()
def schema(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the schema to this file instead of printing it.")] = None,
    check_file: Annotated[bool, typer.Option(
        "--check", help="Exit 1 if rulesets/ruleset.schema.json is out of date.")] = False,
) -> None:
    """The JSON Schema for ruleset files, generated from the model (editors validate with it)."""
    text = schema_text()
    if check_file:
        target = output or SCHEMA_FILE
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            _fail(f"{target} is out of date: run `engine rules schema -o {target}`")
        out.print(f"{target} is up to date")
        return
    if output is None:
        print(text, end="")
        return
    output.write_text(text, encoding="utf-8")
    out.print(f"wrote {output}")


@rules_app.command()
def backtest(
    candidate: Annotated[Path, typer.Option(help="Folder of the candidate rulesets.")],
    since: Annotated[str | None, typer.Option(
        help="Replay history from this date (ISO 8601, local time); default: all.")] = None,
) -> None:
    """Replay stored history through a candidate ruleset beside the active one; write nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from engine.api.runtime import Runtime
    from engine.tools.backtest import backtest as run_backtest
    from engine.tools.backtest import stored_history, summary

    settings = _settings()
    site = _site(None)
    candidate_book = _rulebook(candidate, site)
    runtime = Runtime.open(settings, migrate=False)
    if runtime.rules.current is None:
        _fail(f"no active rulesets in {settings.rulesets}")
    start = _time(since, site.zone) if since else None
    total = len(stored_history(runtime.readers, start)) * 2
    with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True) as progress:
        task = progress.add_task("replay", total=total)
        report = run_backtest(runtime.readers, site, runtime.rules.current, candidate_book,
                              since=start, progress=lambda n: progress.advance(task, n))
    runtime.close()
    table = Table("rule", "added", "removed", "retimed")
    for rule_id, delta in report.per_rule.items():
        if delta.added or delta.removed or delta.retimed:
            table.add_row(rule_id, str(delta.added), str(delta.removed), str(delta.retimed))
    out.print(f"replayed {report.messages} message(s): active {report.active_version} vs "
              f"candidate {report.candidate_version}", highlight=False)
    if report.changed:
        out.print(table)
    totals = summary(report)
    out.print(f"outputs added {totals['added']}, removed {totals['removed']}, "
              f"retimed {totals['retimed']}", highlight=False)
