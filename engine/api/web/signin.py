"""GET/POST /login and POST /logout: the web sign-in, with a session cookie as its result."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from engine.api import session
from engine.api.auth import Unauthenticated, authenticate
from engine.api.deps import RuntimeDep
from engine.api.security import audit, signin
from engine.api.web.error_page import refusal
from engine.api.web.layout import templates
from engine.core.roles import Permission, Principal

HOME = "/worklist"


def landing(principal: Principal, target: str) -> str:
    """The page after sign-in when none was asked for: the worklist for those who work
    patients, the department's numbers for a director (who may not read patients)."""
    if target == HOME and not principal.can(Permission.PATIENT_READ) \
            and principal.can(Permission.METRICS_READ):
        return "/metrics"
    return target


def local_path(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only, never another host."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(ord(c) < 32 or ord(c) == 127 for c in target)):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return HOME
    return target


def _page(request: Request, *, next_path: str, error: str | None = None, username: str = "",
          status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"next": next_path, "error": error, "username": username},
        status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
        return _page(request, next_path=local_path(next))

    @router.post("/login")
    async def login(request: Request, runtime: RuntimeDep) -> Response:
        async with request.form(max_files=0, max_fields=10) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        next_path = local_path(fields.get("next"))
        username = fields.get("username", "").strip()[:100]
        if not session.csrf_matches(request, fields.get(session.CSRF_FIELD)):
            return _page(request, next_path=next_path, username=username, status=400,
                         error="The sign-in page had expired. Please sign in again.")
        try:
            account = await run_in_threadpool(signin.check, request, runtime.sessions, "user",
                                              username, fields.get("password", ""))
        except signin.Throttled as exc:
            return _page(request, next_path=next_path, username=username, status=429,
                         error=f"Too many failed sign-ins. Try again in {exc.wait_s} seconds.",
                         headers={"Retry-After": str(exc.wait_s)})
        if account is None:
            return _page(request, next_path=next_path, username=username, status=401,
                         error="Unknown user name or wrong password.")
        if not request.state.principal.can(Permission.WEB_UI):
            return refusal(request, f"The {account.role} role cannot use the web "
                                            "pages; use the API with a token.")
        session.begin(request, account.name, account.token_version)
        return RedirectResponse(landing(request.state.principal, next_path), status_code=303)

    @router.post("/logout")
    def logout(request: Request) -> Response:
        try:
            authenticate(request)
            audit.note(request, "logout", None)
        except Unauthenticated:
            pass
        session.end(request)
        return RedirectResponse("/login", status_code=303)

    return router
