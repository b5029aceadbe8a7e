"""Database engines and sessions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_SYNC_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs (psycopg2 is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        mode = sqlite_synchronous.upper()
        if mode not in _SYNC_MODES:
            raise ValueError(f"ENGINE_SQLITE_SYNCHRONOUS must be one of {sorted(_SYNC_MODES)}")
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            # Let SQLAlchemy, not pysqlite, open transactions, so SAVEPOINTs work and
            # writers take the lock up front (BEGIN IMMEDIATE) instead of deadlocking later.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={mode}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            read_only = conn.get_execution_options().get("read_only", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    # A database that went away must fail fast (the MLLP sender then gets AE and resends),
    # not hang the worker: bounded connects, keepalives to notice a dead peer, pre-ping to
    # replace pooled connections the outage broke.
    return create_engine(
        url, pool_size=pool_size, max_overflow=4, pool_pre_ping=True, pool_timeout=30,
        connect_args={"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                      "keepalives_interval": 10, "keepalives_count": 3},
    )


def session_factory(engine: Engine, *, read_only: bool = False) -> sessionmaker[Session]:
    """Sessions for the one path (writers) or for reads that must not wait on writers.

    On SQLite, writers begin IMMEDIATE (take the write lock up front, no upgrade deadlocks)
    and read-only sessions begin DEFERRED, so WAL lets them read while a writer works.
    """
    bind = engine.execution_options(read_only=True) if read_only else engine
    # One flush per input, at commit: queries inside the path never need an autoflush.
    return sessionmaker(bind, expire_on_commit=False, autoflush=False)
