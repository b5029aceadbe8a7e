"""Comparing a case with the engine: the outputs it expects (or must not see) against the
active ones, and the mistakes in the case itself (unknown facts, outputs no rule raises)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from engine.rules.facts import FACTS
from engine.tools.cases.schema import Case, Expected, local_time

if TYPE_CHECKING:  # a type only: checking a case loads no durable_rules
    from engine.rules.compile import Book
    from engine.rules.model import Rule


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
    tier: str | None = None
    plan: str | None = None  # a disposition's place in the discharge plan

    @property
    def label(self) -> str:
        return f"{self.kind} {self.code}"


def when_text(value: datetime | None, zone: ZoneInfo) -> str:
    """A time as case messages show it: local, to the minute."""
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
            out.append(f"due expected {when_text(due, zone)}, got {when_text(got.due, zone)}")
    for name in ("priority", "queue", "severity", "tier", "plan"):
        expected = getattr(want, name)
        if expected is not None and expected != getattr(got, name):
            out.append(f"{name} expected {expected}, got {getattr(got, name) or 'none'}")
    if want.value is not None and (got.value is None or abs(got.value - want.value) > 1e-6):
        out.append(f"value expected {want.value:g}, got "
                   f"{'none' if got.value is None else format(got.value, 'g')}")
    return out


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
    raisable: dict[tuple[str, str], list[Rule]] = {}
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


