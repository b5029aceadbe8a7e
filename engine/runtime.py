"""Everything a running engine shares: settings, database, site profile, clock, intake."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.clock import Clock, WallClock
from engine.config import Settings
from engine.intake import Intake
from engine.rules.loader import ruleset_paths
from engine.rules.reload import Reloader
from engine.rules.rulebook import Rulebook
from engine.site import SiteProfile, load_site_profile
from engine.storage.db import make_engine, session_factory
from engine.storage.migrate import upgrade
from engine.tasks.staffing import runtime_info


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    readers: sessionmaker[Session]
    site: SiteProfile
    clock: Clock
    intake: Intake = field(init=False)
    reloader: Reloader | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        from engine.fhir.inbound import map_raw  # FHIR input mapping, for replays

        self.intake = Intake(
            self.sessions, self.site, self.clock, fhir_mapper=self._mapper(map_raw),
            max_bytes=self.settings.mllp_max_message_bytes,
        )
        self.intake.rulebook = self._load_rulebook()
        if self.settings.rulesets is not None and Path(self.settings.rulesets).is_dir():
            self.reloader = Reloader(self, Path(self.settings.rulesets))

    def _load_rulebook(self) -> Rulebook | None:
        folder = self.settings.rulesets
        if folder is None or not str(folder) or not ruleset_paths(Path(folder)):
            return None
        return Rulebook.load(Path(folder), self.site)

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
        info = runtime_info(settings.staffing_file)
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine, info=info),
            readers=session_factory(engine, read_only=True, info=info),
            site=load_site_profile(settings.site_profile),
            clock=clock or WallClock(),
        )

    def close(self) -> None:
        self.engine.dispose()
