"""The committee's record of past warnings: ``/committee/warnings/record`` (page) and
``/committee/warnings/record.csv`` (export). The rows come from :mod:`serving.warning_record`.

Listed in ``serving.routes.ROUTER_MODULES`` before ``serving.routes.pages``, whose
``/committee/warnings/{warning_id}`` would otherwise take ``record`` for a warning id.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from policy.warnings import LEVELS
from serving.routes.warnings import get_store, get_tables
from serving.sessions import User
from serving.warning_record import OUTCOMES, record_csv, record_rows, record_summary

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
router = APIRouter(prefix="/committee", include_in_schema=False)


@router.get("/warnings/record", response_class=HTMLResponse)
def warning_record_page(request: Request, user: User) -> Response:
    """Past warnings with what followed, and counts by outcome."""
    rows = record_rows(get_store(request), get_tables(request))
    context = {"user": user, "rows": rows, "summary": record_summary(rows),
               "outcomes": OUTCOMES, "levels": LEVELS}  # fmt: skip
    return templates.TemplateResponse(request, "warning_record.html", context)


@router.get("/warnings/record.csv")
def warning_record_csv(request: Request, user: User) -> Response:
    """The record as CSV, one row per decided warning."""
    rows = record_rows(get_store(request), get_tables(request))
    return Response(
        record_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="warning_record.csv"'},
    )
