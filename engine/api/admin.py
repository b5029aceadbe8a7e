"""Administrative endpoints: ruleset version and reload (authenticated like everything)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from engine.api.auth import require
from engine.api.deps import RulebookDep, RuntimeDep
from engine.core.errors import Conflict, NotApplicable
from engine.core.roles import Permission, Principal

Reloader = Annotated[Principal, Depends(require(Permission.RULES_RELOAD))]


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/rulesets", dependencies=[Depends(require(Permission.RULES_READ))])
    def rulesets(runtime: RuntimeDep, book: RulebookDep) -> JSONResponse:
        history = runtime.reloader.history if runtime.reloader else []
        return JSONResponse({
            "version": book.version if book else None,
            "rules": len(book.book.rules) if book else 0,
            "files": [str(f.path.name) for f in book.book.files] if book else [],
            "reloads": [{"at": at.isoformat(), "by": who, "outcome": r.outcome,
                         "version": r.version, "previous": r.previous, "changed": r.changed,
                         "problems": r.problems} for at, who, r in reversed(history)],
        })

    @router.post("/rulesets/reload")
    def reload(caller: Reloader, runtime: RuntimeDep) -> JSONResponse:
        if runtime.reloader is None:
            raise Conflict("no ruleset folder is configured (ENGINE_RULESETS)")
        result = runtime.reloader.reload(caller.name)
        if result.outcome == "rejected":
            raise NotApplicable("rulesets not reloaded; the running version stays. "
                                + " | ".join(result.problems))
        return JSONResponse({"outcome": result.outcome, "version": result.version,
                             "previous": result.previous, "changed": result.changed})

    return router
