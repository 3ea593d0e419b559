"""One incoming declaration joined with a snapshot: the feature row, in microseconds.

Plain Python with ``bisect`` on short lists: for one row that beats numpy's per-call overhead.
The arithmetic mirrors ``features.build`` operation for operation, so counts are identical and
rates agree to rounding.

Speed: every output position is resolved once in ``__init__`` (per entity a small "plan" of slot
indices and windows), so a call writes floats into a preallocated list by index, never builds a
feature name or a per-call dict; windows of one series share one ``bisect`` for their upper end.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from features.build import BEHAVIOUR_SUMS, dq_issue_count_of, ratio_or_nan
from features.contract import DQ_ISSUE_COUNT, SIGNAL_CHANNELS, SIGNAL_SEVERITIES
from features.entities import KEY_SEP, row_fields
from features.registry import (
    BEHAVIOUR_RATIOS,
    CALENDAR_TZ,
    CREDIT_TIER_CODES,
    DAY_NS,
    PRIOR_STRENGTH,
    RATE_WINDOWS,
    RATIO_FEATURES,
    SIGNAL_ALL_WINDOWS,
    SIGNAL_CHANNEL_WINDOWS,
    SIGNAL_ROUTE_WINDOWS,
    SIGNAL_ROUTES,
    SIGNAL_SEVERITY_WINDOWS,
    VOCABULARIES,
    WINDOWS,
    categorical_keys,
    computation_order,
    entity_definition,
    feature_specs,
)
from features.snapshot import Snapshot, declaration_usd
from features.snapshot_state import (
    EMPTY_STATE,
    GLOBAL,
    GRACE_NS,
    NO_BEHAVIOUR,
    _ns_of,
    flag_of,
)

NAN = math.nan
_WIN_NS = {w: (None if d is None else d * DAY_NS) for w, d in WINDOWS.items()}
# Keyed by str | None: a missing field looks up None and gets the NaN default.
_CODES: dict[str, dict[str | None, float]] = {
    k: {v: float(i) for i, v in enumerate(vocab)} for k, vocab in VOCABULARIES.items()
}
_ROUTE_OF_FIELD = {c: r for r, (c, _, _) in SIGNAL_ROUTES.items()}
_TZ = ZoneInfo(CALENDAR_TZ)
_REGULAR = CREDIT_TIER_CODES["regular"]
_KINDS = ("insp", "nc", "ncmaj", "rand")
# Signal windows, longest first (their lower bounds then only move forward).
_SIG_WINDOWS = ("365d", "90d", "30d")


def _num(value: Any) -> float:
    if value is None:
        return NAN
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


def _window_order(windows: set[str]) -> tuple[str, ...]:
    """All history first, then finite windows from the longest (lower bounds move forward)."""
    return tuple(sorted(windows, key=lambda w: -(_WIN_NS[w] or 1 << 62)))


def _counts(series: Any, t: int, wins: tuple[int | None, ...], out: list[int]) -> None:
    """Append the events of ``series`` in ``[t - w, t)`` for each window (None: all before t).

    ``wins`` is ordered as :func:`_window_order` makes it, so window starts never move back.
    """
    times = series.times
    # Online queries come after the snapshot's events: the upper end is usually the list's end.
    hi = len(times) if not times or times[-1] < t else bisect_left(times, t)
    lo = 0
    for w in wins:
        if w is None:
            out.append(series.n_before + hi)
        else:
            lo = bisect_left(times, t - w, lo, hi)
            out.append(hi - lo)


class _EntityPlan:
    """Slot indices and windows of one entity, resolved once."""

    __slots__ = (
        "name",
        "fields",
        "parents",
        "decl_w",
        "decl_slots",
        "kinds",
        "cnt_slots",
        "rand_slots",
        "rate_in",
        "rate_slots",
        "nc_days_slot",
        "first_slot",
        "new_slot",
        "behaviour_slots",
    )

    name: str
    fields: tuple[str, ...]
    parents: tuple[str, ...]
    decl_w: tuple[int | None, ...]
    decl_slots: tuple[int, ...]
    kinds: tuple[tuple[str, tuple[int | None, ...]], ...]
    cnt_slots: tuple[tuple[int, int], ...]
    rand_slots: tuple[tuple[int, int, int], ...]
    rate_in: tuple[tuple[int, int], ...]
    rate_slots: tuple[int, ...]
    nc_days_slot: int
    first_slot: int
    new_slot: int
    behaviour_slots: tuple[tuple[int, int, int], ...]


# Behaviour sums as read per call: the earlier declarations, then ``BEHAVIOUR_SUMS``.
_BEHAVIOUR_INDEX = {name: i for i, name in enumerate(("decl", *BEHAVIOUR_SUMS))}


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
    categories
        Code maps of the native categorical features (the bundle's ``categories``); needed when
        ``feature_names`` has any.

    Only the entities the requested features need (and their smoothing parents) are computed.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        feature_names: Sequence[str],
        rates: Any = None,
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.feature_names = list(feature_names)
        specs = feature_specs(snapshot.attributes, snapshot.entity_names)
        all_names = [s.name for s in specs]
        pos = {n: i for i, n in enumerate(all_names)}
        unknown = [n for n in self.feature_names if n not in pos]
        if unknown:
            raise KeyError(
                f"features not produced by this snapshot: {unknown[:5]} (rebuild it with "
                "`guomen snapshot` for the model's history keys)"
            )
        cat_keys = categorical_keys(snapshot.attributes)
        wanted_cats = [n for n in self.feature_names if n in cat_keys]
        lacking = [n for n in wanted_cats if n not in (categories or {})]
        if lacking:
            raise ValueError(f"{lacking[:3]} need the model bundle's category code maps")
        self._categorical: list[tuple[int, str, dict[str | None, float]]] = [
            (
                pos[n],
                cat_keys[n].field,
                {str(v): float(i) for i, v in enumerate((categories or {}).get(n, ()))},
            )
            for n in wanted_cats
        ]
        self.rates = rates
        self._all_names = all_names
        self._pos = pos
        self._take = np.array([pos[n] for n in self.feature_names], dtype=np.intp)
        self._identity = self.feature_names == all_names
        aggs = snapshot.entity_aggs
        by_name = {sp.name: sp for sp in specs}
        needed: set[str] = set()

        def need(entity: str) -> None:
            if entity in aggs and entity not in needed:
                needed.add(entity)
                for parent in entity_definition(entity, snapshot.attributes).parents:
                    need(parent)

        for n in self.feature_names:
            need(by_name[n].entity)
        for name, (num, den) in RATIO_FEATURES.items():
            if name in self.feature_names:
                need(by_name[num].entity)
                need(by_name[den].entity)
        self._order = list(
            computation_order(tuple(e for e in aggs if e in needed), snapshot.attributes)
        )
        self._plans = [self._entity_plan(name, aggs[name]) for name in self._order]
        self._numeric = [
            (n, pos[f"attr_{n}_value_now"])
            for n, k in sorted(snapshot.attributes.items())
            if k == "numeric"
        ]
        # Signal counts default to 0, everything else to NaN.
        self._template = [NAN] * len(all_names)
        self._sig_window_slots = {
            w: [pos[f"sig_all_cnt_{w}"]] if w in SIGNAL_ALL_WINDOWS else [] for w in _SIG_WINDOWS
        }
        self._sig_route_slots = {
            r: {w: pos[f"sig_{r}_cnt_{w}"] for w in ws} for r, ws in SIGNAL_ROUTE_WINDOWS.items()
        }
        self._sig_channel_slots = [
            [(w, pos[f"sig_{c}_cnt_{w}"]) for w in SIGNAL_CHANNEL_WINDOWS] for c in SIGNAL_CHANNELS
        ]
        self._sig_sev_slots = [
            [(w, pos[f"sig_sev_{s}_cnt_{w}"]) for w in SIGNAL_SEVERITY_WINDOWS]
            for s in SIGNAL_SEVERITIES
        ]
        for name in all_names:
            if name.startswith("sig_"):
                self._template[pos[name]] = 0.0
        self._ratio_slots = [
            (pos[name], pos[num], pos[den])
            for name, (num, den) in RATIO_FEATURES.items()
            if name in pos
        ]
        self._sig_plans: list[tuple[tuple[str, ...], int, list[tuple[int, int]]]] = []
        s = pos.__getitem__
        self._decl_slots = (
            s("decl_direction_code_now"),
            s("decl_trade_mode_code_now"),
            s("decl_transport_mode_code_now"),
            s("decl_legal_inspection_flag_now"),
            s("decl_third_party_cert_flag_now"),
            s("decl_month_now"),
            s("decl_weekday_now"),
            s("decl_hour_now"),
            s("decl_log_value_now"),
            s("decl_log_weight_now"),
            s("decl_log_unit_value_now"),
            s("hs6_uv_log_ratio_month"),
            s("hs6_uv_z_month"),
            s("ent_credit_tier_at"),
            s("ent_type_code_static"),
            s("ent_age_days_at"),
        )
        self._dq_slot = s("decl_dq_issue_cnt_now")

    def _entity_plan(self, name: str, a: dict[str, tuple[str, ...]]) -> _EntityPlan:
        pos = self._pos
        ent = self.snapshot.entity_defs[name]
        p = _EntityPlan()
        p.name = name
        p.fields = ent.fields
        p.parents = ent.parents or (GLOBAL,)
        dw = _window_order(set(a.get("decl_cnt", ())))
        p.decl_w = tuple(_WIN_NS[w] for w in dw)
        p.decl_slots = tuple(pos[f"{name}_decl_cnt_{w}"] for w in dw)
        need: dict[str, set[str]] = {
            "insp": set(RATE_WINDOWS) | set(a.get("insp_cnt", ())),
            "nc": set(RATE_WINDOWS) | set(a.get("nc_cnt", ())),
            "ncmaj": set(a.get("ncmaj_cnt", ())),
            "rand": set(a.get("rand_share", ())),
        }
        need["insp"] |= need["rand"]
        # Flat index of every (kind, window) count computed per call.
        flat: dict[tuple[str, str], int] = {}
        kinds = []
        for k in _KINDS:
            ws = _window_order(need[k])
            if not ws:
                continue
            for w in ws:
                flat[(k, w)] = len(flat)
            kinds.append((k, tuple(_WIN_NS[w] for w in ws)))
        p.kinds = tuple(kinds)
        cnt = []
        for agg, k in (("insp_cnt", "insp"), ("nc_cnt", "nc"), ("ncmaj_cnt", "ncmaj")):
            for w in a.get(agg, ()):
                cnt.append((pos[f"{name}_{agg}_{w}"], flat[(k, w)]))
        p.cnt_slots = tuple(cnt)
        p.rand_slots = tuple(
            (pos[f"{name}_rand_share_{w}"], flat[("rand", w)], flat[("insp", w)])
            for w in a.get("rand_share", ())
        )
        p.rate_in = tuple((flat[("nc", w)], flat[("insp", w)]) for w in RATE_WINDOWS)
        p.rate_slots = tuple(
            pos[f"{name}_nc_rate_eb_{w}"] if w in a.get("nc_rate_eb", ()) else -1
            for w in RATE_WINDOWS
        )
        p.nc_days_slot = pos[f"{name}_days_since_nc_all"] if "days_since_nc" in a else -1
        p.first_slot = pos[f"{name}_days_since_first_all"] if "days_since_first" in a else -1
        p.new_slot = pos[f"{name}_is_new_all"] if name in ("ent", "ent_x_hs4", "ent_x_org") else -1
        p.behaviour_slots = tuple(
            (pos[f"{name}_{agg}_all"], _BEHAVIOUR_INDEX[num], _BEHAVIOUR_INDEX[den])
            for agg, (num, den) in BEHAVIOUR_RATIOS.items()
            if agg in a
        )
        return p

    # ------------------------------------------------------------------ public API
    def features(self, declaration: Mapping[str, Any]) -> dict[str, float]:
        """The requested features of one declaration, by name."""
        return dict(zip(self.feature_names, self.vector(declaration).tolist(), strict=True))

    def vector(self, declaration: Mapping[str, Any]) -> np.ndarray:
        """The feature row (float64, 1-D) in ``feature_names`` order."""
        out = np.array(self._values(declaration), dtype=np.float64)
        return out if self._identity else out[self._take]

    # ------------------------------------------------------------------ assembly
    def _values(self, d: Mapping[str, Any]) -> list[float]:
        snap = self.snapshot
        t = _ns_of(d["declared_at"])
        if t < snap.as_of_ns - GRACE_NS:
            raise ValueError(
                f"declared_at is more than the grace period before the snapshot ({snap.as_of})"
            )
        v = self._template.copy()
        (
            s_dir,
            s_tm,
            s_tr,
            s_legal,
            s_cert,
            s_month,
            s_wday,
            s_hour,
            s_lv,
            s_lw,
            s_luv,
            s_uvr,
            s_uvz,
            s_tier,
            s_etype,
            s_age,
        ) = self._decl_slots
        v[s_dir] = _CODES["direction"].get(d.get("direction"), NAN)
        v[s_tm] = _CODES["trade_mode"].get(d.get("trade_mode"), NAN)
        v[s_tr] = _CODES["transport_mode"].get(d.get("transport_mode"), NAN)
        v[s_legal] = flag_of(d.get("legal_inspection"))
        v[s_cert] = flag_of(d.get("third_party_certificate"))
        v[self._dq_slot] = dq_issue_count_of(d.get(DQ_ISSUE_COUNT))
        secs = t // 1_000_000_000
        local = datetime.fromtimestamp(secs, tz=_TZ)
        v[s_month] = float(local.month)
        v[s_wday] = float(local.weekday())
        v[s_hour] = float(local.hour)

        usd = declaration_usd(d, self.rates)
        kg = _num(d.get("net_weight_kg"))
        v[s_lv] = math.log1p(usd) if usd >= 0 else NAN
        v[s_lw] = math.log1p(kg) if kg >= 0 else NAN
        luv = math.log(usd / kg) if usd > 0 and kg > 0 else NAN
        v[s_luv] = luv
        fields = row_fields(d, snap.attributes)
        v[s_uvr], v[s_uvz] = snap.unit_value_features(fields["hs6"], t, luv)

        ent_id = fields["enterprise_id"]
        tier = _REGULAR
        hist = snap.credit.get(ent_id) if ent_id is not None else None
        if hist is not None:
            i = bisect_right(hist[0], t)
            if i:
                tier = hist[1][i - 1]
        v[s_tier] = tier
        info = snap.enterprises.get(ent_id) if ent_id is not None else None
        if info is not None:
            v[s_etype] = info[0]
            if info[1] is not None:
                v[s_age] = float(t - info[1]) / DAY_NS

        for slot, field, codes in self._categorical:
            v[slot] = codes.get(fields.get(field), NAN)
        self._entity_features(t, fields, v)
        self._signal_features(t, fields, d, v)
        for name, slot in self._numeric:
            v[slot] = _num(d.get(name))
        for slot, num, den in self._ratio_slots:
            v[slot] = ratio_or_nan(v[num], v[den])
        return v

    def _entity_features(self, t: int, fields: dict[str, str | None], v: list[float]) -> None:
        ents = self.snapshot.entities
        m = PRIOR_STRENGTH
        g = ents[GLOBAL].get("") or EMPTY_STATE
        rates: dict[str, tuple[float, ...]] = {}
        grates = []
        for w in RATE_WINDOWS:
            wn = _WIN_NS[w]
            start = None if wn is None else t - wn
            n = g.insp.count(t, start)
            grates.append(g.nc.count(t, start) / n if n else NAN)
        rates[GLOBAL] = tuple(grates)
        nan_rates = (NAN,) * len(RATE_WINDOWS)
        for p in self._plans:
            fs = p.fields
            if len(fs) == 1:
                key = fields.get(fs[0])
            else:
                parts = [fields.get(f) for f in fs]
                key = None if None in parts else KEY_SEP.join(parts)  # type: ignore[arg-type]
            if key is None:
                # Unknown entity: every output stays NaN (the template), children see a NaN prior.
                rates[p.name] = nan_rates
                continue
            st = ents[p.name].get(key) or EMPTY_STATE
            decl = st.decl
            dtimes = decl.times
            hi = len(dtimes) if not dtimes or dtimes[-1] < t else bisect_left(dtimes, t)
            seen = decl.n_before + hi > 0
            lo = 0
            for slot, wn in zip(p.decl_slots, p.decl_w, strict=True):
                if wn is None:
                    v[slot] = float(decl.n_before + hi)
                else:
                    lo = bisect_left(dtimes, t - wn, lo, hi)
                    v[slot] = float(hi - lo)
            if p.new_slot >= 0:
                v[p.new_slot] = 0.0 if seen else 1.0
            if p.first_slot >= 0 and seen and st.first is not None:
                v[p.first_slot] = float(t - st.first) / DAY_NS
            if p.behaviour_slots:
                b = self.snapshot.behaviour[p.name].get(key) or NO_BEHAVIOUR
                sums = [float(decl.n_before + hi), *b.sums(t)]
                for slot, num, den in p.behaviour_slots:
                    v[slot] = ratio_or_nan(sums[num], sums[den])
            c: list[int] = []
            for k, wins in p.kinds:
                _counts(getattr(st, k), t, wins, c)
            for slot, i in p.cnt_slots:
                v[slot] = float(c[i])
            for slot, ir, ii in p.rand_slots:
                n = c[ii]
                v[slot] = c[ir] / n if n else NAN
            pr = [rates[q] for q in p.parents]
            out = []
            for j, (inc, ins) in enumerate(p.rate_in):
                prior = pr[0][j]
                if len(pr) > 1:
                    for q in pr[1:]:
                        prior = prior + q[j]
                    prior = prior / len(pr)
                r = (c[inc] + m * prior) / (c[ins] + m)
                out.append(r)
                if p.rate_slots[j] >= 0:
                    v[p.rate_slots[j]] = r
            rates[p.name] = tuple(out)
            if p.nc_days_slot >= 0:
                last = st.nc.last(t)
                if last is not None:
                    v[p.nc_days_slot] = float(t - last) / DAY_NS

    def _signal_plans(self) -> list[tuple[tuple[str, ...], int, dict[str, list[int]]]]:
        """Per snapshot pattern: fields, HS prefix length, and the window slots it adds to."""
        snap = self.snapshot
        while len(self._sig_plans) < len(snap.patterns):
            pfields, hs_len = snap.patterns[len(self._sig_plans)]
            routes = [_ROUTE_OF_FIELD[x] for x in pfields] + (["hs"] if hs_len else [])
            slots = {w: list(self._sig_window_slots[w]) for w in _SIG_WINDOWS}
            for r in routes:
                for w, slot in self._sig_route_slots[r].items():
                    slots[w].append(slot)
            self._sig_plans.append((tuple(pfields), int(hs_len), slots))  # type: ignore[arg-type]
        return self._sig_plans  # type: ignore[return-value]

    def _signal_features(
        self, t: int, fields: dict[str, str | None], d: Mapping[str, Any], v: list[float]
    ) -> None:
        snap = self.snapshot
        hs = str(d.get("hs_code") or "")
        w365, w90, w30 = _WIN_NS["365d"], _WIN_NS["90d"], _WIN_NS["30d"]
        # Bounded windows: only "all" maps to None.
        assert w365 is not None and w90 is not None and w30 is not None
        for (pfields, hs_len, slots), by_key, cums in zip(
            self._signal_plans(), snap.signals, snap.signal_cums, strict=True
        ):
            if not by_key:
                continue
            parts = [fields.get(x) for x in pfields]
            if hs_len:
                parts.append(hs[:hs_len] if len(hs) >= hs_len else None)
            if None in parts:
                continue
            key = KEY_SEP.join(parts)  # type: ignore[arg-type]
            entry = by_key.get(key)
            if entry is None:
                continue
            times = entry[0]
            hi = len(times) if times[-1] < t else bisect_left(times, t)
            lo365 = bisect_left(times, t - w365, 0, hi)
            lo90 = bisect_left(times, t - w90, lo365, hi)
            lo30 = bisect_left(times, t - w30, lo90, hi)
            if hi == lo365:
                continue
            lows = {"365d": lo365, "90d": lo90, "30d": lo30}
            for w, ss in slots.items():
                n = hi - lows[w]
                for slot in ss:
                    v[slot] += n
            ch_cum, sev_cum = snap.signal_cum(cums, key, entry)
            for cum_list, slot_list in (
                (ch_cum, self._sig_channel_slots),
                (sev_cum, self._sig_sev_slots),
            ):
                for cum, ws in zip(cum_list, slot_list, strict=True):
                    top = cum[hi]
                    for w, slot in ws:
                        v[slot] += top - cum[lows[w]]
