"""What endpoints share, as FastAPI dependencies: the runtime, the rulebook in force, the
staffing and the time.

Handlers declare what they use (`runtime: RuntimeDep`, `book: RulebookDep`) instead of
digging in `request.app.state`; `get_runtime` is the one place that reads it, for the
dependencies here and for the few callers that cannot use Depends (exception handlers,
helpers below a dependency such as authentication).

The dependencies that only read memory are `async` so FastAPI resolves them in the event
loop; a plain `def` one would cost a threadpool hop per request. The staffing may read its
file, so it stays a plain `def` and runs in the threadpool.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from engine.api.runtime import Runtime
from engine.planning.rulebook import Rulebook
from engine.work.staffing import Staffing


def get_runtime(request: Request) -> Runtime:
    """The engine's runtime, which create_app keeps on the application."""
    return request.app.state.runtime


async def _runtime(request: Request) -> Runtime:
    return get_runtime(request)


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def get_rulebook(runtime: RuntimeDep) -> Rulebook | None:
    """The rulebook in force when the request arrived; None while no rulesets are loaded."""
    return runtime.rules.current


async def get_sessions(runtime: RuntimeDep) -> sessionmaker[Session]:
    """The engine database's read-write sessions (the accounts live there too)."""
    return runtime.sessions


def get_staffing(runtime: RuntimeDep) -> Staffing:
    """The staffing file this engine was started with (re-read when it changes)."""
    return runtime.staffing


async def get_now(runtime: RuntimeDep) -> datetime:
    """The engine clock's now, once per request."""
    return runtime.clock.now()


RulebookDep = Annotated[Rulebook | None, Depends(get_rulebook)]
StaffingDep = Annotated[Staffing, Depends(get_staffing)]
Now = Annotated[datetime, Depends(get_now)]
