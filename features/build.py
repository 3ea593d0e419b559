"""Offline (point-in-time) features for every historical declaration, and the labels.

Timing rules (the same in ``features.snapshot`` and ``features.online``):

- a declaration at time ``t`` sees declarations with ``declared_at < t`` (strictly: declarations
  sharing a timestamp do not see each other), inspection results with ``inspected_at < t`` and
  risk signals with ``reported_at < t``; a window ``w`` covers ``[t - w, t)``;
- the credit tier in force is the latest rating with ``effective_from <= t`` (contract rule; ties on
  ``effective_from`` resolved by input order, last wins);
- HS6 unit-value statistics are those of all declarations of the HS6 made before the start of the
  UTC calendar month of ``t``;
- declaration behaviour (certificate shares, unit-value ratios) sums the terms of the entity's
  declarations with ``declared_at < t``, each term as that declaration's own features gave it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contract import DQ_ISSUE_COUNT, SIGNAL_CHANNELS, SIGNAL_SEVERITIES
from features.entities import EntityCoder, entities_for, frame_fields
from features.history import History
from features.progress import Progress
from features.registry import (
    BEHAVIOUR_RATIOS,
    CALENDAR_TZ,
    CREDIT_TIER_CODES,
    DAY_NS,
    MIN_UNIT_VALUE_COUNT,
    PRIOR_STRENGTH,
    RATE_WINDOWS,
    RATIO_FEATURES,
    SIGNAL_ROUTES,
    SIGNAL_WINDOWS,
    UV_LOW_LOG_RATIO,
    VOCABULARIES,
    WINDOWS,
    Entity,
    categorical_keys,
    computation_order,
    entity_aggregations,
    feature_specs,
)
from features.windows import EventIndex, TimeRanks, month_start_ns, to_ns

ID_COLUMNS = ("declaration_id", "declared_at", "enterprise_id")
EntitySet = tuple[str, ...] | list[str] | None


def window_ns(window: str) -> int | None:
    """Length of a window in ns (None for all history)."""
    days = WINDOWS[window]
    return None if days is None else days * DAY_NS


def declared_value_usd(decl: pd.DataFrame) -> np.ndarray:
    """``declared_value_usd`` if present, else converted with the default rate table."""
    if "declared_value_usd" in decl:
        return decl["declared_value_usd"].to_numpy(dtype=np.float64, na_value=np.nan)
    from features.rates import load_rates

    usd, _ = load_rates().to_usd(
        decl["declared_value"].to_numpy(dtype=np.float64, na_value=np.nan),
        decl["currency"].to_numpy(dtype=object),
        to_ns(decl["declared_at"]).view("datetime64[ns]"),
    )
    return usd


def final_inspections(insp: pd.DataFrame) -> pd.DataFrame:
    """One result per declaration: the latest by ``inspected_at`` (input order breaks ties)."""
    if insp.empty:
        return insp
    t = to_ns(insp["inspected_at"])
    order = np.lexsort((np.arange(len(insp)), t))
    ordered = insp.iloc[order]
    return ordered[~ordered["declaration_id"].duplicated(keep="last")]


def inspection_flags(insp: pd.DataFrame) -> dict[str, np.ndarray]:
    """0/1 columns counted per inspection: any result, nonconforming, major/critical, random."""
    nc = (insp["result"] == "nonconforming").fillna(False).to_numpy(dtype=bool)
    maj = (
        insp["severity"].isin(["major", "critical"]).fillna(False).to_numpy(dtype=bool)
        if ("severity" in insp)
        else np.zeros(len(insp), dtype=bool)
    )
    rand = (insp["selection"] == "random").fillna(False).to_numpy(dtype=bool)
    return {
        "insp": np.ones(len(insp), dtype=np.int64),
        "nc": nc.astype(np.int64),
        "ncmaj": (nc & maj).astype(np.int64),
        "rand": rand.astype(np.int64),
    }


def unit_value_log(usd: np.ndarray, kg: np.ndarray) -> np.ndarray:
    """ln(USD/kg) where both are positive, else NaN."""
    ok = (usd > 0) & (kg > 0)
    out = np.full(len(usd), np.nan)
    out[ok] = np.log(usd[ok] / kg[ok])
    return out


def declaration_flag(decl: pd.DataFrame, column: str) -> np.ndarray:
    """A boolean declaration column (missing column or value: False)."""
    s = decl[column] if column in decl else pd.Series(False, index=decl.index)
    return s.fillna(False).astype(bool).to_numpy(dtype=bool)


def dq_issue_counts(decl: pd.DataFrame) -> np.ndarray:
    """``decl_dq_issue_cnt_now`` of every row: the ``dq_issue_count`` column (missing: 0).

    Ingest writes the column; tables that never went through it (older stores, synthetic frames)
    had no issue recorded, so they count 0, as :func:`dq_issue_count_of` does online.
    """
    if DQ_ISSUE_COUNT not in decl:
        return np.zeros(len(decl))
    return decl[DQ_ISSUE_COUNT].to_numpy(dtype=np.float64, na_value=0.0)


def dq_issue_count_of(value: Any) -> float:
    """One declaration's ``decl_dq_issue_cnt_now`` from its ``dq_issue_count`` (missing: 0)."""
    if value is None:
        return 0.0
    value = float(value)
    return 0.0 if math.isnan(value) else value


def ratio_or_nan(num: Any, den: Any) -> Any:
    """``num / den``, NaN where ``den`` is 0 or NaN; float64 arrays (offline) or floats (online).

    The one division behind every share and ratio feature, so all paths agree bit for bit.
    """
    if isinstance(den, np.ndarray):
        out = np.full(den.shape, np.nan)
        np.divide(num, den, out=out, where=den > 0)
        return out
    return num / den if den > 0 else math.nan


# Running sums of declaration behaviour per entity key (the rows of ``behaviour_terms``); the
# registry's ``BEHAVIOUR_RATIOS`` divide them, or the number of earlier declarations ("decl").
BEHAVIOUR_SUMS = ("cert", "legal", "legal_cert", "uv_n", "uv_low", "uv_sum")
assert {x for pair in BEHAVIOUR_RATIOS.values() for x in pair} <= {"decl", *BEHAVIOUR_SUMS}


def behaviour_terms(cert: np.ndarray, legal: np.ndarray, uv_log_ratio: np.ndarray) -> np.ndarray:
    """What each declaration adds to its entity's behaviour sums (offline, snapshot, online).

    Returns
    -------
    np.ndarray
        float64, shape ``(len(BEHAVIOUR_SUMS), n)``: third-party certificate, legal inspection,
        both, unit-value ratio known, ratio below ``UV_LOW_LOG_RATIO``, the ratio (0 if unknown).
    """
    cert = np.asarray(cert, dtype=bool)
    legal = np.asarray(legal, dtype=bool)
    known = np.isfinite(uv_log_ratio)
    out = np.empty((len(BEHAVIOUR_SUMS), len(uv_log_ratio)))
    out[0] = cert
    out[1] = legal
    out[2] = cert & legal
    out[3] = known
    out[4] = known & (np.where(known, uv_log_ratio, 0.0) < UV_LOW_LOG_RATIO)
    out[5] = np.where(known, uv_log_ratio, 0.0)
    return out


class Prepared:
    """Declarations, inspections and signals as arrays, with shared time ranks."""

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        attributes: dict[str, str] | None,
        entities: EntitySet = None,
        screening: bool = False,
        categories: dict[str, list[str]] | None = None,
    ) -> None:
        self.attributes = dict(attributes or {})
        decl = tables["declarations"].reset_index(drop=True)
        self.decl = decl
        self.n = len(decl)
        self.t = to_ns(decl["declared_at"])
        self.fields = frame_fields(decl, self.attributes)
        self.coder = EntityCoder(self.fields)
        self.entities = entities_for(self.attributes, entities)
        self.entity_aggs = entity_aggregations(self.attributes, entities, screening)
        self.categories = categories
        self.legal = declaration_flag(decl, "legal_inspection")
        self.cert = declaration_flag(decl, "third_party_certificate")
        # Set by the value step; the entity step sums it into behaviour features.
        self.uv_log_ratio = np.full(self.n, np.nan)

        insp = final_inspections(_table(tables, "inspections"))
        row = pd.Index(decl["declaration_id"]).get_indexer(insp["declaration_id"])
        insp = insp[row >= 0]
        self.insp_row = row[row >= 0].astype(np.int64)  # row of each result's declaration
        self.insp_t = to_ns(insp["inspected_at"]) if len(insp) else np.zeros(0, np.int64)
        self.insp_flags = inspection_flags(insp)
        self.signals = _table(tables, "risk_signals")
        self.sig_t = (
            to_ns(self.signals["reported_at"]) if len(self.signals) else np.zeros(0, np.int64)
        )
        self.credit = _table(tables, "credit_ratings")
        self.credit_t = (
            to_ns(self.credit["effective_from"]) if len(self.credit) else np.zeros(0, np.int64)
        )
        self.enterprises = _table(tables, "enterprises")

        starts = {w: self.t - window_ns(w) for w in WINDOWS if window_ns(w) is not None}
        self.ranks = TimeRanks([self.t, self.insp_t, self.sig_t, self.credit_t, *starts.values()])
        self.M = self.ranks.modulus
        self.rank_t = self.ranks.rank(self.t)
        self.rank_start: dict[str, np.ndarray | None] = {
            w: (self.ranks.rank(s) if (s := starts.get(w)) is not None else None) for w in WINDOWS
        }
        self.rank_insp = self.ranks.rank(self.insp_t)

    def inspection_codes(self, entity: Entity, code_in: np.ndarray) -> np.ndarray:
        """Entity code of every result's declaration (-1: no key)."""
        return code_in[self.insp_row]


class _Columns:
    """Feature columns written straight into one (features x rows) float64 matrix."""

    def __init__(self, names: list[str], n: int) -> None:
        self.names = names
        self.pos = {name: i for i, name in enumerate(names)}
        # Every row is written in full (``build_offline`` asserts it): no NaN pre-fill pass.
        self.matrix = np.empty((len(names), n))
        self.written = [False] * len(names)

    def slot(self, name: str) -> np.ndarray:
        i = self.pos[name]
        self.written[i] = True
        return self.matrix[i]

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        self.slot(name)[:] = values

    def get(self, name: str) -> np.ndarray:
        """A column already written."""
        i = self.pos[name]
        assert self.written[i], f"{name} read before it is computed"
        return self.matrix[i]


def _table(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    from features.contract import TABLES

    df = tables.get(name)
    if df is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TABLES[name].names})
    return df.reset_index(drop=True)


def _codes(series: pd.Series, vocab: tuple[str, ...]) -> np.ndarray:
    codes = pd.Categorical(series.astype("str"), categories=list(vocab)).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return codes


def _declaration_features(p: Prepared, out: _Columns) -> None:
    d = p.decl
    out["decl_direction_code_now"] = _codes(d["direction"], VOCABULARIES["direction"])
    out["decl_trade_mode_code_now"] = _codes(d["trade_mode"], VOCABULARIES["trade_mode"])
    tm = d["transport_mode"] if "transport_mode" in d else pd.Series(pd.NA, index=d.index)
    out["decl_transport_mode_code_now"] = _codes(tm, VOCABULARIES["transport_mode"])
    out["decl_legal_inspection_flag_now"] = p.legal.astype(np.float64)
    out["decl_third_party_cert_flag_now"] = p.cert.astype(np.float64)
    out["decl_dq_issue_cnt_now"] = dq_issue_counts(d)
    local = pd.DatetimeIndex(p.t.view("datetime64[ns]")).tz_localize("UTC").tz_convert(CALENDAR_TZ)
    out["decl_month_now"] = local.month.to_numpy(dtype=np.float64)
    out["decl_weekday_now"] = local.day_of_week.to_numpy(dtype=np.float64)
    out["decl_hour_now"] = local.hour.to_numpy(dtype=np.float64)


def _categorical_features(p: Prepared, out: _Columns) -> None:
    from features.categorical import encode_frame, fit_code_maps

    if p.categories is None:
        p.categories = fit_code_maps(p.decl, p.attributes)
    missing = [
        n for n in out.names if n in categorical_keys(p.attributes) and n not in p.categories
    ]
    if missing:
        raise ValueError(f"no code map for {missing[:3]} (a bundle's categories lack them)")
    for name, values in encode_frame(p.fields, p.categories, p.attributes).items():
        out[name] = values


def declared_weight_kg(decl: pd.DataFrame) -> np.ndarray:
    """``net_weight_kg`` as float64 (NaN where missing)."""
    if "net_weight_kg" not in decl:
        return np.full(len(decl), np.nan)
    return decl["net_weight_kg"].to_numpy(dtype=np.float64, na_value=np.nan)


def _value_features(
    p: Prepared, out: _Columns, known: tuple[np.ndarray, np.ndarray] | None = None
) -> None:
    usd = declared_value_usd(p.decl)
    kg = declared_weight_kg(p.decl)
    with np.errstate(invalid="ignore"):
        out["decl_log_value_now"] = np.where(usd >= 0, np.log1p(np.where(usd >= 0, usd, 0)), np.nan)
        out["decl_log_weight_now"] = np.where(kg >= 0, np.log1p(np.where(kg >= 0, kg, 0)), np.nan)
    luv = unit_value_log(usd, kg)
    out["decl_log_unit_value_now"] = luv
    # ``known``: the partitioned build computed the HS6 unit-value features already (they are
    # the one step that needs every earlier declaration, which only its client holds).
    ratio, z = (
        known if known is not None else hs6_unit_value_features(p.coder.field("hs6")[0], p.t, luv)
    )
    out["hs6_uv_log_ratio_month"] = ratio
    out["hs6_uv_z_month"] = z
    p.uv_log_ratio = ratio


UnitValues = tuple[np.ndarray, np.ndarray, np.ndarray]


def hs6_unit_value_features(
    hs6: np.ndarray, t: np.ndarray, luv: np.ndarray, earlier: UnitValues | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``hs6_uv_log_ratio_month`` and ``hs6_uv_z_month`` of every row (NaN when unknown)."""
    median, mean, std, count = hs6_unit_value_stats(hs6, t, luv, earlier)
    ok = count >= MIN_UNIT_VALUE_COUNT
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, luv - median, np.nan), np.where(
            ok & (std > 0), (luv - mean) / std, np.nan
        )


def hs6_unit_value_stats(
    hs6: np.ndarray, t: np.ndarray, luv: np.ndarray, earlier: UnitValues | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median, mean, population std and count of earlier log unit values of each row's HS6.

    "Earlier" means declared before the start of the row's UTC month. ``earlier`` adds values
    declared before these rows (HS6 code in the same coding, time, log unit value), as the
    partitioned build carries them. One O(n) pass per month, no loop over rows.
    """
    n = len(t)
    median = np.full(n, np.nan)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    count = np.zeros(n, dtype=np.int64)
    valid = np.isfinite(luv) & (hs6 >= 0)
    vh, vt, vl = hs6[valid], t[valid], luv[valid]
    if earlier is not None:
        eh, et, el = earlier
        keep = (eh >= 0) & np.isfinite(el)
        vh = np.concatenate([eh[keep], vh])
        vt = np.concatenate([et[keep], vt])
        vl = np.concatenate([el[keep], vl])
    if len(vh) == 0 or n == 0 or not (hs6 >= 0).any():
        return median, mean, std, count
    order = np.lexsort((vl, vh))
    g = vh[order]
    vals = vl[order]
    times = vt[order]
    n_groups = int(max(hs6.max(), g.max())) + 1
    ms = month_start_ns(t)
    arange = np.arange(n_groups)
    for m in np.unique(ms):
        rows = np.flatnonzero((ms == m) & (hs6 >= 0))
        # Only the earlier values, compacted: sums then depend on nothing later (exact timing).
        sel = times < m
        if not sel.any():
            continue
        gm, vm = g[sel], vals[sel]
        gs = np.searchsorted(gm, arange, side="left")
        ge = np.searchsorted(gm, arange, side="right")
        kk = ge - gs
        nonempty = kk > 0
        sums = np.zeros(n_groups)
        sums[nonempty] = np.add.reduceat(vm, gs[nonempty])
        with np.errstate(invalid="ignore", divide="ignore"):
            gmean = sums / kk
        sq = np.zeros(n_groups)
        sq[nonempty] = np.add.reduceat((vm - gmean[gm]) ** 2, gs[nonempty])
        with np.errstate(invalid="ignore", divide="ignore"):
            gstd = np.sqrt(sq / kk)
        grp = hs6[rows]
        k = kk[grp]
        has = k > 0
        r, gh, kh = rows[has], grp[has], k[has]
        median[r] = 0.5 * (vm[gs[gh] + (kh - 1) // 2] + vm[gs[gh] + kh // 2])
        mean[r] = gmean[gh]
        std[r] = gstd[gh]
        count[rows] = k
    return median, mean, std, count


def _credit_features(p: Prepared, out: _Columns) -> None:
    ent_codes, ent_uniques = p.coder.field("enterprise_id")
    tier = np.full(p.n, CREDIT_TIER_CODES["regular"])
    if len(p.credit):
        cr_code = pd.Index(ent_uniques).get_indexer(p.credit["enterprise_id"].astype("str"))
        cr_rank = p.ranks.rank(p.credit_t)
        idx = EventIndex(cr_code.astype(np.int64), cr_rank, p.M)
        rating = (
            p.credit["rating"].map(CREDIT_TIER_CODES).to_numpy(dtype=np.float64, na_value=np.nan)
        )
        rating_sorted = rating[cr_code >= 0][
            np.argsort(cr_code[cr_code >= 0] * p.M + cr_rank[cr_code >= 0], kind="stable")
        ]
        # Latest rating with effective_from <= t: last event strictly before rank(t) + 1.
        pos = idx.position(ent_codes, p.rank_t + 1) - 1
        ok = (ent_codes >= 0) & (pos >= 0)
        ok[ok] &= idx.comb[pos[ok]] // p.M == ent_codes[ok]
        tier[ok] = rating_sorted[pos[ok]]
    out["ent_credit_tier_at"] = tier
    etype = np.full(p.n, np.nan)
    age = np.full(p.n, np.nan)
    if len(p.enterprises):
        e = p.enterprises.drop_duplicates("enterprise_id", keep="last")
        row = pd.Index(e["enterprise_id"].astype("str")).get_indexer(
            pd.Series(ent_uniques, dtype="str")  # type: ignore[arg-type]
        )
        known = row >= 0
        if "enterprise_type" in e:
            codes = _codes(e["enterprise_type"], VOCABULARIES["enterprise_type"])
            per_code = np.full(len(ent_uniques), np.nan)
            per_code[known] = codes[row[known]]
            etype = np.where(ent_codes >= 0, per_code[np.maximum(ent_codes, 0)], np.nan)
        if "registered_at" in e:
            reg = to_ns(e["registered_at"])
            reg_ok = ~pd.isna(pd.DatetimeIndex(e["registered_at"]))
            per_code = np.zeros(len(ent_uniques), dtype=np.int64)
            has = np.zeros(len(ent_uniques), dtype=bool)
            per_code[known] = reg[row[known]]
            has[known] = reg_ok[row[known]]
            c = np.maximum(ent_codes, 0)
            ok = (ent_codes >= 0) & has[c]
            age[ok] = (p.t[ok] - per_code[c[ok]]).astype(np.float64) / DAY_NS
    out["ent_type_code_static"] = etype
    out["ent_age_days_at"] = age


def eb_rate(nc: np.ndarray, insp: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """(nc + m * prior) / (insp + m)."""
    return (nc + PRIOR_STRENGTH * prior) / (insp + PRIOR_STRENGTH)


def _entity_features(
    p: Prepared,
    out: _Columns,
    progress: Progress | None,
    history: History | None = None,
    n_query: int | None = None,
) -> None:
    """Entity history features of the last ``n_query`` rows of ``p`` (None: every row).

    Every row of ``p`` is an event; only the query rows get features (the partitioned build puts
    the year before a partition in front of it). ``history`` holds the all-history totals of
    everything older than ``p``'s rows, added to the all-history aggregations.
    """
    nq = p.n if n_query is None else n_query
    q0 = p.n - nq
    aggs_by_entity = p.entity_aggs
    rates: dict[tuple[str, str], np.ndarray] = {}
    # Global rate (the root prior): all results known before t.
    zero_q = np.zeros(nq, dtype=np.int64)
    q_rank = p.rank_t[q0:]
    gidx = EventIndex(np.zeros(len(p.insp_t), np.int64), p.rank_insp, p.M, p.insp_flags)
    ghi = gidx.position(zero_q, q_rank)
    for w in RATE_WINDOWS:
        start = p.rank_start[w]
        glo = gidx.position(zero_q, None if start is None else start[q0:])
        g_nc = gidx.count(glo, ghi, "nc")
        g_insp = gidx.count(glo, ghi, "insp")
        if history is not None and start is None:
            g_nc = g_nc + history.global_counts["nc"]
            g_insp = g_insp + history.global_counts["insp"]
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[("global", w)] = g_nc / g_insp

    order = computation_order(tuple(aggs_by_entity), p.attributes)
    nc_sel = p.insp_flags["nc"].astype(bool)
    new_flags: dict[str, np.ndarray] = {}
    for name in order:
        if progress:
            progress(name)
        entity = p.entities[name]
        aggs = aggs_by_entity[name]
        code_in = p.coder.codes(entity)
        # Work in (code, time) order: sorted needles make every searchsorted cache-friendly.
        # The declarations are both the events and the queries, so this one sort is also the
        # declaration index (no second sort): rows with no key sort first and are never counted
        # because every query key is >= 0.
        comb = code_in * p.M + p.rank_t
        perm = np.argsort(comb, kind="stable")
        comb = comb[perm]
        code_all = code_in[perm]
        pos = np.arange(p.n, dtype=np.int64)
        # Earlier declarations of the key end where this row's (key, time) tie group starts.
        tie_start = np.ones(p.n, dtype=bool)
        np.not_equal(comb[1:], comb[:-1], out=tie_start[1:])
        dhi = np.maximum.accumulate(np.where(tie_start, pos, 0))
        key_start = np.ones(p.n, dtype=bool)
        np.not_equal(code_all[1:], code_all[:-1], out=key_start[1:])
        dlo_all = np.maximum.accumulate(np.where(key_start, pos, 0))
        del tie_start, key_start, pos
        if nq == p.n:
            qsel = None
            qperm = perm
        else:
            qsel = perm >= q0
            qperm = perm[qsel] - q0
        code = _take(qsel, code_all)
        rank_t = _take(qsel, p.rank_t[perm])
        t_sorted = p.t[perm]
        t = _take(qsel, t_sorted)
        starts = {
            w: (_take(qsel, r[perm]) if r is not None else None) for w, r in p.rank_start.items()
        }
        missing = code < 0
        q_dhi = _take(qsel, dhi)
        q_dlo = _take(qsel, dlo_all)
        carried = None if history is None else history.entity(name, p.coder.keys(entity))
        at = np.maximum(code, 0)

        res: dict[str, np.ndarray] = {}
        for w in aggs.get("decl_cnt", ()):
            if w == "all":
                cnt = (q_dhi - q_dlo).astype(np.float64)
                res["decl_cnt_all"] = cnt if carried is None else cnt + carried["decl"][at]
            else:
                start = starts[w]
                assert start is not None  # only "all" has no start rank
                lo = np.searchsorted(comb, code * p.M + start, side="left")
                res[f"decl_cnt_{w}"] = (q_dhi - lo).astype(np.float64)
        seen = q_dhi > q_dlo
        first_t = t_sorted[_take(qsel, dlo_all)]
        if carried is not None:
            old = carried["decl"][at] > 0
            seen = seen | old
            first_t = np.where(old, carried["first_t"][at], first_t)
        if name in ("ent", "ent_x_hs4", "ent_x_org"):
            flag = np.where(missing, np.nan, (~seen).astype(np.float64))
            new_flags[name] = np.empty(nq)
            new_flags[name][qperm] = flag
        if "days_since_first" in aggs:
            # The key's first declaration is the first row of its block (or carried).
            res["days_since_first_all"] = np.where(
                seen, (t - first_t).astype(np.float64) / DAY_NS, np.nan
            )
        if any(a in aggs for a in BEHAVIOUR_RATIOS):
            res.update(_behaviour_features(p, aggs, perm, code_all, dlo_all, dhi, qsel, carried))
        del comb, dhi, dlo_all, q_dlo

        icode = p.inspection_codes(entity, code_in)
        iidx = EventIndex(icode, p.rank_insp, p.M, p.insp_flags)
        ihi = iidx.position(code, rank_t)
        # Only the (kind, window) counts some output or rate needs.
        need_kw = {("insp", w) for w in RATE_WINDOWS} | {("nc", w) for w in RATE_WINDOWS}
        for a, k in (("insp_cnt", "insp"), ("nc_cnt", "nc"), ("ncmaj_cnt", "ncmaj")):
            need_kw.update((k, w) for w in aggs.get(a, ()))
        for w in aggs.get("rand_share", ()):
            need_kw.update({("rand", w), ("insp", w)})
        counts: dict[tuple[str, str], np.ndarray] = {}
        for w in sorted({w for _, w in need_kw}):
            lo = iidx.position(code, starts[w])
            for k in ("insp", "nc", "ncmaj", "rand"):
                if (k, w) in need_kw:
                    c = iidx.count(lo, ihi, k).astype(np.float64)
                    counts[(k, w)] = (
                        c + carried[k][at] if (carried is not None and w == "all") else c
                    )
        for agg, k in (("insp_cnt", "insp"), ("nc_cnt", "nc"), ("ncmaj_cnt", "ncmaj")):
            for w in aggs.get(agg, ()):
                res[f"{agg}_{w}"] = counts[(k, w)]
        for w in aggs.get("rand_share", ()):
            with np.errstate(invalid="ignore", divide="ignore"):
                res[f"rand_share_{w}"] = counts[("rand", w)] / counts[("insp", w)]
        for w in RATE_WINDOWS:
            parents = entity.parents or ("global",)
            prior = rates[(parents[0], w)][qperm]
            for q in parents[1:]:
                prior = prior + rates[(q, w)][qperm]
            if len(parents) > 1:
                prior = prior / len(parents)
            r = eb_rate(counts[("nc", w)], counts[("insp", w)], prior)
            r[missing] = np.nan
            full = np.empty(nq)
            full[qperm] = r
            rates[(name, w)] = full
            if w in aggs.get("nc_rate_eb", ()):
                res[f"nc_rate_eb_{w}"] = r
        if "days_since_nc" in aggs:
            nidx = EventIndex(icode[nc_sel], p.rank_insp[nc_sel], p.M, times=p.insp_t[nc_sel])
            nhi = nidx.position(code, rank_t)
            nlo = nidx.position(code, None)
            has = nhi > nlo
            last = nidx.time_at(nhi - 1, has)
            if carried is not None:
                old_nc = carried["last_nc_t"][at]
                last = np.where(has, last, old_nc)
                has = has | (old_nc != np.iinfo(np.int64).min)
            res["days_since_nc_all"] = np.where(has, (t - last).astype(np.float64) / DAY_NS, np.nan)
        for key, values in res.items():
            values = np.asarray(values, dtype=np.float64)
            values[missing] = np.nan
            target = out.slot(f"{name}_{key}")
            target[qperm] = values
    for ent, flags in new_flags.items():
        out[f"{ent}_is_new_all"] = flags


def _take(qsel: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    """The query rows of an array in the entity loop's order (all rows when ``qsel`` is None)."""
    return values if qsel is None else values[qsel]


def _behaviour_features(
    p: Prepared,
    aggs: dict[str, tuple[str, ...]],
    perm: np.ndarray,
    code: np.ndarray,
    dlo: np.ndarray,
    dhi: np.ndarray,
    qsel: np.ndarray | None,
    carried: dict[str, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Behaviour aggregations of the query rows, in the (key, time) order ``perm`` of the entity
    loop (``qsel`` marks the query rows of that order; None: all rows are queries).

    Rows ``[dlo, dhi)`` of that order are the row's earlier declarations of its key (its own tie
    group excluded). Each sum is a running sum that restarts at every key, read at row ``dhi - 1``:
    no difference of two prefix sums over all keys, so no cancellation in the unit-value sum.
    ``carried`` totals (older than the frame) are added to the sums.
    """
    terms = behaviour_terms(p.cert[perm], p.legal[perm], p.uv_log_ratio[perm])
    running = pd.DataFrame(terms.T).groupby(code, sort=False).cumsum().to_numpy().T
    q_dhi, q_dlo, q_code = _take(qsel, dhi), _take(qsel, dlo), _take(qsel, code)
    has = q_dhi > q_dlo
    last = np.maximum(q_dhi - 1, 0)
    sums = {name: np.where(has, running[i][last], 0.0) for i, name in enumerate(BEHAVIOUR_SUMS)}
    sums["decl"] = (q_dhi - q_dlo).astype(np.float64)
    if carried is not None:
        at = np.maximum(q_code, 0)
        for name in sums:
            sums[name] = sums[name] + carried[name][at]
    return {
        f"{agg}_all": ratio_or_nan(sums[num], sums[den])
        for agg, (num, den) in BEHAVIOUR_RATIOS.items()
        if agg in aggs
    }


def _ratio_features(out: _Columns) -> None:
    """Features that are the ratio of two others (after everything else is written)."""
    for name, (num, den) in RATIO_FEATURES.items():
        if name in out.pos:
            out[name] = ratio_or_nan(out.get(num), out.get(den))


def signal_patterns(signals: pd.DataFrame) -> tuple[list[tuple[tuple[str, ...], int]], np.ndarray]:
    """The subject patterns present among signals, and each signal's pattern index.

    A pattern is the tuple of subject fields a signal names plus the length of its HS prefix
    (0 when it names none). A signal matches a declaration when every field it names matches
    (``hs_code`` as a prefix).
    """
    if signals.empty:
        return [], np.zeros(0, dtype=np.int64)
    present = {}
    for route, (col, _, _) in SIGNAL_ROUTES.items():
        s = signals[col].astype("str") if col in signals else pd.Series(pd.NA, index=signals.index)
        present[route] = (s.notna() & (s != "")).to_numpy(dtype=bool)
    hs_len = np.where(present["hs"], signals["hs_code"].astype("str").str.len().fillna(0), 0)
    fields = [c for r, (c, _, _) in SIGNAL_ROUTES.items() if r != "hs"]
    label = np.zeros(len(signals), dtype=np.int64)
    for i, r in enumerate(("ent", "osp", "org")):
        label |= present[r].astype(np.int64) << i
    label = label * 16 + hs_len.astype(np.int64)
    uniq, inv = np.unique(label, return_inverse=True)
    patterns = []
    for lab in uniq:
        bits, hl = int(lab) // 16, int(lab) % 16
        chosen = tuple(f for i, f in enumerate(fields) if bits >> i & 1)
        patterns.append((chosen, hl))
    return patterns, inv.astype(np.int64)


def signal_categories(signals: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Channel and severity codes (index in the contract vocabulary, -1 if missing)."""
    ch = pd.Categorical(signals["channel"].astype("str"), categories=list(SIGNAL_CHANNELS)).codes
    sev_col = (
        signals["severity"] if "severity" in signals else pd.Series(pd.NA, index=signals.index)
    )
    sev = pd.Categorical(sev_col.astype("str"), categories=list(SIGNAL_SEVERITIES)).codes
    return ch.astype(np.int64), sev.astype(np.int64)


def _decl_prefix_codes(p: Prepared, hs_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(codes, uniques) of the first ``hs_len`` characters of ``hs_code`` (cached on ``p``)."""
    if hs_len in (2, 4, 6):
        return p.coder.field(f"hs{hs_len}")
    cache = p.__dict__.setdefault("_prefix_codes", {})
    if hs_len not in cache:
        hs = p.decl["hs_code"].astype("str")
        pre = hs.str.slice(0, hs_len).where(hs.str.len() >= hs_len)
        codes, uniques = pd.factorize(pre.where(pre != ""), use_na_sentinel=True)
        cache[hs_len] = (codes.astype(np.int64), np.asarray(uniques, dtype=object))
    return cache[hs_len]


def _pattern_rows(
    p: Prepared, signals: pd.DataFrame, pattern: tuple[tuple[str, ...], int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Declarations that some signal of ``pattern`` can match, their keys and the signals' keys.

    Keys are mixed-radix numbers over the declarations' own field codes; a signal value no
    declaration has gets -1 and matches nothing. Only candidate rows are returned, so the work
    per pattern is proportional to the declarations it touches, not to all of them.
    """
    fields, hs_len = pattern
    parts: list[tuple[np.ndarray, np.ndarray, int]] = []
    for f in fields:
        codes, uniques = p.coder.field(f)
        scodes = pd.Index(uniques, dtype="str").get_indexer(signals[f].astype("str"))
        parts.append((codes, scodes.astype(np.int64), len(uniques)))
    if hs_len:
        codes, uniques = _decl_prefix_codes(p, hs_len)
        scodes = pd.Index(uniques, dtype="str").get_indexer(signals["hs_code"].astype("str"))
        parts.append((codes, scodes.astype(np.int64), len(uniques)))
    # Candidate rows: every field's value occurs among this pattern's signals.
    mask = np.ones(p.n, dtype=bool)
    for codes, scodes, k in parts:
        present = np.zeros(k + 1, dtype=bool)  # index k (= -1 wrapped) stays False
        present[scodes[scodes >= 0]] = True
        mask &= present[codes]
    rows = np.flatnonzero(mask)
    radix = 1
    for _, _, k in parts:
        radix *= max(k, 1)
    if radix < 1 << 62:
        dkey = np.zeros(len(rows), dtype=np.int64)
        skey = np.zeros(len(signals), dtype=np.int64)
        for codes, scodes, k in parts:
            dkey = dkey * k + codes[rows]
            skey = np.where((skey >= 0) & (scodes >= 0), skey * k + scodes, -1)
    else:  # the mixed radix would overflow: one row per distinct tuple instead
        both = np.stack([np.concatenate([c[rows], s]) for c, s, _ in parts], axis=1)
        ok = (both >= 0).all(axis=1)
        joint = np.full(len(both), -1, dtype=np.int64)
        _, inv = np.unique(both[ok], axis=0, return_inverse=True)
        joint[ok] = inv.ravel()
        dkey, skey = joint[: len(rows)], joint[len(rows) :]
    # Dense keys over the signals' own keys (small: key * modulus stays far from overflow).
    uniq = np.unique(skey[skey >= 0])
    dpos = np.searchsorted(uniq, dkey)
    hit = dpos < len(uniq)
    hit[hit] = uniq[dpos[hit]] == dkey[hit]
    rows, dkey = rows[hit], dpos[hit].astype(np.int64)
    skey = np.where(skey >= 0, np.searchsorted(uniq, skey), -1).astype(np.int64)
    return rows, dkey, skey


def _signal_features(p: Prepared, out: _Columns) -> None:
    from features.registry import (
        SIGNAL_ALL_WINDOWS,
        SIGNAL_CHANNEL_WINDOWS,
        SIGNAL_ROUTE_WINDOWS,
        SIGNAL_SEVERITY_WINDOWS,
    )

    # Counts are added straight into their output rows (no per-pattern full-length temporaries).
    names = [f"sig_all_cnt_{w}" for w in SIGNAL_ALL_WINDOWS]
    names += [f"sig_{r}_cnt_{w}" for r, ws in SIGNAL_ROUTE_WINDOWS.items() for w in ws]
    names += [f"sig_{c}_cnt_{w}" for c in SIGNAL_CHANNELS for w in SIGNAL_CHANNEL_WINDOWS]
    names += [f"sig_sev_{s}_cnt_{w}" for s in SIGNAL_SEVERITIES for w in SIGNAL_SEVERITY_WINDOWS]
    acc = {name: out.slot(name) for name in names}
    for col in acc.values():
        col[:] = 0.0

    patterns, pat_of = signal_patterns(p.signals)
    if not patterns:
        return
    ch, sev = signal_categories(p.signals)
    sig_rank = p.ranks.rank(p.sig_t)
    route_of_field = {c: r for r, (c, _, _) in SIGNAL_ROUTES.items()}
    for i, pattern in enumerate(patterns):
        sel = pat_of == i
        rows, dkey, skey = _pattern_rows(p, p.signals[sel], pattern)
        if len(rows) == 0:
            continue
        weights = {"all": np.ones(int(sel.sum()), dtype=np.int64)}
        for j, c in enumerate(SIGNAL_CHANNELS):
            weights[c] = (ch[sel] == j).astype(np.int64)
        for j, s in enumerate(SIGNAL_SEVERITIES):
            weights[f"sev_{s}"] = (sev[sel] == j).astype(np.int64)
        idx = EventIndex(skey, sig_rank[sel], p.M, weights)
        rank_t = p.rank_t[rows]
        hi = idx.position(dkey, rank_t)
        routes = [route_of_field[f] for f in pattern[0]] + (["hs"] if pattern[1] else [])
        for w in SIGNAL_WINDOWS:
            w_start = p.rank_start[w]
            assert w_start is not None  # signal windows are bounded
            lo = idx.position(dkey, w_start[rows])
            cnt = idx.count(lo, hi, "all")
            if w in SIGNAL_ALL_WINDOWS:
                acc[f"sig_all_cnt_{w}"][rows] += cnt
            for r in routes:
                if w in SIGNAL_ROUTE_WINDOWS[r]:
                    acc[f"sig_{r}_cnt_{w}"][rows] += cnt
            if w in SIGNAL_CHANNEL_WINDOWS:
                for c in SIGNAL_CHANNELS:
                    acc[f"sig_{c}_cnt_{w}"][rows] += idx.count(lo, hi, c)
            if w in SIGNAL_SEVERITY_WINDOWS:
                for sv in SIGNAL_SEVERITIES:
                    acc[f"sig_sev_{sv}_cnt_{w}"][rows] += idx.count(lo, hi, f"sev_{sv}")


def _extra_numeric(p: Prepared, out: _Columns) -> None:
    for name, kind in p.attributes.items():
        if kind == "numeric":
            out[f"attr_{name}_value_now"] = pd.to_numeric(p.decl[name], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )


def build_offline(
    tables: dict[str, pd.DataFrame],
    attributes: dict[str, str] | None = None,
    progress: Progress | None = None,
    *,
    entities: EntitySet = None,
    categories: dict[str, list[str]] | None = None,
    screening: bool = False,
) -> pd.DataFrame:
    """Point-in-time features for every declaration.

    Parameters
    ----------
    tables
        Contract tables in canonical dtypes (``features.store.Store(root).tables()``).
    attributes
        Extra declaration attributes (name -> ``"categorical"`` | ``"numeric"``).
    progress
        Optional callback, called with a short step name as the build advances.
    entities
        History keys to build (``features.registry.feature_specs``); None: the default set.
    categories
        Code maps of the native categoricals (a bundle's ``categories``); None: fitted on these
        declarations (``features.categorical.fit_code_maps``).
    screening
        Candidate entities get only the screening aggregations (training's first pass).

    Returns
    -------
    pd.DataFrame
        One row per declaration, in input order: ``declaration_id``, ``declared_at``,
        ``enterprise_id`` and every feature of ``feature_specs(attributes, entities,
        screening)`` (float64).
    """
    with _small_pages():
        return _build_offline(tables, attributes, progress, entities, categories, screening)


@dataclass
class Carried:
    """What the partitioned build (``features.partitioned``) hands :func:`build_offline` for one
    partition: the year before it, coded, and the totals of everything older.

    Attributes
    ----------
    events
        The entity step's events (``features.partitioned.CodedEvents``): the declarations of the
        months before the partition that its bounded windows reach, then the partition's own
        rows (the queries, in the order of ``tables["declarations"]``), and the results that
        fall inside that span, all as integer key codes local to this frame.
    history
        All-history totals of everything older than the context, indexed by the same local
        codes.
    unit_value_features
        ``hs6_uv_log_ratio_month`` and ``hs6_uv_z_month`` of the partition's rows (computed by
        the client from every earlier declaration's unit value).
    """

    events: Any
    history: History
    unit_value_features: tuple[np.ndarray, np.ndarray]


def build_partition(
    tables: dict[str, pd.DataFrame],
    carried: Carried,
    attributes: dict[str, str] | None = None,
    *,
    entities: EntitySet = None,
    categories: dict[str, list[str]] | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Point-in-time features of one time partition's declarations, given what came before.

    ``tables["declarations"]`` holds the partition (the query rows of ``carried.events``, in
    the same order); the other tables the signals and ratings the partition's windows can see
    (and may hold more; results come coded in ``carried.events``). The features equal
    :func:`build_offline`'s rows for these declarations on the whole history.

    Returns
    -------
    pd.DataFrame
        The features, as :func:`build_offline` returns them.
    """
    with _small_pages():
        return _build_offline(
            tables, attributes, progress, entities, categories, False, carried=carried
        )


@contextmanager
def _small_pages() -> Iterator[None]:
    """Turn off numpy's transparent-huge-page advice while the build runs (restored after).

    The build allocates many large short-lived arrays; with ``madvise`` hugepages the kernel may
    compact memory on every first touch. Measured on the 2-core box (THP ``defrag=madvise``):
    allocating the 1M x 196 output took 4-9 s with the advice and 2 s without.
    """
    from numpy._core import multiarray

    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    previous = setter(False) if setter is not None else None
    try:
        yield
    finally:
        if setter is not None:
            setter(previous)


def _build_offline(
    tables: dict[str, pd.DataFrame],
    attributes: dict[str, str] | None,
    progress: Progress | None,
    entities: EntitySet,
    categories: dict[str, list[str]] | None,
    screening: bool,
    carried: Carried | None = None,
) -> Any:
    specs = feature_specs(attributes, entities, screening)
    p = Prepared(tables, attributes, entities, screening, categories)
    feats = _Columns([s.name for s in specs], p.n)
    events = p if carried is None else carried.events

    known = None if carried is None else carried.unit_value_features

    def entity_step() -> None:
        if carried is None:
            _entity_features(p, feats, progress)
        else:
            _entity_features(events, feats, progress, carried.history, n_query=p.n)

    steps: list[tuple[str, Callable[[], Any]]] = [
        ("declaration", lambda: _declaration_features(p, feats)),
        ("categorical", lambda: _categorical_features(p, feats)),
        ("value", lambda: _value_features(p, feats, known)),
        ("credit", lambda: _credit_features(p, feats)),
        ("entities", entity_step),
        ("signals", lambda: _signal_features(p, feats)),
        ("extra", lambda: _extra_numeric(p, feats)),
        ("ratios", lambda: _ratio_features(feats)),
    ]
    for step, fn in steps:
        if progress:
            progress(step)
        fn()
    missing = [name for name, done in zip(feats.names, feats.written, strict=True) if not done]
    assert not missing, f"features not computed: {missing[:5]}"
    ids = pd.DataFrame({c: p.decl[c].reset_index(drop=True) for c in ID_COLUMNS})
    # One float64 block, transposed view: pandas takes it without a copy or consolidation.
    values = pd.DataFrame(feats.matrix.T, columns=feats.names, copy=False)
    frame = pd.concat([ids, values], axis=1)
    return frame


def build_labels(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per declaration (input order): whether and how it was inspected.

    Returns
    -------
    pd.DataFrame
        ``declaration_id``, ``inspected`` (bool), ``nonconforming`` (1.0/0.0, NaN when not
        inspected), ``selection``, ``severity``, ``hazard_type``, ``inspected_at``.
    """
    decl = tables["declarations"].reset_index(drop=True)
    insp = final_inspections(_table(tables, "inspections"))
    cols = ["selection", "severity", "hazard_type", "inspected_at"]
    right = insp[["declaration_id", "result", *[c for c in cols if c in insp]]]
    merged = decl[["declaration_id"]].merge(right, on="declaration_id", how="left", validate="1:1")
    inspected = merged["result"].notna().to_numpy(dtype=bool)
    nc = np.where(inspected, (merged["result"] == "nonconforming").fillna(False), np.nan)
    out = pd.DataFrame(
        {
            "declaration_id": merged["declaration_id"],
            "inspected": inspected,
            "nonconforming": nc.astype(np.float64),
        }
    )
    for c in cols:
        if c in merged:
            out[c] = merged[c]
        else:
            out[c] = pd.Series(pd.NA, index=out.index, dtype="str")
    if "inspected_at" in out:
        out["inspected_at"] = pd.to_datetime(out["inspected_at"], utc=True)
    return out


def progress_steps(attributes: dict[str, str] | None = None, entities: EntitySet = None) -> int:
    """How many times :func:`build_offline` calls its ``progress`` callback."""
    return 8 + len(entity_aggregations(attributes, entities))
