"""The backtest report: per policy per week and in total, monthly random-sample AUC and
calibration, outbreak delays, comparisons with ``legacy`` and ``exploit``; written as
``backtest.json``, ``backtest.md`` and SVG charts, and logged to MLflow as a run.

The ``results`` part of ``backtest.json`` depends only on the inputs (a resumed run writes the
same bytes there); the ``run`` part holds timings, load and the time it was written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.backtest.charts import PALETTE, line_chart
from training.evaluate import ranking_metrics

REPORT_JSON = "backtest.json"
REPORT_MD = "backtest.md"
CHARTS = {
    "cumulative_found.svg": "Nonconformities found, cumulative",
    "cumulative_critical.svg": "Critical nonconformities found, cumulative",
    "monthly_auc.svg": "Model AUC on the held-aside random sample, by month",
    "monthly_ece.svg": "Calibration error (ECE) on the held-aside random sample, by month",
}


def _r(value: float | None, digits: int = 4) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def totals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums and ratios over a policy's weekly records."""
    s = {
        k: float(sum(r[k] for r in records))
        for k in (
            "inspected",
            "found",
            "critical_found",
            "found_revealed",
            "all_nonconformities",
            "all_critical",
            "random_draws",
        )  # fmt: skip
    }
    out: dict[str, Any] = {k: _r(v, 3) for k, v in s.items()}
    out["precision"] = _r(s["found"] / s["inspected"]) if s["inspected"] else None
    out["share_found"] = (
        _r(s["found"] / s["all_nonconformities"]) if s["all_nonconformities"] else None
    )
    out["share_critical_found"] = _r(s["critical_found"] / s["all_critical"]) if s[
        "all_critical"] else None  # fmt: skip
    if records and "oracle_found" in records[0]:
        of = sum(r.get("oracle_found", 0.0) for r in records)
        oc = sum(r.get("oracle_critical", 0.0) for r in records)
        out["oracle_found"] = _r(of, 3)
        out["oracle_critical"] = _r(oc, 3)
        out["vs_oracle"] = _r(s["found"] / of) if of else None
        out["critical_vs_oracle"] = _r(s["critical_found"] / oc) if oc else None
    out["retrainings"] = int(sum(bool(r["retrained"]) for r in records))
    return out


def monthly_evaluation(
    weeks: list[str],
    eval_rows: list[np.ndarray],
    eval_score: list[np.ndarray],
    outcome: np.ndarray,
    probabilities: bool,
) -> list[dict[str, Any]]:
    """AUC and calibration of the policy's scores on the held-aside sample, per month."""
    by_month: dict[str, list[int]] = {}
    for i, day in enumerate(weeks):
        by_month.setdefault(day[:7], []).append(i)
    out = []
    for month, idx in by_month.items():
        rows = np.concatenate([eval_rows[i] for i in idx]) if idx else np.zeros(0, np.int64)
        score = np.concatenate([eval_score[i] for i in idx]) if idx else np.zeros(0)
        if len(score) != len(rows) or len(rows) == 0:
            out.append({"month": month, "n": int(len(rows)), "auc": None, "ece": None})
            continue
        y = outcome[rows].astype(np.float64)
        m = ranking_metrics(score, y, probabilities=probabilities)
        out.append(
            {
                "month": month,
                "n": int(len(rows)),
                "positives": int(y.sum()),
                "auc": _r(m["auc"]),
                "ece": _r(m["ece"]) if probabilities else None,
                "mean_predicted": _r(m["mean_p"]) if probabilities else None,
                "observed_rate": _r(m["base_rate"]),
            }
        )
    return out


def compare(policies: dict[str, dict[str, Any]], reference: str) -> dict[str, dict[str, Any]]:
    """Nonconformities and critical ones each policy finds more (+) or fewer than ``reference``."""
    ref = policies[reference]["total"]
    out = {}
    for name, p in policies.items():
        t = p["total"]
        out[name] = {
            "found": _r(t["found"] - ref["found"], 2),
            "critical_found": _r(t["critical_found"] - ref["critical_found"], 2),
            "found_ratio": _r(t["found"] / ref["found"]) if ref["found"] else None,
        }
    return out


def reference_of(policies: dict[str, dict[str, Any]], kind: str) -> str | None:
    """The first policy of ``kind`` in the run (its name), if any."""
    for name, p in policies.items():
        if p["kind"] == kind:
            return name
    return None


def write_charts(out: Path, results: dict[str, Any]) -> list[str]:
    """The four SVG charts of a finished run; returns their file names."""
    pols = results["policies"]
    weeks = results["weeks"]
    cum: dict[str, list[float | None]] = {}
    cumc: dict[str, list[float | None]] = {}
    for name, p in pols.items():
        cum[name] = list(np.cumsum([w["found"] for w in p["weeks"]]).astype(float))
        cumc[name] = list(np.cumsum([w["critical_found"] for w in p["weeks"]]).astype(float))
    if results["universe"]["mode"] == "truth" and pols:
        first = next(iter(pols.values()))["weeks"]
        cum["oracle"] = list(np.cumsum([w.get("oracle_found", 0.0) for w in first]).astype(float))
    months = sorted({m["month"] for p in pols.values() for m in p["months"]})
    auc = {
        n: [_month_value(p["months"], m, "auc") for m in months]
        for n, p in pols.items()
        if any(x["auc"] is not None for x in p["months"])
    }
    ece = {
        n: [_month_value(p["months"], m, "ece") for m in months]
        for n, p in pols.items()
        if any(x.get("ece") is not None for x in p["months"])
    }
    names = [*pols, "oracle"]
    colours = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    found_label = "expected nonconformities" if results["universe"]["mode"] == "truth" else (
        "nonconformities")  # fmt: skip
    charts = {
        "cumulative_found.svg": line_chart(
            cum, weeks, CHARTS["cumulative_found.svg"], found_label, colours=colours
        ),
        "cumulative_critical.svg": line_chart(
            cumc, weeks, CHARTS["cumulative_critical.svg"], "critical", colours=colours
        ),
        "monthly_auc.svg": line_chart(
            auc, months, CHARTS["monthly_auc.svg"], "AUC", colours=colours
        ),  # fmt: skip
        "monthly_ece.svg": line_chart(
            ece, months, CHARTS["monthly_ece.svg"], "ECE", colours=colours
        ),  # fmt: skip
    }
    for name, svg in charts.items():
        (out / name).write_text(svg, encoding="utf-8")
    return list(charts)


def _month_value(months: list[dict[str, Any]], month: str, key: str) -> float | None:
    for m in months:
        if m["month"] == month:
            v = m.get(key)
            return None if v is None else float(v)
    return None


def _cell(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def markdown(results: dict[str, Any], run: dict[str, Any]) -> str:
    """The report as Markdown: totals, comparisons, AUC over time, outbreaks, the universe."""
    c = results["config"]
    u = results["universe"]
    pols = results["policies"]
    truth = u["mode"] == "truth"
    lines = [
        f"# Backtest {c['start']} to {c['end']}",
        "",
        f"Store `{c['store']}`; budget {c['budget']:g} of each week's declarations; retraining "
        f"{c['retrain']}; seed {c['seed']}; {len(results['weeks'])} weeks.",
        "",
        f"**Universe: {u['mode']}.** {u['note']}",
        "",
        "## Totals",
        "",
    ]
    head = ["policy", "inspected", "found", "critical found", "precision", "share of all"]
    if truth:
        head += ["vs oracle", "critical vs oracle"]
    head += ["retrainings"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, p in pols.items():
        t = p["total"]
        row = [f"`{name}`", _cell(t["inspected"], 0), _cell(t["found"]),
               _cell(t["critical_found"]), _cell(t["precision"], 4), _cell(t["share_found"], 3)]  # fmt: skip
        if truth:
            row += [_cell(t.get("vs_oracle"), 3), _cell(t.get("critical_vs_oracle"), 3)]
        row += [str(t["retrainings"])]
        lines.append("| " + " | ".join(row) + " |")
    if truth and pols:
        t = next(iter(pols.values()))["total"]
        lines += ["", f"Oracle (top {c['budget']:g} by the true probability each week): "
                  f"{_cell(t.get('oracle_found'))} nonconformities, "
                  f"{_cell(t.get('oracle_critical'))} critical."]  # fmt: skip
    if pols:
        everything = next(iter(pols.values()))["total"]["all_nonconformities"]
        lines += ["", f"All nonconformities in the period: {_cell(everything)}."]
    for ref_key in ("vs_legacy", "vs_exploit"):
        comp = results["comparisons"].get(ref_key)
        if not comp:
            continue
        lines += ["", f"## More (+) or fewer (−) than `{comp['reference']}`", "",
                  "| policy | nonconformities | critical | ratio |", "|---|---|---|---|"]  # fmt: skip
        for name, d in comp["policies"].items():
            lines.append(
                f"| `{name}` | {_cell(d['found'])} | {_cell(d['critical_found'])} | "
                f"{_cell(d['found_ratio'], 3)} |"
            )
    months = sorted({m["month"] for p in pols.values() for m in p["months"]})
    scored = [n for n, p in pols.items() if any(m["auc"] is not None for m in p["months"])]
    if scored:
        lines += ["", "## AUC on the held-aside random sample, by month", "",
                  f"Sample: {u['held_aside']}.", "",
                  "| month | " + " | ".join(f"`{n}`" for n in scored) + " |",
                  "|---|" + "---|" * len(scored)]  # fmt: skip
        for m in months:
            vals = [_cell(_month_value(pols[n]["months"], m, "auc"), 3) for n in scored]
            lines.append(f"| {m} | " + " | ".join(vals) + " |")
        for n in scored:
            auc = pols[n]["auc_trend"]
            lines.append("")
            lines.append(
                f"`{n}`: AUC {_cell(auc['first'], 3)} in the first month, {_cell(auc['last'], 3)} "
                f"in the last (change {_cell(auc['change'], 3)}; mean ECE {_cell(auc['mean_ece'], 4)})."
            )
    obs = {n: p["outbreaks"] for n, p in pols.items() if p["outbreaks"]}
    if obs:
        ids = [o["id"] for o in next(iter(obs.values()))]
        lines += ["", "## Days from each planted outbreak's start to its first warning", "",
                  "| outbreak | " + " | ".join(f"`{n}`" for n in obs) + " |",
                  "|---|" + "---|" * len(obs)]  # fmt: skip
        for i, oid in enumerate(ids):
            o = next(iter(obs.values()))[i]
            vals = [_cell(obs[n][i]["delay_days"]) if obs[n][i]["warned"] else "none" for n in obs]
            lines.append(f"| {oid} {o['subject']} (from {o['start']}) | " + " | ".join(vals) + " |")
    notes = {n: p["retrain_notes"] for n, p in pols.items() if p["retrain_notes"]}
    if notes:
        lines += ["", "## Retraining notes", ""]
        lines += [f"- `{n}`: {x}" for n, xs in notes.items() for x in xs]
    lines += ["", "## Charts", ""] + [f"![{t}]({f})" for f, t in CHARTS.items()]
    lines += ["", f"Written {run['written']}; {run['seconds']:.0f} s; load average "
              f"{run['load_average']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def auc_trend(months: list[dict[str, Any]]) -> dict[str, float | None]:
    """First and last month's AUC, their difference and the mean ECE."""
    aucs = [m["auc"] for m in months if m.get("auc") is not None]
    eces = [m["ece"] for m in months if m.get("ece") is not None]
    first = aucs[0] if aucs else None
    last = aucs[-1] if aucs else None
    return {
        "first": first,
        "last": last,
        "change": _r(last - first) if first is not None and last is not None else None,
        "mean_ece": _r(float(np.mean(eces))) if eces else None,
    }


def write_report(out: Path, results: dict[str, Any], run: dict[str, Any]) -> Path:
    """``backtest.json`` (results + run), ``backtest.md`` and the charts into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(out, results)
    run["charts"] = charts
    doc = {"results": results, "run": run}
    (out / REPORT_JSON).write_text(
        json.dumps(doc, indent=2, ensure_ascii=False, default=_plain), encoding="utf-8"
    )
    (out / REPORT_MD).write_text(markdown(results, run), encoding="utf-8")
    return out / REPORT_JSON


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value)}")


def log_to_mlflow(
    out: Path, results: dict[str, Any], tracking_uri: str, artifact_root: Path | str
) -> str:
    """Log the run (params, per-policy totals as metrics, the report folder as artifacts) to
    the experiment ``guomen-backtest``; returns the run id."""
    import mlflow

    from training.registry import experiment_id

    exp = experiment_id(tracking_uri, artifact_root, "guomen-backtest")
    mlflow.set_tracking_uri(tracking_uri)
    c = results["config"]
    with mlflow.start_run(experiment_id=exp, run_name=out.name) as run:
        mlflow.log_params(
            {
                "start": c["start"],
                "end": c["end"],
                "budget": c["budget"],
                "retrain": c["retrain"],
                "seed": c["seed"],
                "universe": results["universe"]["mode"],
                "policies": ",".join(results["policies"]),
                "store": c["store"],
            }
        )
        metrics: dict[str, float] = {}
        for name, p in results["policies"].items():
            for k, v in p["total"].items():
                if isinstance(v, int | float) and v is not None and math.isfinite(v):
                    metrics[f"{name}.{k}"] = float(v)
        mlflow.log_metrics({_metric_key(k): v for k, v in metrics.items()})
        for name, p in results["policies"].items():
            for i, m in enumerate(p["months"]):
                if m.get("auc") is not None:
                    mlflow.log_metric(_metric_key(f"{name}.monthly_auc"), m["auc"], step=i)
        for file in sorted(out.iterdir()):  # the report, not the resumable state
            if file.is_file():
                mlflow.log_artifact(str(file), "report")
        return str(run.info.run_id)


def _metric_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)
