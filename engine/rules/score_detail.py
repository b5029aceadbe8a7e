"""What a score output records and how it reads: its published tier, and its parts in words.

The detail is written once, when the rule fires ("Length of stay: 5 days (4 points)" is
built from what the score saw then), and every page and FHIR resource reads it with the
functions here, so a tier or a component reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

from engine.rules.facts import FACTS
from engine.rules.model import ScoreAction, Tier
from engine.rules.reference import CharlsonCondition

# Units that take a singular for one ("1 day", "1 point").
_SINGULAR = {"days": "day", "hours": "hour", "midnights": "midnight", "years": "year",
             "points": "point"}


def _count(n: float, unit: str) -> str:
    return f"{n:g} {_SINGULAR.get(unit, unit) if n == 1 else unit}".strip()


def _value(value: Any, unit: str) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _count(round(float(value), 2), unit)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def record(score: ScoreAction, value: float | None, values: dict[str, Any],
           charlson: tuple[CharlsonCondition, ...]) -> dict[str, Any]:
    """The detail a score output stores: label, tier, tiers, high, and its parts."""
    parts = []
    weights = {c.name: c for c in charlson}
    for part in score.parts:
        raw = values.get(part.fact)
        entry: dict[str, Any] = {
            "fact": part.fact, "label": part.label or part.fact.replace("_", " ").capitalize(),
            "value": raw, "unit": FACTS[part.fact].unit if part.fact in FACTS else ""}
        if part.points:
            entry["points"] = values.get(part.points)
        if part.items == "charlson" and isinstance(raw, list):
            entry["items"] = [{"label": weights[n].words if n in weights else str(n),
                               "points": weights[n].weight if n in weights else None}
                              for n in raw]
        parts.append(entry)
    high_at = score.high_threshold
    tier = score.tier(value)
    high = tier == "high" if score.tiers else (
        high_at is not None and value is not None and value >= high_at)
    return {"label": score.label or score.name.upper(), "tier": tier,
            "tiers": [t.model_dump() for t in score.tiers] if score.tiers else None,
            "high": high, "high_at": high_at, "components": parts}


def component_texts(detail: dict[str, Any]) -> list[str]:
    """Each part in words: "Length of stay: 5 days (4 points)", "Emergency admission: yes"."""
    parts = detail.get("components") or []
    if isinstance(parts, dict):  # stored before parts were recorded with their words
        return [f"{name.replace('_', ' ').capitalize()}: "
                f"{_value(v, FACTS[name].unit if name in FACTS else '')}"
                for name, v in sorted(parts.items())]
    out = []
    for part in parts:
        if part.get("items") is not None:
            said = ", ".join(
                item["label"] + (f" ({_count(item['points'], 'points')})"
                                 if item.get("points") is not None else "")
                for item in part["items"]) or "none"
        else:
            said = _value(part.get("value"), part.get("unit") or "")
        points = part.get("points")
        if isinstance(points, int | float) and not isinstance(points, bool):
            said += f" ({_count(points, 'points')})"
        out.append(f"{part.get('label')}: {said}")
    return out


def tier_ranges(tiers: list[dict[str, Any]] | list[Tier] | None) -> str:
    """The bands in words, for whole-point scores from 0: "low 0-4, intermediate 5-6, high 7+"."""
    if not tiers:
        return ""
    bands = [t.model_dump() if isinstance(t, Tier) else t for t in tiers]
    out: list[str] = []
    start = 0.0  # scores count points from 0
    for band in bands:
        below = band.get("below")
        if below is None:
            out.append(f"{band['name']} {start:g}+")
            break
        top = float(below) - 1
        out.append(f"{band['name']} {start:g}" if top == start
                   else f"{band['name']} {start:g}-{top:g}")
        start = float(below)
    return ", ".join(out)


def score_text(code: str, value: float | None, detail: dict[str, Any]) -> str:
    """A score as a pill reads: "HOSPITAL 6 (intermediate)", "Charlson 8"."""
    label = detail.get("label") or code.upper()
    text = label if value is None else f"{label} {value:g}"
    tier = detail.get("tier")
    if tier:
        return f"{text} ({tier})"
    return text + (" (high)" if detail.get("high") else "")
