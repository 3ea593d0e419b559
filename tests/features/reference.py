"""Slow, obviously-correct reference: for each declaration, loop over the whole history.

Written independently of ``features.build`` (only the declarations in ``features.registry`` and
the contract vocabularies are shared), so that a bug in the fast path cannot hide here.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pandas as pd

from features.contract import (
    CREDIT_RATINGS,
    DIRECTIONS,
    ENTERPRISE_TYPES,
    TRADE_MODES,
    TRANSPORT_MODES,
)
from features.registry import (
    CALENDAR_TZ,
    MIN_UNIT_VALUE_COUNT,
    PRIOR_STRENGTH,
    entity_aggregations,
    feature_specs,
)

DAY = 86_400 * 10**9
# Declared below two thirds of the HS6 median unit value.
LOW_UV_LOG_RATIO = math.log(2 / 3)
WIN = {"30d": 30 * DAY, "90d": 90 * DAY, "365d": 365 * DAY, "all": None}
# Key column -> declaration field; a cross "a_x_b" keys on the fields of a and b and is smoothed
# towards the mean of their rates; an HS level towards the next coarser one.
FIELD_OF = {
    "ent": "enterprise_id",
    "dcl": "declarant_id",
    "osp": "overseas_party_id",
    "hs2": "hs2",
    "hs4": "hs4",
    "hs6": "hs6",
    "hsc": "hs_code",
    "org": "origin_country",
    "port": "port_code",
    "trn": "transport_mode",
    "trd": "trade_mode",
}
HS_PARENT = {"hs4": "hs2", "hs6": "hs4", "hsc": "hs6"}
# Native categoricals: key column -> feature name; values with at least CAT_MIN declarations get
# codes by descending count (ties by value).
CATEGORICAL = {"hs2": "decl_hs2_cat_now", "hs4": "decl_hs4_cat_now", "org": "decl_org_cat_now"}
CATEGORICAL["port"] = "decl_port_cat_now"
CAT_MIN = 30


def _parts(ent: str) -> list[str]:
    return ent.split("_x_")


def _code_maps(decls: list[dict[str, Any]], attributes: dict[str, str]) -> dict[str, list[str]]:
    cols = dict(CATEGORICAL)
    for name, kind in attributes.items():
        if kind == "categorical":
            cols[f"attr_{name}"] = f"attr_{name}_cat_now"
    maps = {}
    for key, feat in cols.items():
        field = FIELD_OF.get(key, key.removeprefix("attr_"))
        counts: dict[str, int] = {}
        for d in decls:
            v = d.get(field)
            if v is not None and v != "":
                counts[str(v)] = counts.get(str(v), 0) + 1
        frequent = [(-c, v) for v, c in counts.items() if c >= CAT_MIN]
        maps[feat] = [v for _, v in sorted(frequent)][:1000]
    return maps


def _ns(ts: Any) -> int:
    return int(pd.Timestamp(ts).tz_convert("UTC").value)


def _val(v: Any) -> Any:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _records(df: pd.DataFrame | None) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    return [{k: _val(v) for k, v in r.items()} for r in df.to_dict("records")]


def _month_start(t: int) -> int:
    ts = pd.Timestamp(t, tz="UTC")
    return _ns(pd.Timestamp(year=ts.year, month=ts.month, day=1, tz="UTC"))


def reference_features(
    tables: dict[str, pd.DataFrame],
    attributes: dict[str, str] | None = None,
    entities: list[str] | None = None,
    categories: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Every feature of every declaration by brute force."""
    attributes = attributes or {}
    decls = _records(tables["declarations"])
    for d in decls:
        d["t"] = _ns(d["declared_at"])
        hs = str(d["hs_code"])
        d["hs2"], d["hs4"], d["hs6"] = hs[:2], hs[:4], hs[:6]
        for name, kind in attributes.items():
            if kind == "categorical" and d.get(name) is not None:
                d[name] = str(d[name])
        usd = d.get("declared_value_usd")
        kg = d.get("net_weight_kg")
        d["luv"] = math.log(usd / kg) if usd and kg and usd > 0 and kg > 0 else None
    by_id = {d["declaration_id"]: d for d in decls}
    # hs6_uv_log_ratio_month of every declaration (its enterprise's later declarations average it).
    for d in decls:
        ms = _month_start(d["t"])
        earlier_uv = sorted(
            e["luv"] for e in decls if e["hs6"] == d["hs6"] and e["t"] < ms and e["luv"] is not None
        )
        d["uv_ratio"] = d["uv_z"] = None
        if d["luv"] is not None and len(earlier_uv) >= MIN_UNIT_VALUE_COUNT:
            d["uv_ratio"] = d["luv"] - statistics.median(earlier_uv)
            sd = statistics.pstdev(earlier_uv)
            if sd > 0:
                d["uv_z"] = (d["luv"] - statistics.fmean(earlier_uv)) / sd

    # Final result per declaration: the latest inspected_at, later rows win ties.
    final: dict[str, dict[str, Any]] = {}
    for ins in _records(tables.get("inspections")):
        if ins["declaration_id"] not in by_id:
            continue
        ins["t"] = _ns(ins["inspected_at"])
        prev = final.get(ins["declaration_id"])
        if prev is None or ins["t"] >= prev["t"]:
            final[ins["declaration_id"]] = ins
    results = []
    for ins in final.values():
        nc = ins["result"] == "nonconforming"
        results.append(
            {
                "t": ins["t"],
                "decl": by_id[ins["declaration_id"]],
                "nc": nc,
                "maj": nc and ins.get("severity") in ("major", "critical"),
                "rand": ins["selection"] == "random",
            }
        )
    credit = _records(tables.get("credit_ratings"))
    enterprises = {e["enterprise_id"]: e for e in _records(tables.get("enterprises"))}
    signals = _records(tables.get("risk_signals"))

    aggs = entity_aggregations(attributes, entities)
    field_of = dict(FIELD_OF)
    for name, kind in attributes.items():
        if kind == "categorical":
            field_of[f"attr_{name}"] = name
    fields = {ent: [field_of[p] for p in _parts(ent)] for ent in aggs}
    parents: dict[str, tuple[str, ...]] = {}
    for ent in aggs:
        if len(_parts(ent)) > 1:
            parents[ent] = tuple(_parts(ent))
        else:
            parents[ent] = (HS_PARENT[ent],) if ent in HS_PARENT else ()

    def depth(ent: str) -> int:
        return 0 if not parents[ent] else 1 + max(depth(q) for q in parents[ent])

    maps = categories if categories is not None else _code_maps(decls, attributes)

    def key(d: dict[str, Any], ent: str) -> tuple | None:
        vals = tuple(d.get(f) for f in fields[ent])
        return None if any(v is None or v == "" for v in vals) else vals

    def in_window(x: int, t: int, w: str) -> bool:
        return x < t and (WIN[w] is None or x >= t - WIN[w])

    rows = []
    for d in decls:
        t = d["t"]
        f: dict[str, float] = {}
        for feat, values in maps.items():
            cat_key = next((k for k, v in CATEGORICAL.items() if v == feat), None)
            field = (
                FIELD_OF[cat_key]
                if cat_key
                else feat.removeprefix("attr_").removesuffix("_cat_now")
            )
            v = d.get(field)
            code = values.index(str(v)) if v is not None and str(v) in values else None
            f[feat] = math.nan if code is None else float(code)
        f["decl_direction_code_now"] = float(DIRECTIONS.index(d["direction"]))
        f["decl_trade_mode_code_now"] = float(TRADE_MODES.index(d["trade_mode"]))
        tm = d.get("transport_mode")
        f["decl_transport_mode_code_now"] = float(TRANSPORT_MODES.index(tm)) if tm else math.nan
        f["decl_legal_inspection_flag_now"] = float(bool(d.get("legal_inspection")))
        f["decl_third_party_cert_flag_now"] = float(bool(d.get("third_party_certificate")))
        # Issues recorded by ingest (or the API) on this declaration; none recorded: 0.
        f["decl_dq_issue_cnt_now"] = float(d.get("dq_issue_count") or 0)
        local = pd.Timestamp(t, tz="UTC").tz_convert(CALENDAR_TZ)
        f["decl_month_now"], f["decl_weekday_now"], f["decl_hour_now"] = (
            float(local.month),
            float(local.weekday()),
            float(local.hour),
        )
        usd, kg = d.get("declared_value_usd"), d.get("net_weight_kg")
        f["decl_log_value_now"] = math.log1p(usd) if usd is not None else math.nan
        f["decl_log_weight_now"] = math.log1p(kg) if kg is not None else math.nan
        luv = d["luv"]
        f["decl_log_unit_value_now"] = luv if luv is not None else math.nan
        f["hs6_uv_log_ratio_month"] = _nan_if_none(d["uv_ratio"])
        f["hs6_uv_z_month"] = _nan_if_none(d["uv_z"])
        # Credit: latest effective_from <= t, later rows win ties.
        tier = "regular"
        best = None
        for c in credit:
            ct = _ns(c["effective_from"])
            if (
                c["enterprise_id"] == d["enterprise_id"]
                and ct <= t
                and (best is None or ct >= best)
            ):
                best, tier = ct, c["rating"]
        f["ent_credit_tier_at"] = float(CREDIT_RATINGS.index(tier))
        e = enterprises.get(d["enterprise_id"])
        et = e.get("enterprise_type") if e else None
        f["ent_type_code_static"] = float(ENTERPRISE_TYPES.index(et)) if et else math.nan
        reg = e.get("registered_at") if e else None
        f["ent_age_days_at"] = float(t - _ns(reg)) / DAY if reg is not None else math.nan

        # Global rate and entity histories.
        rate: dict[tuple[str, str], float] = {}
        for w in ("365d", "all"):
            known = [r for r in results if in_window(r["t"], t, w)]
            rate[("global", w)] = (sum(r["nc"] for r in known) / len(known)) if known else math.nan
        for ent in sorted(aggs, key=depth):
            k = key(d, ent)
            earlier = [e for e in decls if k is not None and key(e, ent) == k and e["t"] < t]
            mine_d = [e["t"] for e in earlier]
            mine_r = [
                r for r in results if k is not None and key(r["decl"], ent) == k and r["t"] < t
            ]
            for w in ("365d", "all"):
                ps = parents[ent] or ("global",)
                prior = sum(rate[(q, w)] for q in ps) / len(ps)
                rs = [r for r in mine_r if in_window(r["t"], t, w)]
                nc = sum(r["nc"] for r in rs)
                rate[(ent, w)] = (
                    (nc + PRIOR_STRENGTH * prior) / (len(rs) + PRIOR_STRENGTH)
                    if k is not None
                    else math.nan
                )
            for agg, windows in aggs[ent].items():
                for w in windows:
                    name = f"{ent}_{agg}_{w}"
                    if k is None:
                        f[name] = math.nan
                        continue
                    rs = [r for r in mine_r if in_window(r["t"], t, w)]
                    if agg == "decl_cnt":
                        f[name] = float(sum(in_window(x, t, w) for x in mine_d))
                    elif agg == "insp_cnt":
                        f[name] = float(len(rs))
                    elif agg == "nc_cnt":
                        f[name] = float(sum(r["nc"] for r in rs))
                    elif agg == "ncmaj_cnt":
                        f[name] = float(sum(r["maj"] for r in rs))
                    elif agg == "rand_share":
                        f[name] = sum(r["rand"] for r in rs) / len(rs) if rs else math.nan
                    elif agg == "nc_rate_eb":
                        f[name] = rate[(ent, w)]
                    elif agg == "days_since_nc":
                        ncs = [r["t"] for r in mine_r if r["nc"]]
                        f[name] = float(t - max(ncs)) / DAY if ncs else math.nan
                    elif agg == "days_since_first":
                        f[name] = float(t - min(mine_d)) / DAY if mine_d else math.nan
                    elif agg == "cert_share":
                        f[name] = _share([bool(e.get("third_party_certificate")) for e in earlier])
                    elif agg == "legal_cert_share":
                        f[name] = _share(
                            [
                                bool(e.get("third_party_certificate"))
                                for e in earlier
                                if e.get("legal_inspection")
                            ]
                        )
                    elif agg in ("uv_mean", "uv_low_share"):
                        ratios = [e["uv_ratio"] for e in earlier if e["uv_ratio"] is not None]
                        if agg == "uv_mean":
                            f[name] = statistics.fmean(ratios) if ratios else math.nan
                        else:
                            f[name] = _share([r < LOW_UV_LOG_RATIO for r in ratios])
                    elif agg == "sig_per_decl":
                        pass  # after the signals, below
            if ent in ("ent", "ent_x_hs4", "ent_x_org"):
                f[f"{ent}_is_new_all"] = math.nan if k is None else float(not mine_d)

        # Signals: every named subject field must match; hs_code as a prefix.
        sig = {}
        for s in signals:
            st = _ns(s["reported_at"])
            if not st < t:
                continue
            named = []
            ok = True
            for route, col in (
                ("ent", "enterprise_id"),
                ("osp", "overseas_party_id"),
                ("org", "origin_country"),
            ):
                if s.get(col):
                    named.append(route)
                    ok &= d.get(col) == s[col]
            if s.get("hs_code"):
                named.append("hs")
                ok &= str(d["hs_code"]).startswith(s["hs_code"])
            if not ok:
                continue
            for w in ("30d", "90d", "365d"):
                if not in_window(st, t, w):
                    continue
                for name in (
                    [f"sig_all_cnt_{w}", f"sig_{s['channel']}_cnt_{w}"]
                    + [f"sig_{r}_cnt_{w}" for r in named]
                    + ([f"sig_sev_{s['severity']}_cnt_{w}"] if s.get("severity") else [])
                ):
                    sig[name] = sig.get(name, 0) + 1
        # Signals naming the entity per earlier declaration in the same window.
        for ent, ent_aggs in aggs.items():
            for w in ent_aggs.get("sig_per_decl", ()):
                n_decl = f[f"{ent}_decl_cnt_{w}"]
                f[f"{ent}_sig_per_decl_{w}"] = (
                    sig.get(f"sig_{ent}_cnt_{w}", 0) / n_decl if n_decl > 0 else math.nan
                )
        for name, kind in attributes.items():
            if kind == "numeric":
                v = d.get(name)
                f[f"attr_{name}_value_now"] = float(v) if v is not None else math.nan
        row = {"declaration_id": d["declaration_id"]}
        for s in feature_specs(attributes, entities):
            if s.name.startswith("sig_"):
                row[s.name] = float(sig.get(s.name, 0))
            else:
                row[s.name] = f[s.name]
        rows.append(row)
    return pd.DataFrame(rows)


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else x


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan


def compare(fast: pd.DataFrame, ref: pd.DataFrame, rtol: float = 1e-9) -> list[str]:
    """Differences between two feature frames (counts exact, others within ``rtol``)."""
    problems = []
    assert list(fast["declaration_id"]) == list(ref["declaration_id"])
    for s in feature_specs_from(ref):
        a = fast[s].to_numpy(dtype=np.float64)
        b = ref[s].to_numpy(dtype=np.float64)
        exact = "_cnt_" in s or "_flag" in s or "_code" in s or "_is_new_" in s
        if exact:
            bad = ~((a == b) | (np.isnan(a) & np.isnan(b)))
        else:
            bad = ~(np.isclose(a, b, rtol=rtol, atol=1e-12) | (np.isnan(a) & np.isnan(b)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{s}: {int(bad.sum())} rows differ, e.g. row {i}: fast={a[i]!r} ref={b[i]!r}"
            )
    return problems


def feature_specs_from(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c not in ("declaration_id", "declared_at", "enterprise_id")]
