"""Hot reload: pick up changed ruleset files, load the new version only if it passes check.

The swap is one attribute assignment, so an evaluation sees the old book or the new one,
never a mix. A broken file leaves the running version in place and says where and what.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.core.site import SiteProfile
from engine.planning.active import ActiveRules
from engine.planning.rulebook import Rulebook
from engine.rules.loader import RulesetError, ruleset_paths
from engine.rules.reference import ReferenceTableError

log = logging.getLogger("engine.rules.reload")


def fingerprint(folder: Path) -> dict[str, tuple[int, int]]:
    """(mtime, size) of every ruleset and reference file: cheap to poll every few seconds."""
    files = [*ruleset_paths(folder), *sorted((folder / "reference").rglob("*.csv"))] \
        if folder.is_dir() else []
    out = {}
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        out[str(path.relative_to(folder))] = (st.st_mtime_ns, st.st_size)
    return out


@dataclass
class Reload:
    outcome: str  # unchanged | reloaded | rejected
    version: str
    previous: str | None = None
    changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Reloader:
    """Watches one folder and swaps the rules in force when it changes; serializes reloads.

    A new rulebook gets the same site profile and staffing file as the one it replaces."""

    def __init__(self, rules: ActiveRules, folder: Path, site: SiteProfile,
                 staffing_file: Path | None) -> None:
        self.rules = rules
        self.folder = folder
        self.site = site
        self.staffing_file = staffing_file
        self._seen = fingerprint(folder)
        self._lock = threading.Lock()
        self.history: list[tuple[datetime, str, Reload]] = []

    def poll(self) -> Reload | None:
        """Reload if any file changed since the last look (the server calls this)."""
        if fingerprint(self.folder) == self._seen:
            return None
        return self.reload("file change")

    def reload(self, who: str) -> Reload:
        with self._lock:
            now_seen = fingerprint(self.folder)
            changed = sorted(k for k in now_seen.keys() | self._seen.keys()
                             if now_seen.get(k) != self._seen.get(k))
            self._seen = now_seen
            current = self.rules.current
            previous = current.version if current is not None else None
            try:
                fresh = Rulebook.load(self.folder, self.site, staffing_file=self.staffing_file)
            except (RulesetError, ReferenceTableError) as exc:
                problems = [str(p) for p in exc.problems] if isinstance(exc, RulesetError) \
                    else [str(exc)]
                result = Reload("rejected", previous or "", previous, changed, problems)
                log.error("ruleset reload by %s rejected; keeping version %s: %s", who,
                          previous, "; ".join(result.problems))
                self._remember(who, result)
                return result
            if current is not None and fresh.version == current.version:
                fresh.matcher.close()
                result = Reload("unchanged", previous or "", previous, changed)
                self._remember(who, result)
                return result
            result = Reload("reloaded", fresh.version, previous, changed)
            # History first: a reader that sees the new version also sees why it changed.
            self._remember(who, result)
            self.rules.current = fresh
            if current is not None:
                current.matcher.close()
            log.warning("rulesets reloaded by %s: version %s -> %s (changed: %s)", who,
                        previous, fresh.version, ", ".join(changed) or "-")
            return result

    def _remember(self, who: str, result: Reload) -> None:
        self.history = [*self.history[-49:], (datetime.now(UTC), who, result)]
