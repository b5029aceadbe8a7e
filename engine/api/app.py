"""The HTTP application: FHIR R4 under /fhir, sign-in and the web worklist, admin, health.

Middleware, outermost first: audit (writes the trail before the answer leaves), session
(CSRF and the session cookie), body limit, unexpected errors (an OperationOutcome for the
API, a plain page for people).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import select

from engine import __version__
from engine.api.admin import build_router as admin_router
from engine.api.auth import install as install_auth
from engine.api.deps import get_sessions
from engine.api.fhir.router import build_router as fhir_router
from engine.api.http_errors import outcome_for
from engine.api.outcomes import install_handlers
from engine.api.runtime import Runtime
from engine.api.security.audit import AuditMiddleware
from engine.api.security.oauth import build_router as oauth_router
from engine.api.session import SessionMiddleware
from engine.api.unexpected import install as install_unexpected
from engine.api.web.error_page import refusal
from engine.api.web.router import install as install_web
from engine.api.web.signin import build_router as signin_router
from engine.api.worklist import build_router as worklist_router
from engine.core.errors import InputTooLarge


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Discharge-planning engine",
        version=__version__,
        description="FHIR R4 API of the discharge-planning and utilization-review engine.",
    )
    app.state.runtime = runtime
    install_handlers(app)
    install_unexpected(app)
    install_auth(app, runtime.settings)

    @app.middleware("http")
    async def _body_limit(request, call_next):
        length = request.headers.get("content-length")
        limit = runtime.settings.max_body_bytes
        if length and length.isdigit() and int(length) > limit:
            return outcome_for(InputTooLarge(f"request body over {limit} bytes"))
        return await call_next(request)

    @app.get("/health", include_in_schema=False)
    def health() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(select(1))
            return JSONResponse({"status": "ok", "version": __version__})
        except Exception:  # noqa: BLE001 - health reports, never raises
            return JSONResponse({"status": "database unavailable"}, status_code=503)

    app.include_router(fhir_router(), prefix="/fhir")
    app.include_router(worklist_router(), prefix="/api")
    app.include_router(admin_router(), prefix="/admin")
    app.include_router(oauth_router(get_sessions), prefix="/auth")
    app.include_router(signin_router())
    install_web(app)
    app.add_middleware(SessionMiddleware, refuse=refusal)
    # Asked per request: the runtime's sessions are read when the request is audited.
    app.add_middleware(AuditMiddleware, answer=outcome_for, sessions=lambda: runtime.sessions)
    return app
