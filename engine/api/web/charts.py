"""A metric's table drawn as an inline SVG chart (matplotlib, Agg, no pyplot state), with a
title and a text summary screen readers read, so the picture is never the only way in.

Small figures, text kept as text (svg.fonttype none: smaller, selectable), no layout
engine (fixed margins) and bar labels as plain texts: a matplotlib tick or a constrained
layout costs as much as the bars. A chart is a pure function of its table, so the last few
hundred are kept by content (`svg`): a page whose numbers have not changed draws nothing.
Every text is drawn as it is, never as mathtext: a payer or unit named with $ signs (from
the feed) would otherwise be parsed as TeX and could fail the page.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from html import escape

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402 - after choosing the backend
from matplotlib.ticker import MaxNLocator  # noqa: E402

from engine.reporting.table import Cell, Metric, Table  # noqa: E402

matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 8, "text.parse_math": False,
                            "axes.spines.top": False, "axes.spines.right": False})
MAX_BARS = 15  # the table below the chart has every row
_COLOURS = ("#0b5cad", "#d08700", "#a40e26", "#6639ba")
_LABEL = 38
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def _short(text: Cell) -> str:
    words = str(text)
    return words if len(words) <= _LABEL else words[:_LABEL - 1] + "…"


def _number(cell: Cell) -> float:
    return float(cell) if isinstance(cell, int | float) else 0.0


def _shown(table: Table) -> list[tuple[Cell, ...]]:
    return [r for r in table.rows if r[0] != "All"][:MAX_BARS]


def summary(metric: Metric, table: Table) -> str:
    """The chart in words: what is drawn, and each bar's values."""
    rows = _shown(table)
    chart = metric.chart
    names = [table.columns[i] for i in chart.values]
    parts = ["; ".join([str(r[chart.label])] + [f"{n} {r[i] if r[i] is not None else '-'}"
                                                 for n, i in zip(names, chart.values,
                                                                 strict=True)])
             for r in rows]
    more = len([r for r in table.rows if r[0] != "All"]) - len(rows)
    tail = f" (and {more} more rows in the table)" if more > 0 else ""
    return f"{metric.title}: {', '.join(names)} by {table.columns[chart.label].lower()}. " \
           + ". ".join(parts) + tail + "."


def _draw(fig: Figure, metric: Metric, table: Table, rows: list[tuple[Cell, ...]]) -> None:
    chart = metric.chart
    ax = fig.add_subplot()
    counts = all(isinstance(r[i], int) for r in rows for i in chart.values)
    labels = [_short(r[chart.label]) for r in rows]
    if chart.kind == "line":
        positions = list(range(len(rows)))
        for n, i in enumerate(chart.values):
            ax.plot(positions, [_number(r[i]) for r in rows], marker="o",
                    color=_COLOURS[n % len(_COLOURS)], label=table.columns[i])
        ax.set_xticks(positions, labels, parse_math=False)
        ax.set_ylabel(chart.axis, parse_math=False)
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(5, integer=counts))
    else:
        positions = list(range(len(rows)))
        left = [0.0] * len(rows)
        for n, i in enumerate(chart.values):
            values = [_number(r[i]) for r in rows]
            ax.barh(positions, values, left=left if chart.kind == "stacked" else None,
                    color=_COLOURS[n % len(_COLOURS)], label=table.columns[i])
            if chart.kind == "stacked":
                left = [a + b for a, b in zip(left, values, strict=True)]
        # labels as plain texts, not ticks: a matplotlib tick costs as much as a bar chart
        ax.set_yticks([])
        where = ax.get_yaxis_transform()
        for y, label in zip(positions, labels, strict=True):
            ax.text(-0.01, y, label, transform=where, ha="right", va="center", parse_math=False)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=counts))
        ax.set_xlabel(chart.axis, parse_math=False)
        ax.axvline(0, color="#57606a", linewidth=0.6)
    if len(chart.values) > 1:  # beside the title, never over the bars
        legend = fig.legend(loc="upper right", ncols=len(chart.values), frameon=False)
        for entry in legend.get_texts():
            entry.set_parse_math(False)
    fig.suptitle(metric.title, x=0.01, y=1 - 0.06 / fig.get_figheight(), ha="left",
                 va="top", fontsize=9, parse_math=False)


def svg(metric: Metric, table: Table) -> str | None:
    """The chart as an <svg> element (role img, titled, described), or None: no rows."""
    return _drawn(metric, table.columns, tuple(table.rows))


@lru_cache(maxsize=256)
def _drawn(metric: Metric, columns: tuple[str, ...],
           rows: tuple[tuple[Cell, ...], ...]) -> str | None:
    return _render(metric, Table(columns, list(rows)))


def _render(metric: Metric, table: Table) -> str | None:
    rows = _shown(table)
    if not rows:
        return None
    line, top = metric.chart.kind == "line", 0.5 if len(metric.chart.values) > 1 else 0.32
    height = (2.6 if line else 0.26 * len(rows) + 0.8) + top
    fig = Figure(figsize=(7.2, height))
    # fixed margins: a layout engine costs several times the drawing itself
    fig.subplots_adjust(left=0.1 if line else 0.4, right=0.97, top=1 - top / height,
                        bottom=(0.75 if line else 0.42) / height)
    _draw(fig, metric, table, rows)
    out = io.StringIO()
    fig.savefig(out, format="svg")
    text = _PROLOGUE.sub("", out.getvalue(), count=1)
    key = escape(metric.key)
    opening = text.index(">") + 1
    return (text[:opening - 1]
            + f' role="img" aria-labelledby="chart-{key}-title chart-{key}-desc"'
            + ' class="chart" preserveAspectRatio="xMinYMin meet">'
            + f'<title id="chart-{key}-title">{escape(metric.title)}</title>'
            + f'<desc id="chart-{key}-desc">{escape(summary(metric, table))}</desc>'
            + text[opening:])
