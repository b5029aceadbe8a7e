"""Reference tables beside the rulesets: value sets, the holiday calendar, Charlson weights."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path


class ReferenceError(ValueError):
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


@dataclass
class Reference:
    value_sets: dict[str, CodeSet] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    charlson: tuple[CharlsonCondition, ...] = ()
    digest: str = ""


def _rows(path: Path, columns: set[str]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = columns - set(reader.fieldnames or [])
            if missing:
                raise ReferenceError(f"{path}:1: missing column(s) {', '.join(sorted(missing))}")
            return [(i, row) for i, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise ReferenceError(f"{path}: cannot read ({exc.strerror})") from exc


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
                raise ReferenceError(f"{holidays}:{line}: {row['date']!r} is not a date "
                                     "(YYYY-MM-DD)") from exc
        ref.holidays = frozenset(days)
    charlson = folder / "charlson_quan2005.csv"
    if charlson.exists():
        conditions = []
        for line, row in _rows(charlson, {"condition", "weight", "codes"}):
            try:
                weight = int(row["weight"])
            except ValueError as exc:
                raise ReferenceError(f"{charlson}:{line}: weight must be a whole number") from exc
            conditions.append(CharlsonCondition(row["condition"].strip(), weight,
                                                (row.get("supersedes") or "").strip() or None,
                                                CodeSet.of(row["codes"].split())))
        ref.charlson = tuple(conditions)
    ref.digest = hasher.hexdigest()[:12]
    return ref
