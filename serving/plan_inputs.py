"""The plan's inputs from the data: one row per group of the last year's trade (``policy.plan``).

Reads what the office has: the store's declarations and inspections, the model's probabilities of
the last year's declarations (a rescoring run's ``scored/`` parts, see docs/rescoring.md) and the
warnings in the serving database; hands :func:`policy.plan.allocate` a table it can allocate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.build import final_inspections
from policy.plan import (
    CSV_COLUMNS,
    Plan,
    PlanConfig,
    allocate,
    group_frame,
    plan_markdown,
    warning_flags,
)
from serving.csv_safe import safe_cell

BASE_DAYS = 365


def latest_scores(rescore_root: Path) -> Path | None:
    """The newest rescoring run folder (``ROOT/rescore/<as_of>/``) with scored parts."""
    root = rescore_root / "rescore" if (rescore_root / "rescore").is_dir() else rescore_root
    if not root.is_dir():
        return None
    runs = sorted(p for p in root.iterdir() if (p / "scored").is_dir())
    return runs[-1] if runs else None


def score_frame(run_dir: Path) -> pd.DataFrame:
    """``declaration_id`` and ``probability`` from a rescoring run's ``scored/`` parts (as the
    warnings assessment takes them)."""
    parts = sorted((run_dir / "scored").glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no scored parts under {run_dir / 'scored'}")
    frame = pd.concat(
        [pd.read_parquet(p, columns=["declaration_id", "probability"]) for p in parts],
        ignore_index=True,
    )
    frame["declaration_id"] = frame["declaration_id"].astype("str")
    return frame


def read_scores(run_dir: Path) -> pd.Series:
    """``probability`` by ``declaration_id`` from a rescoring run's ``scored/`` parts."""
    frame = score_frame(run_dir)
    return frame.set_index("declaration_id")["probability"]


def plan_groups(
    tables: Mapping[str, pd.DataFrame],
    *,
    as_of: datetime,
    config: PlanConfig,
    probabilities: pd.Series | None = None,
    warnings: Iterable[Mapping[str, Any]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Groups and their port volumes for a plan made at ``as_of``.

    Volume is the group's declarations in the :data:`BASE_DAYS` days ending at ``as_of`` (the
    expected trade of the plan year); ``model_rate`` is the mean probability of those
    declarations (NaN without scores); past results are the final ``random`` inspections of the
    group's declarations known by ``as_of`` (all years).

    Returns
    -------
    (groups, ports)
        The frame :func:`policy.plan.allocate` takes and its ``ports`` argument.
    """
    decl = tables["declarations"]
    end = pd.Timestamp(as_of)
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    start = end - pd.Timedelta(days=BASE_DAYS)
    at = decl["declared_at"]
    known = decl[at <= end]
    base = known[known["declared_at"] > start]
    if base.empty:
        raise ValueError(f"no declarations in the {BASE_DAYS} days before {end:%Y-%m-%d}")
    keys = group_frame(base, config.product_level)
    frame = keys.assign(declaration_id=base["declaration_id"].astype("str").to_numpy(),
                        port_code=base["port_code"].astype("str").to_numpy())  # fmt: skip
    if probabilities is not None:
        frame["p"] = frame["declaration_id"].map(probabilities).astype("float64")
    else:
        frame["p"] = float("nan")
    cols = list(("product", "origin_country", "trade_mode", "group_id"))
    groups = frame.groupby(cols, sort=True, observed=True).agg(
        volume=("declaration_id", "size"), model_rate=("p", "mean")
    )
    groups = groups.reset_index()
    insp = final_inspections(tables.get("inspections", pd.DataFrame()))
    if len(insp):
        rnd = insp[(insp["selection"] == "random") & (insp["inspected_at"] <= end)]
        past = known[["declaration_id", "hs_code", "origin_country", "trade_mode"]].merge(
            rnd[["declaration_id", "result"]], on="declaration_id"
        )
        pk = group_frame(past, config.product_level)["group_id"]
        res = (
            pd.DataFrame({"group_id": pk.to_numpy(),
                          "bad": (past["result"] == "nonconforming").to_numpy()})
            .groupby("group_id")["bad"].agg(["size", "sum"])
        )  # fmt: skip
        groups["past_samples"] = groups["group_id"].map(res["size"]).fillna(0).astype("int64")
        groups["past_nonconforming"] = groups["group_id"].map(res["sum"]).fillna(0).astype("int64")
    else:
        groups["past_samples"] = 0
        groups["past_nonconforming"] = 0
    flags = warning_flags(groups, list(warnings), end.to_pydatetime(), config)
    groups = pd.concat([groups, flags], axis=1)
    ports = (
        frame.groupby(["group_id", "port_code"], sort=True, observed=True)
        .size()
        .rename("volume")
        .reset_index()
    )
    return groups.drop(columns=["group_id"]), ports


def write_plan(plan: Plan, out_dir: Path) -> dict[str, Path]:
    """The plan document: ``plan.zh.md``, ``plan.en.md``, ``plan.csv`` (one line per group, the
    reasoning in both languages), ``plan_ports.csv`` (group x port) and ``plan.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "zh": out_dir / "plan.zh.md",
        "en": out_dir / "plan.en.md",
        "csv": out_dir / "plan.csv",
        "ports": out_dir / "plan_ports.csv",
        "json": out_dir / "plan.json",
    }
    paths["zh"].write_text(plan_markdown(plan, "zh"), encoding="utf-8")
    paths["en"].write_text(plan_markdown(plan, "en"), encoding="utf-8")
    lines = plan.lines.sort_values(["quota", "group_id"], ascending=[False, True])
    lines.map(safe_cell).to_csv(paths["csv"], index=False, encoding="utf-8")
    plan.ports.map(safe_cell).to_csv(paths["ports"], index=False, encoding="utf-8")
    body = {
        "schema": "guomen.plan/1",
        "year": plan.year,
        "samples": plan.samples,
        "config": plan.config.to_dict(),
        "summary": plan.summary,
        "columns": list(CSV_COLUMNS),
    }
    paths["json"].write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")  # fmt: skip
    return paths


def make_plan(
    tables: Mapping[str, pd.DataFrame],
    *,
    year: int,
    samples: int,
    config: PlanConfig,
    as_of: datetime | None = None,
    probabilities: pd.Series | None = None,
    warnings: Iterable[Mapping[str, Any]] = (),
) -> Plan:
    """Groups from the data at ``as_of`` (default: the newest declaration) and their allocation."""
    if as_of is None:
        as_of = pd.Timestamp(tables["declarations"]["declared_at"].max()).to_pydatetime()
    groups, ports = plan_groups(tables, as_of=as_of, config=config,
                                probabilities=probabilities, warnings=warnings)  # fmt: skip
    plan = allocate(groups, samples, year, config, ports)
    plan.summary["as_of"] = pd.Timestamp(as_of).isoformat()
    plan.summary["model_rates"] = probabilities is not None
    return plan


def warnings_of(engine: Any) -> list[dict[str, Any]]:
    """Every stored warning (subject, status, activation and lift times)."""
    from serving.db import create_schema
    from serving.warnings_store import WarningStore

    create_schema(engine)
    return WarningStore(engine).list()


def propose_plan(
    store_dir: Path,
    *,
    year: int,
    samples: int,
    out_dir: Path,
    engine: Any,
    actor: str,
    config: PlanConfig,
    scores: Path | None = None,
    as_of: datetime | None = None,
) -> tuple[Plan, str, dict[str, Path]]:
    """``guomen plan``: read the store, the rescored probabilities and the warnings, allocate,
    write the documents and store the plan as a proposal for the committee.

    ``scores`` is a rescoring run folder or the root holding ``rescore/<as_of>/``; without one
    (or when none exists) the expected rates come from past random results alone.
    """
    from features.store import Store
    from serving.plan_store import ensure_schema, save_plan

    tables = Store(store_dir).tables()
    if len(tables["declarations"]) == 0:
        raise ValueError(f"store {store_dir} has no declarations")
    run = None
    if scores is not None:
        run = scores if (scores / "scored").is_dir() else latest_scores(scores)
        if run is None:
            raise FileNotFoundError(f"no rescoring run with scored parts under {scores}")
    probabilities = read_scores(run) if run is not None else None
    plan = make_plan(tables, year=year, samples=samples, config=config, as_of=as_of,
                     probabilities=probabilities, warnings=warnings_of(engine))  # fmt: skip
    plan.summary["scores"] = str(run) if run is not None else None
    paths = write_plan(plan, out_dir)
    ensure_schema(engine)
    plan_id = save_plan(engine, plan, actor)
    return plan, plan_id, paths


def publish_disclosure(
    store_dir: Path,
    *,
    period: str,
    out_dir: Path,
    engine: Any,
    timezone: str,
    product_level: str = "chapter",
    now: datetime | None = None,
) -> tuple[dict[str, Any], dict[str, Path]]:
    """``guomen disclose``: the public report of a closed period from the store's results and the
    stored warnings, written as JSON, CSV and printable HTML."""
    from features.store import Store
    from policy.disclosure import disclose, parse_period, write_disclosure
    from serving.db import utcnow

    tables = Store(store_dir).tables()
    report = disclose(tables, parse_period(period, timezone), now=now or utcnow(),
                      product_level=product_level,  # type: ignore[arg-type]
                      warnings=warnings_of(engine))  # fmt: skip
    return report, write_disclosure(report, out_dir)
