"""Templates, HTML error pages and static assets of the committee pages."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from jinja2.exceptions import UndefinedError
from starlette.staticfiles import StaticFiles

from policy.warnings import LEVELS, PUBLICATION_PURPOSES

SERVING_DIR = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = SERVING_DIR / "templates"
STATIC_DIR = SERVING_DIR / "static"
STATIC_PATH = "/committee/static"
STATIC_MAX_AGE = 3600  # seconds; the assets change only with a release

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

ERROR_TITLES = {400: "请求有误 Bad request", 401: "未登录 Not signed in", 403: "无权限 Forbidden",
                404: "未找到 Not found", 405: "方法不允许 Method not allowed",
                409: "状态冲突 Conflict", 422: "输入无效 Invalid input",
                500: "内部错误 Internal error", 503: "暂不可用 Unavailable"}  # fmt: skip


def _fmt_pct(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError, UndefinedError):  # missing metric: show a dash
        return "–"
    return "–" if math.isnan(f) else f"{f:.1%}"


def _fmt_counts(counts: Any) -> str:
    """``{"foodborne_illness": 4, "hs_code": 2.5}`` as "foodborne illness 4 · hs code 2.5"."""
    if not isinstance(counts, dict) or not counts:
        return "–"
    return " · ".join(f"{str(k).replace('_', ' ')} {v:g}" if isinstance(v, int | float)
                      else f"{str(k).replace('_', ' ')} {v}" for k, v in counts.items())  # fmt: skip


def _fmt_when(value: Any) -> str:
    """An ISO timestamp as "2026-12-02 05:23 UTC" (the stored value keeps its microseconds)."""
    if not value:
        return ""
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def _fmt_field(value: Any) -> str:
    """A declaration or profile field; an optional field the declaration left empty reads as
    "– not declared" rather than Python's ``None`` / ``nan``."""
    if value is None or value == "":
        return "– not declared"
    try:
        if pd.isna(value):
            return "– not declared"
    except (TypeError, ValueError):  # lists and other non-scalars: shown as they are
        pass
    return str(value)


templates.env.filters["pct"] = _fmt_pct
templates.env.filters["field"] = _fmt_field
templates.env.filters["counts"] = _fmt_counts
templates.env.filters["when"] = _fmt_when


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    """Render template ``name`` with ``context`` (plus the warning levels and purposes every
    page's layout uses)."""
    ctx = {"levels": LEVELS, "publication_purposes": PUBLICATION_PURPOSES, **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status)


def _user_or_none(request: Request) -> Any:
    from serving.sessions import page_user

    try:
        return page_user(request)
    except Exception:  # noqa: BLE001 - no valid session: the page shows no navigation
        return None


def error_page(request: Request, status: int, message: str) -> Response:
    """An error under ``/committee`` as an HTML page in the site's layout."""
    return render(request, "error.html", {
        "user": _user_or_none(request), "status": status, "message": message,
        "title": ERROR_TITLES.get(status, f"HTTP {status}"), "back": "/committee",
    }, status=status)  # fmt: skip


def install_error_pages(app: Any) -> None:
    """HTML error pages for every 4xx and 5xx under ``/committee`` (other paths keep FastAPI's
    JSON errors)."""
    from fastapi.exception_handlers import (
        http_exception_handler,
        request_validation_exception_handler,
    )
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/committee") or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else ERROR_TITLES.get(exc.status_code)
        return error_page(request, exc.status_code, str(detail or ""))

    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/committee"):
            return await request_validation_exception_handler(request, exc)
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
            for e in exc.errors()
        )
        return error_page(request, 422, fields or "invalid input")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


class CommitteeAssets(StaticFiles):
    """The committee's stylesheet and icons: Starlette's ``StaticFiles`` (paths outside the
    folder, a NUL or an over-long name are 404s; ETag and Last-Modified answer 304s) with a
    ``Cache-Control`` so browsers keep them for :data:`STATIC_MAX_AGE`."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Any,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = f"max-age={STATIC_MAX_AGE}"
        return response


def mount_static(app: Any) -> None:
    """Serve :data:`STATIC_DIR` under :data:`STATIC_PATH` (the security headers middleware
    gives its answers the pages' CSP like any other path under ``/committee``)."""
    app.mount(STATIC_PATH, CommitteeAssets(directory=STATIC_DIR), name="committee-static")
