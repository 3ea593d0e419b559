"""One incoming declaration joined with a snapshot: the feature row, in microseconds.

Plain Python with ``bisect`` on short lists: for one row that beats numpy's per-call overhead.
The arithmetic mirrors ``features.build`` operation for operation, so counts are identical and
rates agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from features.contract import SIGNAL_CHANNELS, SIGNAL_SEVERITIES
from features.entities import KEY_SEP, row_fields, row_key
from features.registry import (
    CALENDAR_TZ,
    CREDIT_TIER_CODES,
    DAY_NS,
    MIN_UNIT_VALUE_COUNT,
    PRIOR_STRENGTH,
    RATE_WINDOWS,
    SIGNAL_ALL_WINDOWS,
    SIGNAL_CHANNEL_WINDOWS,
    SIGNAL_ROUTE_WINDOWS,
    SIGNAL_ROUTES,
    SIGNAL_SEVERITY_WINDOWS,
    VOCABULARIES,
    WINDOWS,
    feature_specs,
)
from features.snapshot import (
    EMPTY_STATE,
    GLOBAL,
    GRACE_NS,
    Snapshot,
    _ns_of,
    declaration_usd,
)

NAN = math.nan
_RATE_ORDER = ("ent", "dcl", "osp", "hs2", "hs4", "hs6", "org", "port")
_WIN_NS = {w: (None if d is None else d * DAY_NS) for w, d in WINDOWS.items()}
_CODES = {k: {v: float(i) for i, v in enumerate(vocab)} for k, vocab in VOCABULARIES.items()}
_ROUTE_OF_FIELD = {c: r for r, (c, _, _) in SIGNAL_ROUTES.items()}
_TZ = ZoneInfo(CALENDAR_TZ)
_W30, _W90, _W365 = 30 * DAY_NS, 90 * DAY_NS, 365 * DAY_NS


def _flag(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, str):
        return 1.0 if value.strip().lower() in ("true", "1", "yes", "t", "y") else 0.0
    try:
        if value != value:  # NaN
            return 0.0
    except TypeError:
        pass
    return float(bool(value))


def _num(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


class OnlineFeatures:
    """Assemble the feature row of one declaration from a snapshot.

    Parameters
    ----------
    snapshot
        A :class:`features.snapshot.Snapshot` (shared; updates to it show in the next call).
    feature_names
        Output order (normally the list stored in the model bundle).
    rates
        Optional ``features.rates.RateTable`` for declarations without ``declared_value_usd``.
    """

    def __init__(self, snapshot: Snapshot, feature_names: Sequence[str], rates: Any = None) -> None:
        self.snapshot = snapshot
        self.feature_names = list(feature_names)
        known = {s.name for s in feature_specs(snapshot.attributes)}
        unknown = [n for n in self.feature_names if n not in known]
        if unknown:
            raise KeyError(f"features not produced by this snapshot: {unknown[:5]}")
        self.rates = rates
        aggs = snapshot.entity_aggs
        self._order = [e for e in _RATE_ORDER if e in aggs] + [
            e for e in aggs if e not in _RATE_ORDER
        ]
        # Per entity: the windows each kind needs, resolved once.
        self._plans = []
        for name in self._order:
            a = aggs[name]
            ent = snapshot.entity_defs[name]
            need = set(RATE_WINDOWS)
            for k in ("insp_cnt", "nc_cnt", "ncmaj_cnt", "rand_share"):
                need.update(a.get(k, ()))
            self._plans.append(
                (
                    name,
                    ent,
                    ent.parents or (GLOBAL,),
                    tuple((w, _WIN_NS[w]) for w in a.get("decl_cnt", ())),
                    tuple((w, _WIN_NS[w]) for w in sorted(need)),
                    a.get("insp_cnt", ()),
                    a.get("nc_cnt", ()),
                    a.get("ncmaj_cnt", ()),
                    a.get("nc_rate_eb", ()),
                    a.get("rand_share", ()),
                    "days_since_nc" in a,
                    "days_since_first" in a,
                    name in ("ent", "ent_x_hs4", "ent_x_org"),
                )
            )
        self._numeric = [n for n, k in sorted(snapshot.attributes.items()) if k == "numeric"]

    def features(self, declaration: Mapping[str, Any]) -> dict[str, float]:
        """Every feature of one declaration, by name."""
        snap = self.snapshot
        t = _ns_of(declaration["declared_at"])
        if t < snap.as_of_ns - GRACE_NS:
            raise ValueError(
                f"declared_at is more than the grace period before the snapshot ({snap.as_of})"
            )
        f: dict[str, float] = {}
        d = declaration
        f["decl_direction_code_now"] = _CODES["direction"].get(d.get("direction"), NAN)
        f["decl_trade_mode_code_now"] = _CODES["trade_mode"].get(d.get("trade_mode"), NAN)
        f["decl_transport_mode_code_now"] = _CODES["transport_mode"].get(
            d.get("transport_mode"), NAN
        )
        f["decl_legal_inspection_flag_now"] = _flag(d.get("legal_inspection"))
        f["decl_third_party_cert_flag_now"] = _flag(d.get("third_party_certificate"))
        local = datetime.fromtimestamp(t // 1_000_000_000, tz=_TZ)
        f["decl_month_now"] = float(local.month)
        f["decl_weekday_now"] = float(local.weekday())
        f["decl_hour_now"] = float(local.hour)

        usd = declaration_usd(d, self.rates)
        kg = _num(d.get("net_weight_kg"))
        f["decl_log_value_now"] = float(np.log1p(usd)) if usd >= 0 else NAN
        f["decl_log_weight_now"] = float(np.log1p(kg)) if kg >= 0 else NAN
        luv = float(np.log(usd / kg)) if usd > 0 and kg > 0 else NAN
        f["decl_log_unit_value_now"] = luv
        fields = row_fields(d, snap.attributes)
        hs6 = fields["hs6"]
        f["hs6_uv_log_ratio_month"] = NAN
        f["hs6_uv_z_month"] = NAN
        if hs6 is not None and luv == luv:
            month = _month_start(t)
            med, mean, std, k = snap.unit_value_stats(hs6, month)
            if k >= MIN_UNIT_VALUE_COUNT:
                f["hs6_uv_log_ratio_month"] = luv - med
                if std > 0:
                    f["hs6_uv_z_month"] = (luv - mean) / std

        ent_id = fields["enterprise_id"]
        tier = CREDIT_TIER_CODES["regular"]
        hist = snap.credit.get(ent_id) if ent_id is not None else None
        if hist is not None:
            from bisect import bisect_right

            i = bisect_right(hist[0], t)
            if i:
                tier = hist[1][i - 1]
        f["ent_credit_tier_at"] = tier
        info = snap.enterprises.get(ent_id) if ent_id is not None else None
        f["ent_type_code_static"] = info[0] if info is not None else NAN
        f["ent_age_days_at"] = (
            float(t - info[1]) / DAY_NS if info is not None and info[1] is not None else NAN
        )

        self._entity_features(t, fields, f)
        self._signal_features(t, fields, d, f)
        for name in self._numeric:
            f[f"attr_{name}_value_now"] = _num(d.get(name))
        return f

    def vector(self, declaration: Mapping[str, Any]) -> np.ndarray:
        """The feature row (float64, 1-D) in ``feature_names`` order."""
        f = self.features(declaration)
        return np.array([f[n] for n in self.feature_names], dtype=np.float64)

    def _entity_features(self, t: int, fields: dict[str, str | None], f: dict[str, float]) -> None:
        ents = self.snapshot.entities
        rates: dict[tuple[str, str], float] = {}
        g = ents[GLOBAL].get("") or EMPTY_STATE
        for w in RATE_WINDOWS:
            wn = _WIN_NS[w]
            start = None if wn is None else t - wn
            n = g.insp.count(t, start)
            rates[(GLOBAL, w)] = g.nc.count(t, start) / n if n else NAN
        for (
            name,
            ent,
            parents,
            decl_w,
            insp_w,
            insp_cnt,
            nc_cnt,
            ncmaj_cnt,
            rate_w,
            rand_w,
            want_nc_days,
            want_first,
            novelty,
        ) in self._plans:
            key = row_key(fields, ent)
            if key is None:
                for w in RATE_WINDOWS:
                    rates[(name, w)] = NAN
                for w, _ in decl_w:
                    f[f"{name}_decl_cnt_{w}"] = NAN
                for agg, ws in (
                    ("insp_cnt", insp_cnt),
                    ("nc_cnt", nc_cnt),
                    ("ncmaj_cnt", ncmaj_cnt),
                    ("nc_rate_eb", rate_w),
                    ("rand_share", rand_w),
                ):
                    for w in ws:
                        f[f"{name}_{agg}_{w}"] = NAN
                if want_nc_days:
                    f[f"{name}_days_since_nc_all"] = NAN
                if want_first:
                    f[f"{name}_days_since_first_all"] = NAN
                if novelty:
                    f[f"{name}_is_new_all"] = NAN
                continue
            st = ents[name].get(key) or EMPTY_STATE
            decl = st.decl
            seen = decl.count(t, None) > 0
            for w, wn in decl_w:
                f[f"{name}_decl_cnt_{w}"] = float(decl.count(t, None if wn is None else t - wn))
            if novelty:
                f[f"{name}_is_new_all"] = 0.0 if seen else 1.0
            if want_first:
                f[f"{name}_days_since_first_all"] = (
                    float(t - st.first) / DAY_NS if seen and st.first is not None else NAN
                )
            counts: dict[str, tuple[int, int, int, int]] = {}
            for w, wn in insp_w:
                start = None if wn is None else t - wn
                counts[w] = (
                    st.insp.count(t, start),
                    st.nc.count(t, start),
                    st.ncmaj.count(t, start),
                    st.rand.count(t, start),
                )
            for w in insp_cnt:
                f[f"{name}_insp_cnt_{w}"] = float(counts[w][0])
            for w in nc_cnt:
                f[f"{name}_nc_cnt_{w}"] = float(counts[w][1])
            for w in ncmaj_cnt:
                f[f"{name}_ncmaj_cnt_{w}"] = float(counts[w][2])
            for w in rand_w:
                n = counts[w][0]
                f[f"{name}_rand_share_{w}"] = counts[w][3] / n if n else NAN
            for w in RATE_WINDOWS:
                prior = rates[(parents[0], w)]
                if len(parents) > 1:
                    for q in parents[1:]:
                        prior = prior + rates[(q, w)]
                    prior = prior / len(parents)
                n, nc = counts[w][0], counts[w][1]
                rates[(name, w)] = (nc + PRIOR_STRENGTH * prior) / (n + PRIOR_STRENGTH)
            for w in rate_w:
                f[f"{name}_nc_rate_eb_{w}"] = rates[(name, w)]
            if want_nc_days:
                last = st.nc.last(t)
                f[f"{name}_days_since_nc_all"] = NAN if last is None else float(t - last) / DAY_NS

    def _signal_features(
        self, t: int, fields: dict[str, str | None], d: Mapping[str, Any], f: dict[str, float]
    ) -> None:
        from bisect import bisect_left

        snap = self.snapshot
        acc: dict[str, float] = {}
        for w in SIGNAL_ALL_WINDOWS:
            acc[f"sig_all_cnt_{w}"] = 0.0
        for route, ws in SIGNAL_ROUTE_WINDOWS.items():
            for w in ws:
                acc[f"sig_{route}_cnt_{w}"] = 0.0
        for c in SIGNAL_CHANNELS:
            for w in SIGNAL_CHANNEL_WINDOWS:
                acc[f"sig_{c}_cnt_{w}"] = 0.0
        for s in SIGNAL_SEVERITIES:
            for w in SIGNAL_SEVERITY_WINDOWS:
                acc[f"sig_sev_{s}_cnt_{w}"] = 0.0
        hs = str(d.get("hs_code") or "")
        for (pfields, hs_len), by_key in zip(snap.patterns, snap.signals, strict=True):
            parts = [fields.get(x) for x in pfields]
            if hs_len:
                parts.append(hs[:hs_len] if len(hs) >= hs_len else None)
            if any(p is None for p in parts):
                continue
            entry = by_key.get(KEY_SEP.join(parts))  # type: ignore[arg-type]
            if entry is None:
                continue
            times, chs, sevs = entry
            hi = bisect_left(times, t)
            lo365 = bisect_left(times, t - _W365, 0, hi)
            lo90 = bisect_left(times, t - _W90, lo365, hi)
            lo30 = bisect_left(times, t - _W30, lo90, hi)
            cnt = {"30d": hi - lo30, "90d": hi - lo90, "365d": hi - lo365}
            routes = [_ROUTE_OF_FIELD[x] for x in pfields] + (["hs"] if hs_len else [])
            for w in SIGNAL_ALL_WINDOWS:
                acc[f"sig_all_cnt_{w}"] += cnt[w]
            for r in routes:
                for w in SIGNAL_ROUTE_WINDOWS[r]:
                    acc[f"sig_{r}_cnt_{w}"] += cnt[w]
            for j in range(lo365, hi):
                c = chs[j]
                if c >= 0:
                    acc[f"sig_{SIGNAL_CHANNELS[c]}_cnt_365d"] += 1
                s = sevs[j]
                if s >= 0:
                    name = SIGNAL_SEVERITIES[s]
                    acc[f"sig_sev_{name}_cnt_365d"] += 1
                    if j >= lo90:
                        acc[f"sig_sev_{name}_cnt_90d"] += 1
        f.update(acc)


def _month_start(t: int) -> int:
    return int(
        np.int64(t)
        .astype("datetime64[ns]")
        .astype("datetime64[M]")
        .astype("datetime64[ns]")
        .astype(np.int64)
    )
