"""Reference tables beside the rulesets: value sets, the holiday calendar, Charlson weights,
the MS-DRG length-of-stay norms (CMS IPPS Table 5)."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from engine.core.errors import RulesetProblem
from engine.core.ur_record import DELAY_CATEGORIES, RESPONSIBLE_PARTIES


class ReferenceTableError(RulesetProblem, ValueError):
    """A reference table is missing or malformed (file and line in the message)."""


def normalise_code(code: str) -> str:
    """ICD-10 codes compare without dots and case: 'i63.9' and 'I639' are the same code."""
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True)
class CodeSet:
    """Codes matched as prefixes, the way ICD-10 categories contain their subcodes."""

    prefixes: tuple[str, ...]

    @classmethod
    def of(cls, codes: list[str] | tuple[str, ...]) -> CodeSet:
        return cls(tuple(sorted({normalise_code(c) for c in codes if c.strip()})))

    def matches(self, code: str) -> bool:
        return normalise_code(code).startswith(self.prefixes)


@dataclass(frozen=True)
class CharlsonCondition:
    name: str
    weight: int
    supersedes: str | None
    codes: CodeSet
    label: str = ""  # the condition in words, as Quan 2005 names it

    @property
    def words(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class DrgNorm:
    """One MS-DRG's row of IPPS Table 5: the length-of-stay norms UR compares a stay with."""

    ms_drg: str
    title: str
    gmlos: float
    amlos: float
    weight: float
    fiscal_year: str


@dataclass(frozen=True)
class DelayReason:
    """One row of delay_reasons.csv: why a discharge is delayed (a barrier, an avoidable day)."""

    code: str
    category: str
    responsible_party: str
    text: str


def drg_key(code: str) -> str:
    """MS-DRGs are three digits: '291', '0291' and ' 64' name rows 291, 291 and 064."""
    text = code.strip()
    return text.lstrip("0").zfill(3) if text.isdigit() else text.upper()


@dataclass
class Reference:
    value_sets: dict[str, CodeSet] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    charlson: tuple[CharlsonCondition, ...] = ()
    drgs: dict[str, DrgNorm] = field(default_factory=dict)
    delay_reasons: dict[str, DelayReason] = field(default_factory=dict)
    digest: str = ""

    def drg(self, code: str | None) -> DrgNorm | None:
        return None if not code else self.drgs.get(drg_key(code))


def _rows(path: Path, columns: set[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = columns - set(reader.fieldnames or [])
            if missing:
                raise ReferenceTableError(
                    f"{path}:1: missing column(s) {', '.join(sorted(missing))}")
            return [(i, row) for i, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise ReferenceTableError(f"{path}: cannot read ({exc.strerror})") from exc


def load_reference(folder: Path) -> Reference:
    """Read rulesets/reference/; a missing folder means no tables (and empty calendars)."""
    ref = Reference()
    hasher = hashlib.sha256()
    if not folder.is_dir():
        ref.digest = hasher.hexdigest()[:12]
        return ref
    for path in sorted(folder.rglob("*.csv")):
        hasher.update(path.relative_to(folder).as_posix().encode())
        hasher.update(path.read_bytes())
    sets = folder / "value_sets"
    if sets.is_dir():
        for path in sorted(sets.glob("*.csv")):
            ref.value_sets[path.stem] = CodeSet.of([r["code"] for _, r in _rows(path, {"code"})])
    holidays = folder / "holidays.csv"
    if holidays.exists():
        days = set()
        for line, row in _rows(holidays, {"date"}):
            try:
                days.add(date.fromisoformat(row["date"].strip()))
            except ValueError as exc:
                raise ReferenceTableError(f"{holidays}:{line}: {row['date']!r} is not a date "
                                          "(YYYY-MM-DD)") from exc
        ref.holidays = frozenset(days)
    charlson = folder / "charlson_quan2005.csv"
    if charlson.exists():
        conditions = []
        for line, row in _rows(charlson, {"condition", "weight", "codes"}):
            try:
                weight = int(row["weight"])
            except ValueError as exc:
                raise ReferenceTableError(
                    f"{charlson}:{line}: weight must be a whole number") from exc
            conditions.append(CharlsonCondition(row["condition"].strip(), weight,
                                                (row.get("supersedes") or "").strip() or None,
                                                CodeSet.of(row["codes"].split()),
                                                (row.get("label") or "").strip()))
        ref.charlson = tuple(conditions)
    drgs = folder / DRG_TABLE
    if drgs.exists():
        ref.drgs = _drg_norms(drgs)
    reasons = folder / DELAY_REASONS
    if reasons.exists():
        ref.delay_reasons = _delay_reasons(reasons)
    ref.digest = hasher.hexdigest()[:12]
    return ref


DRG_TABLE = "ms_drg_table5.csv"
DELAY_REASONS = "delay_reasons.csv"


def _delay_reasons(path: Path) -> dict[str, DelayReason]:
    reasons: dict[str, DelayReason] = {}
    for line, row in _rows(path, {"code", "category", "responsible_party", "text"}):
        values = [(row[c] or "").strip() for c in ("code", "category", "responsible_party",
                                                    "text")]
        if not all(values):
            raise ReferenceTableError(f"{path}:{line}: code, category, responsible_party and "
                                      "text are all needed")
        if values[0] in reasons:
            raise ReferenceTableError(f"{path}:{line}: reason {values[0]} is listed twice")
        # a typo would split the department's numbers into a category no one reads
        for column, known in (("category", DELAY_CATEGORIES),
                              ("responsible_party", RESPONSIBLE_PARTIES)):
            value = (row[column] or "").strip()
            if value not in known:
                raise ReferenceTableError(f"{path}:{line}: unknown {column} {value!r}; use "
                                          f"one of {', '.join(known)}")
        reasons[values[0]] = DelayReason(*values)
    return reasons


def _drg_norms(path: Path) -> dict[str, DrgNorm]:
    norms: dict[str, DrgNorm] = {}
    columns = {"ms_drg", "title", "gmlos", "amlos", "weight", "fiscal_year"}
    for line, row in _rows(path, columns):
        key = drg_key(row["ms_drg"])
        try:
            gmlos, amlos, weight = (float(row[c]) for c in ("gmlos", "amlos", "weight"))
        except ValueError as exc:
            raise ReferenceTableError(f"{path}:{line}: gmlos, amlos and weight must be numbers") \
                from exc
        if key in norms:
            raise ReferenceTableError(f"{path}:{line}: MS-DRG {key} is listed twice")
        norms[key] = DrgNorm(key, row["title"].strip(), gmlos, amlos, weight,
                             row["fiscal_year"].strip())
    return norms
