"""Committee pages of selection-policy backtests: ``/committee/backtests`` lists the finished
runs under ``Settings.backtests_dir`` (each a folder holding the ``backtest.json`` that
``guomen backtest`` writes), ``/committee/backtests/{run}`` shows one with its charts.

Serving never imports training: the pages read the finished runs' files only. A run folder
name must be a plain name (no path), and a chart is served only when the run's own report
lists it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from serving.sessions import User

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
router = APIRouter(prefix="/committee", include_in_schema=False)
REPORT = "backtest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def backtests_dir(request: Request) -> Path:
    """Where the runs are (``Settings.backtests_dir``, resolved against the home)."""
    return Path(request.app.state.settings.backtests_dir)


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "results" in doc else None


def list_runs(root: Path) -> list[dict[str, Any]]:
    """One summary per finished run, newest first."""
    runs: list[dict[str, Any]] = []
    if not root.is_dir():
        return runs
    for folder in root.iterdir():
        if not (folder.is_dir() and _NAME.match(folder.name)):
            continue
        doc = _read(folder)
        if doc is None:
            continue
        res, run = doc["results"], doc.get("run", {})
        c = res["config"]
        best = max(res["policies"].items(), key=lambda kv: kv[1]["total"]["found"],
                   default=(None, None))  # fmt: skip
        runs.append(
            {
                "name": folder.name,
                "start": c["start"],
                "end": c["end"],
                "budget": c["budget"],
                "retrain": c["retrain"],
                "universe": res["universe"]["mode"],
                "policies": list(res["policies"]),
                "weeks": len(res["weeks"]),
                "best": best[0],
                "written": run.get("written", ""),
            }
        )
    runs.sort(key=lambda r: r["written"], reverse=True)
    return runs


def _run_folder(request: Request, run: str) -> tuple[Path, dict[str, Any]]:
    if not _NAME.match(run):
        raise HTTPException(404, "no such backtest")
    folder = backtests_dir(request) / run
    doc = _read(folder) if folder.is_dir() else None
    if doc is None:
        raise HTTPException(404, "no such backtest")
    return folder, doc


@router.get("/backtests", response_class=HTMLResponse)
def backtests_page(request: Request, user: User) -> Response:
    """The finished backtest runs."""
    context = {"user": user, "runs": list_runs(backtests_dir(request))}
    return templates.TemplateResponse(request, "backtests.html", context)


@router.get("/backtests/{run}", response_class=HTMLResponse)
def backtest_page(request: Request, run: str, user: User) -> Response:
    """One run: totals, comparisons, AUC by month, outbreak delays and the charts."""
    _, doc = _run_folder(request, run)
    res = doc["results"]
    months = sorted({m["month"] for p in res["policies"].values() for m in p["months"]})
    auc = {
        name: {m["month"]: m for m in p["months"]}
        for name, p in res["policies"].items()
        if any(m.get("auc") is not None for m in p["months"])
    }
    outbreaks = {n: p["outbreaks"] for n, p in res["policies"].items() if p["outbreaks"]}
    context = {
        "user": user,
        "run": run,
        "res": res,
        "meta": doc.get("run", {}),
        "charts": [c for c in doc.get("run", {}).get("charts", []) if _NAME.match(c)],
        "months": months,
        "auc": auc,
        "outbreaks": outbreaks,
        "outbreak_rows": next(iter(outbreaks.values()), []),
    }
    return templates.TemplateResponse(request, "backtest.html", context)


@router.get("/backtests/{run}/charts/{chart}")
def backtest_chart(request: Request, run: str, chart: str, user: User) -> Response:
    """A chart the run's report lists (SVG, shown in an ``<img>``: no script can run)."""
    folder, doc = _run_folder(request, run)
    if chart not in doc.get("run", {}).get("charts", []) or not chart.endswith(".svg"):
        raise HTTPException(404, "no such chart")
    file = folder / chart
    if not file.is_file():
        raise HTTPException(404, "no such chart")
    return FileResponse(file, media_type="image/svg+xml")
