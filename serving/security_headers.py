"""Security headers on every answer, in one middleware.

Every response gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` and
``X-Frame-Options: DENY``. The committee pages also get a Content-Security-Policy that allows
local assets only: no inline or remote script, stylesheets from ``/committee/static`` only,
images from the app or ``data:``, forms posting back to the app, no framing
(``frame-ancestors 'none'``). Inline ``style`` attributes stay allowed (``style-src-attr``):
the server-drawn SVG charts colour their shapes with them; they cannot run script. The
interactive API docs (``/docs``, ``/redoc``) load FastAPI's Swagger/ReDoc bundles and are left
without a CSP.
"""

from __future__ import annotations

from typing import Any

PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; style-src-elem 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
COMMON_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
PAGES_PREFIX = "/committee"


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(COMMON_HEADERS)
        if scope.get("path", "").startswith(PAGES_PREFIX):
            extra.append((b"content-security-policy", PAGE_CSP.encode()))

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [*message.get("headers", ()),
                                      *(h for h in extra if h[0] not in names)]  # fmt: skip
            await send(message)

        await self.app(scope, receive, with_headers)
