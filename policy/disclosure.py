"""The public report of spot-check results (强化抽查信息公示和结果公开): ``guomen disclose``.

Per product group (HS chapter or HS4) and origin: the random monitoring results known in the
period (``selection == random``, ``inspected_at`` in the period's local days), nonconforming,
the rate with its 95 % Wilson score interval, the main hazard types; the warnings issued in the
period; and the enterprises the rules allow to name: those ``severely_discredited`` (严重失信,
the published blacklist) at the period's end, with their own results of the period.

Nothing else identifies a party: no declaration, declarant or overseas party id, and no
enterprise id or name outside the blacklist. Enterprise and overseas-party warnings are listed
by kind, level and hazard only. The schema is ``guomen.disclosure/1`` (docs/disclosure.md).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.build import final_inspections
from policy.plan import ProductLevel, product_of, wilson_interval

SCHEMA = "guomen.disclosure/1"
CONFIDENCE = 0.95
INTERVAL_METHOD = "wilson"
BLACKLIST_RATING = "severely_discredited"
# warning kinds that name a product or an origin (published with their subject)
PUBLIC_SUBJECT_KINDS = ("hs4", "hs4_origin", "origin", "hs_chapter")
GROUP_FIELDS: tuple[str, ...] = (
    "product", "origin_country", "samples", "nonconforming", "rate", "ci_low", "ci_high",
    "hazard_types",
)  # fmt: skip
WARNING_FIELDS: tuple[str, ...] = (
    "id", "level", "subject_kind", "subject", "hazard", "activated_at", "lifted_at", "status",
)  # fmt: skip
ENTERPRISE_FIELDS: tuple[str, ...] = (
    "enterprise_id", "name", "rating", "rating_from", "samples", "nonconforming",
)  # fmt: skip
_PERIOD = re.compile(r"^(\d{4})(?:-(?:Q([1-4])|(0[1-9]|1[0-2])|H([12])))?$")


class DisclosureError(ValueError):
    """The report cannot be made as asked (the message says what to change)."""


@dataclass(frozen=True)
class Period:
    """A closed reporting period in local time: ``[start, end)``."""

    label: str
    start: pd.Timestamp
    end: pd.Timestamp


def parse_period(label: str, timezone: str) -> Period:
    """``2026-Q3``, ``2026-H1``, ``2026-07`` or ``2026`` as local ``[start, end)``."""
    m = _PERIOD.match(label.strip())
    if not m:
        raise DisclosureError(
            f"period {label!r}: use YYYY-Qn, YYYY-Hn, YYYY-MM or YYYY (e.g. 2026-Q3)"
        )
    year = int(m.group(1))
    if m.group(2):
        first, months = 3 * (int(m.group(2)) - 1) + 1, 3
    elif m.group(3):
        first, months = int(m.group(3)), 1
    elif m.group(4):
        first, months = 6 * (int(m.group(4)) - 1) + 1, 6
    else:
        first, months = 1, 12
    start = pd.Timestamp(year=year, month=first, day=1, tz=timezone)
    end = start + pd.DateOffset(months=months)
    return Period(label.strip(), start, pd.Timestamp(end))


def disclose(
    tables: Mapping[str, pd.DataFrame],
    period: Period,
    *,
    now: datetime,
    product_level: ProductLevel = "chapter",
    warnings: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The report of ``period`` as a JSON-ready dict (schema :data:`SCHEMA`).

    Raises
    ------
    DisclosureError
        The period has not ended at ``now`` (a public report covers a closed period).
    """
    if pd.Timestamp(now) < period.end:
        raise DisclosureError(
            f"period {period.label} ends {period.end:%Y-%m-%d}: only a closed period is disclosed"
        )
    decl = tables["declarations"]
    insp = final_inspections(tables.get("inspections", pd.DataFrame()))
    start, end = period.start.tz_convert("UTC"), period.end.tz_convert("UTC")
    cols = ["declaration_id", "result", "hazard_type"]
    if len(insp):
        r = insp[(insp["selection"] == "random") & (insp["inspected_at"] >= start)
                 & (insp["inspected_at"] < end)][cols]  # fmt: skip
    else:
        r = pd.DataFrame(columns=cols)
    r = r.merge(decl[["declaration_id", "hs_code", "origin_country", "enterprise_id"]],
                on="declaration_id", how="inner")  # fmt: skip
    r = r.assign(
        product=[product_of(h, product_level) for h in r["hs_code"].astype("str")],
        origin_country=r["origin_country"].astype("str"),
        bad=(r["result"] == "nonconforming").to_numpy(),
    )
    groups = []
    for (product, origin), g in r.groupby(["product", "origin_country"], sort=True):
        n, k = len(g), int(g["bad"].sum())
        lo, hi = wilson_interval(k, n, CONFIDENCE)
        hz = g.loc[g["bad"], "hazard_type"].fillna("unrecorded").astype("str")
        counts = hz.value_counts()
        top = sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:3]
        groups.append({
            "product": str(product), "origin_country": str(origin), "samples": n,
            "nonconforming": k, "rate": k / n, "ci_low": lo, "ci_high": hi,
            "hazard_types": [{"hazard_type": h, "count": int(c)} for h, c in top],
        })  # fmt: skip
    n_all, k_all = len(r), int(r["bad"].sum())
    lo_all, hi_all = wilson_interval(k_all, n_all, CONFIDENCE) if n_all else (None, None)
    blacklist = blacklisted(tables, period.end)
    named = []
    for ent in sorted(blacklist):
        mine = r[r["enterprise_id"].astype("str") == ent]
        info = blacklist[ent]
        named.append({"enterprise_id": ent, "name": info["name"], "rating": BLACKLIST_RATING,
                      "rating_from": info["rating_from"], "samples": len(mine),
                      "nonconforming": int(mine["bad"].sum())})  # fmt: skip
    return {
        "schema": SCHEMA,
        "period": period.label,
        "start": period.start.isoformat(),
        "end": period.end.isoformat(),
        "product_level": product_level,
        "selection": "random",
        "interval": {"method": INTERVAL_METHOD, "confidence": CONFIDENCE},
        "totals": {"samples": n_all, "nonconforming": k_all,
                   "rate": (k_all / n_all) if n_all else None, "ci_low": lo_all,
                   "ci_high": hi_all},
        "groups": groups,
        "warnings": issued_warnings(warnings, period, blacklist),
        "named_enterprises": named,
    }  # fmt: skip


def blacklisted(tables: Mapping[str, pd.DataFrame], at: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """Enterprises whose rating in force before ``at`` is ``severely_discredited``."""
    ratings = tables.get("credit_ratings")
    if ratings is None or ratings.empty:
        return {}
    cut = at.tz_convert("UTC")
    r = ratings[ratings["effective_from"] < cut].sort_values("effective_from", kind="stable")
    latest = r.groupby("enterprise_id", sort=True).tail(1)
    bad = latest[latest["rating"] == BLACKLIST_RATING]
    ents = tables.get("enterprises")
    names: dict[str, str] = {}
    if ents is not None and len(ents) and "name" in ents:
        names = dict(zip(ents["enterprise_id"].astype("str"),
                         ents["name"].astype("str").fillna(""), strict=True))  # fmt: skip
    return {
        str(e): {"name": names.get(str(e), ""), "rating_from": pd.Timestamp(t).isoformat()}
        for e, t in zip(bad["enterprise_id"], bad["effective_from"], strict=True)
    }


def issued_warnings(
    warnings: Iterable[Mapping[str, Any]], period: Period, blacklist: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Warnings put in force (``activated_at``) in the period, subjects named only where public."""
    start, end = period.start.tz_convert("UTC"), period.end.tz_convert("UTC")
    out = []
    for w in warnings:
        at = w.get("activated_at")
        if not at:
            continue
        t = pd.Timestamp(at)
        t = t.tz_localize("UTC") if t.tzinfo is None else t
        if not (start <= t < end):
            continue
        kind = str(w.get("subject_kind"))
        key = str(w.get("subject_key"))
        if kind in PUBLIC_SUBJECT_KINDS or (kind == "enterprise" and key in blacklist):
            subject = key
        else:
            subject = None  # not named (docs/disclosure.md)
        out.append({
            "id": str(w.get("id")), "level": int(w.get("level", 0)), "subject_kind": kind,
            "subject": subject, "hazard": w.get("hazard"), "activated_at": t.isoformat(),
            "lifted_at": w.get("lifted_at"), "status": w.get("status"),
        })  # fmt: skip
    return sorted(out, key=lambda x: (x["activated_at"], x["id"]))


# ------------------------------------------------------------------------------ documents


def groups_csv(report: Mapping[str, Any]) -> str:
    """One row per product group x origin (hazard types as ``type:count;...``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["period", *GROUP_FIELDS])
    for g in report["groups"]:
        hz = ";".join(f"{h['hazard_type']}:{h['count']}" for h in g["hazard_types"])
        writer.writerow([report["period"], g["product"], g["origin_country"], g["samples"],
                         g["nonconforming"], f"{g['rate']:.6f}", f"{g['ci_low']:.6f}",
                         f"{g['ci_high']:.6f}", hz])  # fmt: skip
    return buf.getvalue()


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def report_html(report: Mapping[str, Any]) -> str:
    """A printable, self-contained HTML page of the report (no scripts, no remote assets)."""
    e = html.escape
    t = report["totals"]
    rows = "\n".join(
        f"<tr><td>{e(g['product'])}</td><td>{e(g['origin_country'])}</td>"
        f"<td class=n>{g['samples']}</td><td class=n>{g['nonconforming']}</td>"
        f"<td class=n>{_pct(g['rate'])}</td><td class=n>{_pct(g['ci_low'])} – {_pct(g['ci_high'])}"
        f"</td><td>{e(', '.join(h['hazard_type'] + ' ' + str(h['count']) for h in g['hazard_types']))}"
        "</td></tr>"
        for g in report["groups"]
    )
    warns = (
        "\n".join(
            f"<tr><td>{e(w['id'])}</td><td>{w['level']}</td><td>{e(w['subject_kind'])}</td>"
            f"<td>{e(w['subject'] or '不公开 not named')}</td><td>{e(str(w['hazard'] or ''))}</td>"
            f"<td>{e(w['activated_at'][:10])}</td></tr>"
            for w in report["warnings"]
        )
        or "<tr><td colspan=6>无 none</td></tr>"
    )
    named = (
        "\n".join(
            f"<tr><td>{e(x['enterprise_id'])}</td><td>{e(x['name'])}</td>"
            f"<td>{e(x['rating_from'][:10])}</td><td class=n>{x['samples']}</td>"
            f"<td class=n>{x['nonconforming']}</td></tr>"
            for x in report["named_enterprises"]
        )
        or "<tr><td colspan=5>无 none</td></tr>"
    )
    level = "HS 章 chapter" if report["product_level"] == "chapter" else "HS4"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>抽查结果公示 Spot-check results {e(report["period"])}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Microsoft YaHei", system-ui, sans-serif; margin: 2rem; color: #111; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; font-size: .9rem; }}
th, td {{ border: 1px solid #999; padding: .25rem .4rem; text-align: left; }}
td.n {{ text-align: right; }} thead {{ display: table-header-group; }} tr {{ page-break-inside: avoid; }}
@media print {{ body {{ margin: 1cm; }} a {{ color: #111; text-decoration: none; }} }}
</style></head><body>
<h1>进出口商品随机监测抽查结果公示 Public report of spot-check (random monitoring) results</h1>
<p>期间 Period: <b>{e(report["period"])}</b> ({e(report["start"][:10])} – {e(report["end"][:10])}, end exclusive).
样本 Samples {t["samples"]}, 不合格 nonconforming {t["nonconforming"]}, 不合格率 rate {_pct(t["rate"])}
(95% Wilson {_pct(t["ci_low"])} – {_pct(t["ci_high"])}).</p>
<p>产品分组 Product group: {level}. 区间 Interval: Wilson score interval, 95 %. Only random monitoring samples are reported (targeted and mandatory inspections are selected by risk and would bias the rates).</p>
<h2>按产品与原产地 By product group and origin</h2>
<table><thead><tr><th>产品 Product</th><th>原产地 Origin</th><th>样本 Samples</th><th>不合格 Nonconforming</th><th>不合格率 Rate</th><th>95% 区间 Interval</th><th>主要危害 Main hazards</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<h2>期内发布的预警 Warnings issued in the period</h2>
<table><thead><tr><th>编号 Id</th><th>级别 Level</th><th>对象类型 Subject kind</th><th>对象 Subject</th><th>危害 Hazard</th><th>生效 In force from</th></tr></thead>
<tbody>
{warns}
</tbody></table>
<h2>严重失信企业（已公布名单）Severely discredited enterprises (published blacklist)</h2>
<table><thead><tr><th>企业 Enterprise</th><th>名称 Name</th><th>认定 Rated from</th><th>样本 Samples</th><th>不合格 Nonconforming</th></tr></thead>
<tbody>
{named}
</tbody></table>
<p>Schema {e(report["schema"])}; other enterprises, declarants, overseas parties and declarations are not named.</p>
</body></html>
"""


def write_disclosure(report: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """``disclosure-<period>.json``, ``.csv`` (groups) and ``.html`` (printable) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"disclosure-{report['period']}"
    paths = {k: out_dir / f"{stem}.{k}" for k in ("json", "csv", "html")}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n",
                             encoding="utf-8")  # fmt: skip
    paths["csv"].write_text(groups_csv(report), encoding="utf-8")
    paths["html"].write_text(report_html(report), encoding="utf-8")
    return paths
