"""A base for this package's pure ASGI middleware: HTTP requests only, shared request state.

Pure ASGI rather than BaseHTTPMiddleware, so the middleware sees the response start (the
status, the headers) before any byte leaves, and can add to or replace it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})  # one request.state for every layer below
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
