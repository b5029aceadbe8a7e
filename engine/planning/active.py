"""The rulebook in force: one holder that the one path, the clock, the web pages and the
reloader share, so a reload is seen everywhere at once."""

from __future__ import annotations

from dataclasses import dataclass

from engine.planning.rulebook import Rulebook


@dataclass
class ActiveRules:
    """`current` is None while no rulesets are loaded; a reload replaces it whole (one
    attribute assignment), never edits it, so a reader sees the old book or the new one."""

    current: Rulebook | None = None
