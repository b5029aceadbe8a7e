"""Everything a running engine shares: settings, database, site profile, clock, intake."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.core.clock import Clock, WallClock
from engine.core.config import Settings
from engine.core.site import SiteProfile, load_site_profile
from engine.fhir.inbound import map_raw
from engine.intake.path import Intake
from engine.planning.active import ActiveRules
from engine.planning.reload import Reloader
from engine.planning.rulebook import Rulebook
from engine.rules.loader import ruleset_paths
from engine.storage.db import make_engine, session_factory
from engine.storage.migrate import upgrade
from engine.work import escalation
from engine.work.staffing import Staffing, from_file


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    readers: sessionmaker[Session]
    site: SiteProfile
    clock: Clock
    rules: ActiveRules = field(init=False)
    intake: Intake = field(init=False)
    reloader: Reloader | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.rules = ActiveRules(self._load_rulebook())
        self.intake = Intake(
            self.sessions, self.site, self.clock, fhir_mapper=self._mapper(map_raw),
            max_bytes=self.settings.mllp_max_message_bytes, rules=self.rules,
        )
        if self.settings.rulesets is not None and Path(self.settings.rulesets).is_dir():
            self.reloader = Reloader(self.rules, Path(self.settings.rulesets), self.site,
                                     self.settings.staffing_file)

    def _load_rulebook(self) -> Rulebook | None:
        folder = self.settings.rulesets
        if folder is None or not str(folder) or not ruleset_paths(Path(folder)):
            return None
        return Rulebook.load(Path(folder), self.site,
                             staffing_file=self.settings.staffing_file)

    def escalate_overdue(self) -> int:
        """The clock's escalation: work overdue past the configured grace goes up."""
        grace = timedelta(minutes=self.settings.escalation_grace_minutes)
        return escalation.escalate_overdue(self.sessions, self.clock.now(), grace, self.staffing)

    @property
    def staffing(self) -> Staffing:
        """The staffing file this engine was started with (re-read when it changes)."""
        return from_file(self.settings.staffing_file)

    def _mapper(self, map_raw):
        return lambda raw: map_raw(raw, self.site)

    @classmethod
    def open(
        cls, settings: Settings, *, clock: Clock | None = None, migrate: bool = True
    ) -> Runtime:
        """Connect, upgrade the schema if asked (the server does on start), load the profile."""
        engine = make_engine(
            settings.database_url,
            sqlite_synchronous=settings.sqlite_synchronous,
            pool_size=max(settings.db_workers + 4, 8),
        )
        if migrate:
            upgrade(engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            readers=session_factory(engine, read_only=True),
            site=load_site_profile(settings.site_profile),
            clock=clock or WallClock(),
        )

    def close(self) -> None:
        self.engine.dispose()
