"""The HTTP application: FHIR R4 under /fhir, the web worklist, health for load balancers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import select

from engine import __version__
from engine.fhir.outcome import install_handlers, outcome_response
from engine.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Discharge-planning engine",
        version=__version__,
        description="FHIR R4 API of the discharge-planning and utilization-review engine.",
    )
    app.state.runtime = runtime
    install_handlers(app)

    @app.middleware("http")
    async def _body_limit(request, call_next):
        length = request.headers.get("content-length")
        limit = runtime.settings.max_body_bytes
        if length and length.isdigit() and int(length) > limit:
            return outcome_response(413, f"request body over {limit} bytes")
        return await call_next(request)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(select(1))
            return JSONResponse({"status": "ok", "version": __version__})
        except Exception:  # noqa: BLE001 - health reports, never raises
            return JSONResponse({"status": "database unavailable"}, status_code=503)

    from engine.fhir.router import build_router

    app.include_router(build_router(), prefix="/fhir")
    from engine.admin import build_router as admin_router

    app.include_router(admin_router(), prefix="/admin")
    from engine.web.router import install as install_web

    install_web(app)
    return app
