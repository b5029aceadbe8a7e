"""The web worklist's routes and its static files, added to the HTTP application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from engine.api.web import (
    encounter_page,
    metrics_page,
    supervisor_page,
    task_forms,
    ur_record_corrections,
    ur_record_forms,
    worklist_page,
)

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(encounter_page.router, include_in_schema=False)
    app.include_router(task_forms.router, include_in_schema=False)
    app.include_router(ur_record_forms.router, include_in_schema=False)
    app.include_router(ur_record_corrections.router, include_in_schema=False)
    app.include_router(worklist_page.router, include_in_schema=False)
    app.include_router(supervisor_page.router, include_in_schema=False)
    app.include_router(metrics_page.router, include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/worklist", status_code=303)
