"""Plain-text tables of evaluation results (for the CLI and the benchmark's markdown)."""

from __future__ import annotations

from typing import Any


def _f(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if v != v else f"{v:.{digits}f}"


def budget_table(results: dict[str, dict[str, Any]], subset: str = "random_sample") -> str:
    """Markdown table: one row per scorer and budget, precision / recall / critical recall on
    ``subset`` and, when available, expected nonconformities against the oracle."""
    lines = [
        f"| scorer | budget | precision ({subset}) | recall | critical recall | "
        "expected found / oracle | expected critical / oracle |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, metrics in results.items():
        for k, entry in sorted(metrics["budgets"].items(), key=lambda kv: float(kv[0])):
            sub = entry[subset]
            truth = entry.get("truth", {})
            lines.append(
                f"| {name} | {float(k) * 100:g}% | {_f(sub['precision'])} | {_f(sub['recall'])} | "
                f"{_f(sub['critical_recall'])} | {_f(truth.get('ratio'))} | "
                f"{_f(truth.get('critical_ratio'))} |"
            )
    return "\n".join(lines)


def ranking_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of AUC, PR-AUC, Brier and ECE on all inspected and the random sample."""
    lines = [
        "| scorer | AUC all | AUC random | PR-AUC all | PR-AUC random | Brier all | "
        "Brier random | ECE all | ECE random |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in results.items():
        a, r = m["all_inspected"], m["random_sample"]
        lines.append(
            f"| {name} | {_f(a['auc'])} | {_f(r['auc'])} | {_f(a['pr_auc'])} | {_f(r['pr_auc'])} | "
            f"{_f(a['brier'], 4)} | {_f(r['brier'], 4)} | {_f(a['ece'], 4)} | {_f(r['ece'], 4)} |"
        )
    return "\n".join(lines)
