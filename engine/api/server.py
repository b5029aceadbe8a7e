"""One process, one event loop: the HTTP API (uvicorn) and the MLLP listener side by side."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Generator
from typing import Any

import uvicorn

from engine.api.mllp import MllpServer
from engine.api.runtime import Runtime
from engine.planning.tick import tick

log = logging.getLogger("engine.server")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: this module owns shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def _clock(runtime: Runtime, stop: asyncio.Event) -> None:
    """Re-evaluate encounters whose time boundary passed, every clock_interval_s."""
    while not stop.is_set():
        rulebook = runtime.rules.current
        if rulebook is not None:
            try:
                await asyncio.to_thread(tick, runtime.sessions, rulebook, runtime.clock.now())
                await asyncio.to_thread(runtime.escalate_overdue)
            except Exception as exc:  # noqa: BLE001 - the clock retries; serving goes on
                log.error("clock tick failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.clock_interval_s)


async def _watch_rulesets(runtime: Runtime, stop: asyncio.Event) -> None:
    """Hot reload: changed ruleset files load if they pass check; else the old ones stay."""
    while not stop.is_set() and runtime.reloader is not None:
        try:
            await asyncio.to_thread(runtime.reloader.poll)
        except Exception as exc:  # noqa: BLE001 - a bad file must never stop the server
            log.error("ruleset watch failed: %s", type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=runtime.settings.rulesets_poll_s)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def work(runtime: Runtime, announce: Callable[[dict[str, int]], None]) -> None:
    """The background role alone (`engine worker`): the clock and the ruleset watcher.

    Runs beside any number of `engine serve --no-clock` processes on one PostgreSQL; each
    due encounter is claimed by one worker (`FOR UPDATE SKIP LOCKED`), never twice.
    """
    stop = _stop_on_signals()
    background = [asyncio.create_task(_clock(runtime, stop)),
                  asyncio.create_task(_watch_rulesets(runtime, stop))]
    announce({})
    await stop.wait()
    await _cancel(background)
    runtime.close()


def _db_workers(runtime: Runtime) -> int:
    # SQLite has one writer: more threads only queue on its lock.
    return 1 if runtime.engine.dialect.name == "sqlite" else runtime.settings.db_workers


async def serve(
    runtime: Runtime,
    *,
    host: str,
    port: int | None,
    mllp_port: int | None,
    announce: Callable[[dict[str, int]], None],
    clock: bool = True,
) -> None:
    """Run until SIGTERM/SIGINT; then stop taking work, finish in-flight messages, exit.

    `clock=False` leaves the clock to `engine worker` processes: with several serving
    processes one or two workers are enough (claims never overlap, so more are harmless).
    """
    settings = runtime.settings
    stop = _stop_on_signals()

    bound: dict[str, int] = {}
    mllp = None
    if mllp_port is not None:
        mllp = MllpServer(
            runtime.intake,
            max_bytes=settings.mllp_max_message_bytes,
            idle_timeout=settings.mllp_idle_timeout_s,
            frame_timeout=settings.mllp_frame_timeout_s,
            workers=_db_workers(runtime),
        )
        bound["mllp"] = await mllp.start(host, mllp_port)

    http = None
    http_task = None
    if port is not None:
        from engine.api.app import create_app  # noqa: PLC0415 - the MLLP-only role never loads the HTTP stack

        config = uvicorn.Config(
            create_app(runtime),
            host=host,
            port=port,
            access_log=False,  # request lines carry identifiers: no PHI in logs
            log_level="warning",
            lifespan="off",
        )
        http = _Uvicorn(config)
        http_task = asyncio.create_task(http.serve())
        while not http.started:
            if http_task.done():
                await http_task
                raise RuntimeError(f"HTTP server could not start on {host}:{port}")
            await asyncio.sleep(0.02)
        bound["http"] = http.servers[0].sockets[0].getsockname()[1]

    background = [asyncio.create_task(_watch_rulesets(runtime, stop))]
    if clock:
        background.append(asyncio.create_task(_clock(runtime, stop)))
    announce(bound)
    waiters: list[asyncio.Task[Any]] = [asyncio.create_task(stop.wait())]
    if http_task is not None:
        waiters.append(http_task)
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    await _cancel(background)
    if mllp is not None:
        await mllp.stop()
    if http is not None and http_task is not None:
        http.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await http_task
    runtime.close()
