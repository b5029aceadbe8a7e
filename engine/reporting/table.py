"""What a metric returns: a small table (column names and rows) with how to chart it, and the
metric itself: its key (the CSV's name), title, definition in words and query."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from engine.reporting.scope import Scope
from engine.rules.reference import DrgNorm

Cell = str | int | float | None
# a text cell starting so is a formula to a spreadsheet (OWASP CSV injection)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _inert(cell: Cell) -> Cell:
    """A text cell a spreadsheet shows as text: a leading single quote before a formula
    start (unit, service, payer and DRG names come from the feed); numbers as they are."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        return "'" + cell
    return cell


@dataclass(frozen=True)
class Chart:
    """Bars (one per row, labelled by column `label`) of the `values` columns, or a line over
    time; `axis` names what the bars measure."""

    label: int
    values: tuple[int, ...]
    axis: str
    kind: Literal["bars", "stacked", "line"] = "bars"


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: Sequence[tuple[Cell, ...]]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([_inert(name) for name in self.columns])
        writer.writerows([_inert(cell) for cell in row] for row in self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class Context:
    """What queries need besides the scope: now, the site's zone, the DRG norms; and, for
    one page, the grouped rows several metrics of a family share (`shared`)."""

    now: datetime
    zone: ZoneInfo
    drgs: Mapping[str, DrgNorm]
    memo: dict[tuple[str, Scope], Any] = field(default_factory=dict, compare=False)

    def shared(self, name: str, scope: Scope, compute: Callable[[], Any]) -> Any:
        """`compute()` once per page for this name and scope: the metrics of a family read
        one GROUP BY over all their dimensions and each sums it its own way."""
        key = (name, scope)
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


Query = Callable[[Session, Scope, Context], Table]


@dataclass(frozen=True)
class Metric:
    key: str  # /metrics/<key>.csv
    family: str  # the heading it is shown under
    title: str
    definition: str  # numerator, denominator, exclusions: shown beside the chart
    query: Query
    chart: Chart


def rate(numerator: int, denominator: int) -> float | None:
    """A percentage to one decimal, or None (shown as a dash) when there is nothing to count."""
    return round(100 * numerator / denominator, 1) if denominator else None
