"""Realistic demo trade in the data contract, with a hidden ground truth.

``write_demo_data`` simulates about three years of declarations at a dozen Chinese ports ending
2026-10-31 (Asia/Shanghai), the enterprises, declarants and overseas parties behind them, credit
ratings, risk signals from the nine channels and the port's inspections. The true probability of a
nonconformity of every declaration is a logistic function of hidden components (see
``docs/demo-data.md``); it is written, with the planted outbreaks, to ``out/ground_truth/``, which
no pipeline reads.

Everything is vectorised numpy: loops run over months, sectors or outbreaks, never over
declarations. Same seed, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from demo import catalog as cat
from demo import worlds as wd
from features.contract import (
    CREDIT_RATINGS,
    DIRECTIONS,
    DISPOSALS,
    ENTERPRISE_TYPES,
    HAZARD_TYPES,
    INSPECTION_SEVERITIES,
    RESULTS,
    SELECTIONS,
    SIGNAL_CHANNELS,
    SIGNAL_SEVERITIES,
    TABLES,
    TRADE_MODES,
    TRANSPORT_MODES,
)
from policy.legacy import legacy_score

TZ = "Asia/Shanghai"
TZ_OFFSET_S = 8 * 3600  # Asia/Shanghai has had no daylight saving since 1991
DAY = 86_400
END_LOCAL = np.datetime64("2026-11-01T00:00:00")  # exclusive end, local time
N_DAYS = 1096  # 2023-11-01 .. 2026-10-31
START_LOCAL = END_LOCAL - np.timedelta64(N_DAYS, "D")
START_S = int((START_LOCAL - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")) - (
    TZ_OFFSET_S
)
END_S = START_S + N_DAYS * DAY

# Target mean of p_true over all declarations; the intercept is solved for it.
TARGET_MEAN_P = 0.032
RANDOM_SHARE = 0.015
TARGETED_SHARE = 0.08
NOISE_SD = 0.35  # irreducible declaration-level log-odds noise
CHINESE_NEW_YEAR = ("2024-02-10", "2025-01-29", "2026-02-17")


# --------------------------------------------------------------------------------------------
# small vectorised helpers
# --------------------------------------------------------------------------------------------
def _categorical(rng: np.random.Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Draw one category per row from per-row probability tables ``probs[rows]``."""
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    u = rng.random(len(rows))
    return (u[:, None] > cum[rows]).sum(axis=1).astype(np.int64)


def _choice(rng: np.random.Generator, weights: dict[str, float], size: int) -> np.ndarray:
    """Draw indices into ``list(weights)`` with the given weights."""
    p = np.array(list(weights.values()), dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def _grouped_pick(
    group_of_item: np.ndarray, weight: np.ndarray, group: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Pick an item per row from its group with probability proportional to ``weight``.

    Items are sorted by group; ``u`` in [0, 1) places the row inside its group's cumulative
    weight, so a fixed ``u`` always picks the same item (used for loyal trading pairs).
    """
    order = np.argsort(group_of_item, kind="stable")
    g_sorted = group_of_item[order]
    cum = np.cumsum(weight[order])
    n_groups = int(group_of_item.max()) + 1
    first = np.searchsorted(g_sorted, np.arange(n_groups), side="left")
    last = np.searchsorted(g_sorted, np.arange(n_groups), side="right")
    base = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0.0)
    total = cum[np.maximum(last - 1, 0)] - base
    target = base[group] + u * total[group]
    pos = np.searchsorted(cum, target, side="right")
    pos = np.clip(pos, first[group], last[group] - 1)
    return order[pos]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as fixed-width zero-padded ASCII digits, shape (n, width)."""
    v = values.astype(np.int64).copy()
    out = np.empty((len(v), width), dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        out[:, k] = 48 + (v % 10)
        v //= 10
    return out


def _ascii_column(parts: list[np.ndarray]) -> pa.Array:
    """Concatenate (n, w) uint8 ASCII blocks into one fixed-width Arrow string column."""
    block = np.ascontiguousarray(np.concatenate(parts, axis=1))
    width = block.shape[1]
    return pa.array(block.view(f"S{width}").ravel()).cast(pa.string())


def _const_block(text: str, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text.encode(), dtype=np.uint8), (n, len(text)))


def _take(dictionary: list[str] | np.ndarray, codes: np.ndarray) -> pa.Array:
    """Strings by code from a small dictionary; negative codes become null."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = codes < 0
    idx = pa.array(np.where(mask, 0, codes), mask=mask if mask.any() else None)
    return pc.take(pa.array(list(dictionary), type=pa.string()), idx)


def _timestamps(seconds_utc: np.ndarray) -> pa.Array:
    return pa.array(
        np.asarray(seconds_utc, dtype=np.int64) * 1_000_000, type=pa.timestamp("us", tz=TZ)
    )


# --------------------------------------------------------------------------------------------
# the simulation
# --------------------------------------------------------------------------------------------
class _Sim:
    def __init__(self, n: int, seed: int, world: str = "default", intensity: float = 1.0) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.world = wd.check_world(world).name
        # The world's own draws come from a separate generator so the trade stays the same.
        self.wrng = wd.world_rng(seed, self.world)
        self.k = wd.check_intensity(intensity)  # multiplier of every risk-signal rate
        self.suffix: np.ndarray | None = None  # 8-digit line, drawn early by hs6_origin
        self.package: np.ndarray | None = None  # the attribute world's extra column
        self.sectors = list(cat.SECTORS.values())
        self.sector_index = {s.name: i for i, s in enumerate(self.sectors)}
        self.products = cat.PRODUCTS
        self.countries = sorted(
            {c for s in self.sectors for c in s.origins}
            | set(cat.EXPORT_DESTINATIONS)
            | {c for o in cat.PRODUCT_ORIGINS.values() for c in o}
            | {"CN"}
        )
        self.cidx = {c: i for i, c in enumerate(self.countries)}
        self.ports = cat.PORTS
        self.port_index = {p[0]: i for i, p in enumerate(self.ports)}
        self.hs4s = sorted({p.hs6[:4] for p in self.products})
        self.hs4_index = {h: i for i, h in enumerate(self.hs4s)}
        self.tables: dict[str, pa.Table] = {}
        self.truth: pa.Table | None = None
        self.outbreaks: list[dict[str, object]] = []

    # ---------------------------------------------------------------- calendar
    def calendar(self) -> None:
        """Declaration times: growth, seasonality, Chinese New Year, weekends."""
        rng, n = self.rng, self.n
        days = np.arange(N_DAYS)
        local_date = START_LOCAL.astype("datetime64[D]") + days
        years = days / 365.25
        doy = (local_date - local_date.astype("datetime64[Y]")).astype(np.int64)
        weekday = (local_date.astype(np.int64) + 3) % 7  # 0 = Monday
        w = np.exp(0.09 * years)  # trade grows ~9 % a year
        w *= 1 + 0.13 * np.sin(2 * np.pi * (doy - 170) / 365.25)  # peak before Christmas orders
        w *= np.where(weekday == 5, 0.6, np.where(weekday == 6, 0.4, 1.0))
        for cny in CHINESE_NEW_YEAR:
            gap = (local_date - np.datetime64(cny)).astype(np.int64)
            w *= np.where((gap >= -4) & (gap <= 9), 0.3, 1.0)
        day = np.sort(rng.choice(N_DAYS, size=n, p=w / w.sum()))
        sec = np.clip(rng.normal(11.5 * 3600, 3.3 * 3600, n), 0, DAY - 1).astype(np.int64)
        t = START_S + day * DAY + sec
        order = np.argsort(t, kind="stable")
        self.t = t[order]
        self.day = (self.t - START_S) // DAY

    # ---------------------------------------------------------------- enterprises
    def enterprises(self) -> None:
        """Enterprises with heavy-tailed volumes, new entrants, latent quality and drift."""
        rng = self.rng
        ne = max(60, self.n // 45)
        self.ne = ne
        sector_w = {s.name: s.weight for s in self.sectors}
        etype = _choice(
            rng,
            {"manufacturer": 0.44, "trader": 0.46, "ecommerce_platform": 0.03, "other": 0.07},
            ne,
        )
        etype = np.array(
            [
                ENTERPRISE_TYPES.index(k)
                for k in ("manufacturer", "trader", "ecommerce_platform", "other")
            ]
        )[etype]
        self.e_type = etype
        platform = etype == ENTERPRISE_TYPES.index("ecommerce_platform")
        self.e_platform = platform
        self.e_sector = _choice(rng, sector_w, ne)
        # Importer or exporter by the sector's balance; platforms mostly import parcels.
        imp_share = np.array([s.import_share for s in self.sectors])[self.e_sector]
        importer = rng.random(ne) < imp_share
        self.e_import_p = np.where(platform, 0.9, np.where(importer, 0.94, 0.06))
        port_w = np.array([p[3] for p in self.ports])
        home = rng.choice(len(self.ports), size=ne, p=port_w / port_w.sum())
        cbec_home = np.array([self.port_index[p] for p in cat.CBEC_PORTS])[
            _choice(rng, cat.CBEC_PORTS, ne)
        ]
        self.e_home = np.where(platform, cbec_home, home)
        region_names = [r[0] for r in cat.REGIONS]
        self.e_region = np.array([region_names.index(self.ports[h][2]) for h in self.e_home])
        # Heavy-tailed activity; platforms are big.
        self.e_weight = rng.lognormal(0.0, 1.6, ne) * np.where(platform, 6.0, 1.0)
        # 62 % trade from the start, the rest enter over time (on a 30-day bucket boundary).
        entrant = rng.random(ne) > 0.62
        entry = np.where(entrant, rng.integers(20, N_DAYS - 30, ne), 0)
        entry = (np.ceil(entry / 30) * 30).astype(np.int64)
        self.e_entry = entry
        reg_lag = np.where(entrant, rng.uniform(5, 120, ne), rng.uniform(200, 5500, ne))
        self.e_registered = START_S + entry * DAY - (reg_lag * DAY).astype(np.int64)
        # Latent quality (log-odds; higher is worse): a good majority, a bad minority.
        bad = rng.random(ne) < np.where(entrant, 0.17, 0.11)
        q0 = rng.normal(0.0, 0.45, ne) + np.where(bad, rng.normal(1.6, 0.5, ne), 0.0)
        q0 += np.where(entrant, 0.2, 0.0)
        self.e_q0 = q0
        drift = rng.random(ne) < 0.18
        self.e_delta = np.where(drift, rng.normal(0.0, 1.1, ne), 0.0)
        self.e_tc = np.where(
            drift, entry + rng.uniform(60, N_DAYS, ne) * (N_DAYS - entry) / N_DAYS, 1e9
        )
        # Value manipulators under-declare; more likely among bad enterprises.
        manip = rng.random(ne) < _sigmoid(-2.6 + 1.3 * q0)
        self.e_manip = np.where(manip, rng.uniform(0.4, 1.3, ne), 0.0)
        self.e_scale = rng.normal(0.0, 0.7, ne)  # shipment size
        self.e_pref_u = rng.random(ne)  # loyal overseas partner within a (sector, country)
        self.e_cert_bias = rng.normal(0.0, 0.8, ne)
        # Product portfolio: 1-6 HS6 of the sector.
        self.e_k = np.minimum(1 + rng.poisson(1.6, ne), 6)
        self.e_portfolio = np.zeros((ne, 6), dtype=np.int64)
        for si, s in enumerate(self.sectors):
            prods = np.array([i for i, p in enumerate(self.products) if p.sector == s.name])
            rows = np.flatnonzero(self.e_sector == si)
            self.e_portfolio[rows] = (
                prods[np.argsort(rng.random((len(rows), len(prods))), axis=1)[:, :6] % len(prods)]
                if len(prods) >= 6
                else prods[rng.integers(0, len(prods), (len(rows), 6))]
            )
        # Declarants: customs brokers, heavy-tailed; each enterprise has a main broker.
        nb = max(10, self.n // 2500)
        self.nb = nb
        self.b_weight = rng.pareto(1.2, nb) + 0.2
        self.b_region = rng.integers(0, len(cat.REGIONS), nb)
        self.e_broker = rng.choice(nb, size=ne, p=self.b_weight / self.b_weight.sum())

    # ---------------------------------------------------------------- overseas parties
    def overseas(self) -> None:
        """Foreign suppliers (imports) and buyers (exports), pooled by sector and country."""
        rng = self.rng
        n_party = max(80, int(self.ne * 1.3))
        groups: list[tuple[int, int, float, bool]] = []  # sector, country, share, supplier
        for si, s in enumerate(self.sectors):
            origins = dict(s.origins)
            for p in self.products:
                if p.sector == s.name and p.hs6 in cat.PRODUCT_ORIGINS:
                    for c, w in cat.PRODUCT_ORIGINS[p.hs6].items():
                        origins[c] = origins.get(c, 0.0) + w * 0.5
            tot = sum(origins.values())
            for c, w in origins.items():
                groups.append((si, self.cidx[c], s.weight * s.import_share * w / tot, True))
            dtot = sum(cat.EXPORT_DESTINATIONS.values())
            for c, w in cat.EXPORT_DESTINATIONS.items():
                groups.append((si, self.cidx[c], s.weight * (1 - s.import_share) * w / dtot, False))
        share = np.array([g[2] for g in groups])
        size = np.maximum(2, np.round(share / share.sum() * n_party)).astype(np.int64)
        gid = np.repeat(np.arange(len(groups)), size)
        self.group_lookup = -np.ones((2, len(self.sectors), len(self.countries)), dtype=np.int64)
        for g, (si, ci, _, is_supplier) in enumerate(groups):
            self.group_lookup[0 if is_supplier else 1, si, ci] = g
        self.o_group = gid
        self.o_country = np.array([groups[g][1] for g in range(len(groups))])[gid]
        supplier = np.array([groups[g][3] for g in range(len(groups))])[gid]
        no = len(gid)
        self.no = no
        self.o_weight = rng.pareto(1.1, no) + 0.1
        bad = rng.random(no) < 0.1
        self.o_q = np.where(
            supplier,
            rng.normal(0.0, 0.45, no) + np.where(bad, rng.normal(1.3, 0.4, no), 0.0),
            rng.normal(0.0, 0.15, no),  # a buyer hardly changes the goods' risk
        )
        self.o_supplier = supplier
        # HS4 x origin hazards: most pairs near zero, a few clearly bad.
        nh, nc = len(self.hs4s), len(self.countries)
        hz = rng.normal(0.0, 0.3, (nh, nc))
        hot = rng.random((nh, nc)) < 0.08
        self.hxo = hz + np.where(hot, rng.uniform(0.6, 1.4, (nh, nc)), 0.0)

    # ---------------------------------------------------------------- declarations
    def declarations(self) -> None:
        """Who declares what, where, from where and how."""
        rng, n = self.rng, self.n
        # Enterprise by 30-day bucket among those already trading.
        ent = np.empty(n, dtype=np.int64)
        bucket = self.day // 30
        bounds = np.searchsorted(bucket, np.arange(bucket.max() + 2))
        for b in range(int(bucket.max()) + 1):
            lo, hi = bounds[b], bounds[b + 1]
            if hi <= lo:
                continue
            active = np.flatnonzero(self.e_entry <= b * 30)
            w = self.e_weight[active]
            ent[lo:hi] = active[rng.choice(len(active), size=hi - lo, p=w / w.sum())]
        self.ent = ent
        platform = self.e_platform[ent]
        self.is_import = rng.random(n) < self.e_import_p[ent]
        # Product: from the portfolio; platforms sell across consumer sectors.
        pick = (rng.random(n) * self.e_k[ent]).astype(np.int64)
        prod = self.e_portfolio[ent, pick]
        consumer = [i for i, p in enumerate(self.products) if cat.SECTORS[p.sector].consumer]
        plat_rows = np.flatnonzero(platform)
        cw = np.array(
            [
                cat.SECTORS[self.products[i].sector].weight
                * (
                    3.0
                    if self.products[i].sector in ("cosmetics", "processed_food", "dairy")
                    else 1.0
                )
                for i in consumer
            ]
        )
        prod[plat_rows] = np.array(consumer)[
            rng.choice(len(consumer), size=len(plat_rows), p=cw / cw.sum())
        ]
        self.prod = prod
        p_sector = np.array([self.sector_index[p.sector] for p in self.products])
        self.sector = p_sector[prod]
        # Origin: product or sector origin table for imports; CN for exports.
        origin_tab = np.zeros((len(self.products), len(self.countries)))
        for i, p in enumerate(self.products):
            origins = cat.PRODUCT_ORIGINS.get(p.hs6, cat.SECTORS[p.sector].origins)
            for c, ow in origins.items():
                origin_tab[i, self.cidx[c]] = ow
        imp_origin = _categorical(rng, origin_tab, prod)
        dest_tab = np.zeros((1, len(self.countries)))
        for c, dw in cat.EXPORT_DESTINATIONS.items():
            dest_tab[0, self.cidx[c]] = dw
        dest = _categorical(rng, dest_tab, np.zeros(n, dtype=np.int64))
        self.origin = np.where(self.is_import, imp_origin, self.cidx["CN"])
        self.dest = np.where(self.is_import, -1, dest)
        # Overseas party: loyal partner most of the time.
        partner_country = np.where(self.is_import, self.origin, self.dest)
        group = self.group_lookup[np.where(self.is_import, 0, 1), self.sector, partner_country]
        loyal = rng.random(n) < 0.65
        u = np.where(loyal, self.e_pref_u[ent], rng.random(n))
        self.party = _grouped_pick(self.o_group, self.o_weight, group, u)
        has_party = rng.random(n) < np.where(platform, 0.75, 0.97)
        self.has_party = has_party
        # Trade mode by enterprise type.
        modes = {m: i for i, m in enumerate(TRADE_MODES)}
        tm = np.zeros((len(ENTERPRISE_TYPES), len(TRADE_MODES)))
        tm[ENTERPRISE_TYPES.index("manufacturer")] = [0.55, 0.33, 0.0, 0.0, 0.07, 0.05]
        tm[ENTERPRISE_TYPES.index("trader")] = [0.78, 0.0, 0.04, 0.07, 0.07, 0.04]
        tm[ENTERPRISE_TYPES.index("ecommerce_platform")] = [0.03, 0.0, 0.92, 0.0, 0.05, 0.0]
        tm[ENTERPRISE_TYPES.index("other")] = [0.7, 0.0, 0.0, 0.0, 0.1, 0.2]
        mode = _categorical(rng, tm, self.e_type[ent])
        # Market procurement is an export regime.
        mode = np.where(
            (mode == modes["market_procurement"]) & self.is_import, modes["general_trade"], mode
        )
        self.mode = mode
        self.cbec = mode == modes["cross_border_ecommerce"]
        # Port: the enterprise's home port, sometimes another one.
        port_w = np.array([p[3] for p in self.ports])
        other_port = rng.choice(len(self.ports), size=n, p=port_w / port_w.sum())
        self.port = np.where(rng.random(n) < 0.85, self.e_home[ent], other_port)
        # Transport: parcels by post or air; inland ports by rail, air, road.
        seaport = np.array([p[4] for p in self.ports])[self.port]
        tr = np.array(
            [
                [0.76, 0.14, 0.04, 0.05, 0.0, 0.01],  # seaport
                [0.0, 0.45, 0.33, 0.21, 0.0, 0.01],  # inland
                [0.0, 0.45, 0.0, 0.0, 0.55, 0.0],  # parcels
            ]
        )
        kind = np.where(self.cbec, 2, np.where(seaport, 0, 1))
        self.transport = _categorical(rng, tr, kind)
        # Declarant: the enterprise's broker, sometimes another.
        other_b = rng.choice(self.nb, size=n, p=self.b_weight / self.b_weight.sum())
        self.broker = np.where(rng.random(n) < 0.8, self.e_broker[ent], other_b)
        self.has_broker = rng.random(n) < 0.93

    # ---------------------------------------------------------------- goods and values
    def goods(self) -> None:
        """Quantity, weight, value, currency, legal inspection, certificates."""
        rng, n = self.rng, self.n
        prod = self.prod
        kg_unit = np.array([p.kg_per_unit for p in self.products])[prod]
        by_kg = np.array([p.unit == "kg" for p in self.products])[prod]
        weight = np.where(
            self.cbec,
            rng.lognormal(np.log(1.5), 0.8, n),
            rng.lognormal(np.log(900.0) + self.e_scale[self.ent], 1.2, n),
        )
        units = np.maximum(1.0, np.round(weight / kg_unit))
        weight = np.where(by_kg, weight, units * kg_unit * rng.lognormal(0.0, 0.05, n))
        self.weight = np.maximum(np.round(weight, 3), 0.001)
        self.quantity = np.where(by_kg, self.weight, units)
        norm = np.array([p.usd_per_kg for p in self.products])[prod]
        premium = np.ones(len(self.countries))
        for c, m in cat.ORIGIN_PRICE.items():
            premium[self.cidx[c]] = m
        true_uv = norm * premium[self.origin] * rng.lognormal(0.0, 0.28, n)
        # Under-declaration: manipulators most of the time, parcels sometimes.
        manip = self.e_manip[self.ent]
        cheat = (rng.random(n) < 0.65) & (manip > 0)
        shave = np.where(cheat, manip * rng.uniform(0.5, 1.5, n), 0.0)
        shave += np.where(self.cbec & (rng.random(n) < 0.15), rng.uniform(0.3, 1.2, n), 0.0)
        declared_uv = true_uv * np.exp(-shave)
        value_usd = declared_uv * self.weight
        self.log_uv_ratio = np.log(declared_uv / norm)
        # Currency: partner's currency often, USD mostly, CNY for parcels.
        cur_codes = list(cat.USD_PER_UNIT)
        country_cur = np.array(
            [cur_codes.index(cat.COUNTRY_CURRENCY.get(c, "USD")) for c in self.countries]
        )
        partner = np.where(self.is_import, self.origin, self.dest)
        u = rng.random(n)
        cur = np.where(u < 0.55, country_cur[np.maximum(partner, 0)], cur_codes.index("USD"))
        cur = np.where(~self.is_import & (u > 0.85), cur_codes.index("CNY"), cur)
        cur = np.where(self.cbec & (u < 0.9), cur_codes.index("CNY"), cur)
        self.currency = cur
        rate = np.array([cat.USD_PER_UNIT[c] for c in cur_codes])[cur]
        value = value_usd / rate
        whole = np.isin(cur, [cur_codes.index("JPY"), cur_codes.index("KRW")])
        self.value = np.where(whole, np.round(value), np.round(value, 2))
        legal = np.array([p.legal for p in self.products])[prod]
        food = np.array([cat.SECTORS[p.sector].food for p in self.products])[prod]
        # The catalogue mostly binds imports; exported food stays in it.
        self.legal = legal & (self.is_import | food)
        self.food = food
        cert_p = _sigmoid(
            -2.7 + 1.1 * self.legal - 0.9 * self.e_q0[self.ent] + 0.6 * self.e_cert_bias[self.ent]
        )
        self.cert = rng.random(n) < cert_p

    # ---------------------------------------------------------------- credit
    def credit(self) -> None:
        """Initial ratings from latent quality, later changes after drift; rating in force."""
        rng, ne = self.rng, self.ne
        score = self.e_q0 + rng.normal(0.0, 0.45, ne)
        rank = np.argsort(np.argsort(score)) / ne
        r = {name: i for i, name in enumerate(CREDIT_RATINGS)}
        init = np.full(ne, r["regular"])
        init[rank < 0.012] = r["aeo_advanced"]
        init[(rank >= 0.012) & (rank < 0.06)] = r["aeo_certified"]
        init[rank > 0.985] = r["discredited"]
        init[rank > 0.996] = r["severely_discredited"]
        ents = [np.arange(ne)]
        when = [self.e_registered.astype(np.float64)]
        rating = [init]
        # Deteriorating enterprises are downgraded some months after the change.
        tc_s = START_S + self.e_tc * DAY
        worse = self.e_delta > 0.8
        down_at = tc_s + rng.uniform(60, 220, ne) * DAY
        severe = (self.e_delta > 1.6) & (rng.random(ne) < 0.4)
        ents.append(np.flatnonzero(worse))
        when.append(down_at[worse])
        rating.append(np.where(severe, r["severely_discredited"], r["discredited"])[worse])
        better = (self.e_delta < -0.8) & (init == r["regular"])
        up_at = tc_s + rng.uniform(120, 330, ne) * DAY
        ents.append(np.flatnonzero(better))
        when.append(up_at[better])
        rating.append(np.full(int(better.sum()), r["aeo_certified"]))
        # Persistent bad actors get caught; some discredited ones repair their credit.
        caught = (self.e_q0 > 1.4) & (self.e_delta == 0) & (rng.random(ne) < 0.25)
        caught_at = START_S + rng.uniform(120, N_DAYS, ne) * DAY
        ents.append(np.flatnonzero(caught))
        when.append(np.maximum(caught_at, self.e_registered + 90 * DAY)[caught])
        rating.append(np.full(int(caught.sum()), r["discredited"]))
        repair = (init == r["discredited"]) & (rng.random(ne) < 0.35)
        repair_at = np.maximum(self.e_registered, START_S) + rng.uniform(300, 700, ne) * DAY
        ents.append(np.flatnonzero(repair))
        when.append(repair_at[repair])
        rating.append(np.full(int(repair.sum()), r["regular"]))
        ce = np.concatenate(ents)
        ct = np.concatenate(when).astype(np.int64)
        cr = np.concatenate(rating)
        keep = ct < END_S
        ce, ct, cr = ce[keep], ct[keep], cr[keep]
        order = np.lexsort((ct, ce))
        self.c_ent, self.c_t, self.c_rating = ce[order], ct[order], cr[order]
        # Rating in force at each declaration: latest row with effective_from <= declared_at.
        base = np.int64(1) << 36
        keys = self.c_ent * base + (self.c_t - START_S + 40 * 365 * DAY)
        q = self.ent * base + (self.t - START_S + 40 * 365 * DAY)
        pos = np.searchsorted(keys, q, side="right") - 1
        ok = (pos >= 0) & (self.c_ent[np.maximum(pos, 0)] == self.ent)
        self.rating = np.where(ok, self.c_rating[np.maximum(pos, 0)], r["regular"])

    # ---------------------------------------------------------------- hidden risk
    def risk(self) -> None:
        """The true nonconformity probability, as a sum of named log-odds components."""
        rng, n = self.rng, self.n
        day = self.t.astype(np.float64) / DAY - START_S / DAY
        ent = self.ent
        comp: dict[str, np.ndarray] = {}
        comp["product"] = np.array(
            [cat.SECTORS[p.sector].base_logit + p.base_logit for p in self.products]
        )[self.prod]
        hs4 = np.array([self.hs4_index[p.hs6[:4]] for p in self.products])[self.prod]
        self.hs4 = hs4
        comp["hs_origin"] = self.hxo[hs4, self.origin]
        drift = self.e_delta[ent] * _sigmoid((day - self.e_tc[ent]) / 30.0)
        comp["enterprise"] = self.e_q0[ent] + drift
        comp["overseas"] = np.where(self.has_party, 0.8 * self.o_q[self.party], 0.3)
        comp["undervaluation"] = 1.1 * np.clip(-self.log_uv_ratio - 0.4, 0.0, 2.5)
        credit_effect = np.array([-0.5, -0.3, 0.0, 0.4, 0.6])
        comp["credit"] = credit_effect[self.rating]
        comp["certificate"] = np.where(self.cert, -0.8, 0.0)
        age = (self.t - self.e_registered[ent]) / DAY
        comp["novelty"] = np.where(age < 90, 0.5, np.where(age < 180, 0.25, 0.0))
        comp["ecommerce"] = np.where(self.cbec, 0.3, 0.0)
        comp["outbreak"], ob_id, ob_crit = self._plant_outbreaks(day)
        self._plant_world(comp)
        comp["noise"] = rng.normal(0.0, NOISE_SD, n)
        x = cast(np.ndarray, sum(comp.values()))
        # Solve the intercept so the mean probability hits the target (bisection).
        lo, hi = -12.0, 4.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if _sigmoid(x + mid).mean() > TARGET_MEAN_P:
                hi = mid
            else:
                lo = mid
        comp["intercept"] = np.full(n, (lo + hi) / 2)
        logit = x + comp["intercept"]
        self.comp = comp
        self.logit = logit
        self.p = _sigmoid(logit)
        # Share of the odds owed to the outbreak: which nonconformities it explains.
        self.ob_share = np.where(
            comp["outbreak"] > 0, 1.0 - _sigmoid(logit - comp["outbreak"]) / self.p, 0.0
        )
        self.ob_id = ob_id
        crit_base = np.array([cat.SECTORS[p.sector].crit_logit for p in self.products])[self.prod]
        pc_base = _sigmoid(crit_base - 0.8 + 0.35 * comp["enterprise"])
        self.p_crit_given_nc = (1 - self.ob_share) * pc_base + self.ob_share * _sigmoid(ob_crit)
        self.p_crit = self.p * self.p_crit_given_nc

    def _suffix_table(self) -> tuple[list[str], np.ndarray]:
        """The Chinese 7th-8th digits seen with each product, as a 0/1 table."""
        suffixes = sorted({s for p in self.products for s in p.suffixes})
        tab = np.zeros((len(self.products), len(suffixes)))
        for i, p in enumerate(self.products):
            for s_ in p.suffixes:
                tab[i, suffixes.index(s_)] = 1.0
        return suffixes, tab

    def _plant_world(self, comp: dict[str, np.ndarray]) -> None:
        """Move risk to the world's grain (``demo/worlds.py``); the default world draws nothing."""
        w, wr, n = self.world, self.wrng, self.n
        if w == "default":
            return
        if w == "weak_enterprise":
            comp["enterprise"] = wd.WEAK_ENTERPRISE_SCALE * comp["enterprise"]
        elif w == "hs6_origin":
            # The catalogue has about one HS6 per HS4, so the finer grain is the 8-digit line.
            suffixes, tab = self._suffix_table()
            self.suffix = _categorical(wr, tab, self.prod)
            line = self.prod * len(suffixes) + self.suffix
            eff = wd.hot_effects(wr, (len(self.products) * len(suffixes), len(self.countries)),
                                 wd.HS6_ORIGIN)  # fmt: skip
            comp["hs_origin"] = np.zeros(n)
            comp["hs6_origin"] = eff[line, self.origin]
        elif w == "declarant":
            eff = wd.hot_effects(wr, (self.nb,), wd.DECLARANT)
            comp["declarant"] = np.where(self.has_broker, eff[self.broker], 0.0)
        elif w == "overseas_hs4":
            eff = wd.hot_effects(wr, (self.no, len(self.hs4s)), wd.OVERSEAS_HS4)
            comp["overseas"] = np.where(self.has_party, 0.0, comp["overseas"])
            comp["overseas_hs4"] = np.where(self.has_party, eff[self.party, self.hs4], 0.0)
        elif w == "port_chapter":
            chapters = sorted({p.hs6[:2] for p in self.products})
            ch = np.array([chapters.index(p.hs6[:2]) for p in self.products])[self.prod]
            eff = wd.hot_effects(wr, (len(self.ports), len(chapters)), wd.PORT_CHAPTER)
            comp["port_chapter"] = eff[self.port, ch]
        elif w == "attribute":
            k = len(wd.PACKAGE_TYPES)
            # Each sector packs its own way; each enterprise has a habit within its sector's.
            sector_mix = wr.dirichlet(np.full(k, 0.7), len(self.sectors))
            habit = _categorical(wr, sector_mix, self.e_sector)
            own = _categorical(wr, sector_mix, self.sector)
            self.package = np.where(wr.random(n) < wd.ATTRIBUTE_HABIT_SHARE, habit[self.ent], own)
            effect = wr.normal(0.0, wd.ATTRIBUTE_SD, k)
            risky = wr.choice(k, size=len(wd.ATTRIBUTE_RISKY), replace=False)
            effect[risky] += np.array(wd.ATTRIBUTE_RISKY)
            comp["attribute"] = effect[self.package]
        else:  # pragma: no cover - check_world guards the names
            raise AssertionError(w)

    def _plant_outbreaks(self, day: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Place the outbreak templates in time; return their log-odds, ids and critical odds."""
        rng, n = self.rng, self.n
        effect = np.zeros(n)
        ob_id = np.full(n, -1, dtype=np.int64)
        ob_crit = np.full(n, -9.0)
        templates = cat.OUTBREAK_TEMPLATES
        # Two outbreaks fall in the last five months (the usual test period), the rest earlier.
        late = set(rng.choice(len(templates), size=2, replace=False).tolist())
        self.outbreak_defs: list[dict[str, Any]] = []
        for k, (hs4, origin, hazard, level, mult, crit, weeks) in enumerate(templates):
            length = weeks * 7 + int(rng.integers(-7, 8))
            if k in late:
                start = int(rng.integers(N_DAYS - 150, N_DAYS - length - 3))
            else:
                start = int(rng.integers(240, N_DAYS - 170 - length))
            end = start + length
            ramp = max(7.0, 0.2 * length)
            # Trapezoid: rises over the first fifth, holds, fades over the last fifth.
            shape = np.clip(np.minimum(day - start, end - day) / ramp, 0.0, 1.0)
            match = (self.hs4 == self.hs4_index[hs4]) & (self.origin == self.cidx[origin])
            active = match & (shape > 0)
            effect = np.where(active, np.log(mult) * shape, effect)
            ob_id = np.where(active, k, ob_id)
            ob_crit = np.where(active, crit, ob_crit)
            self.outbreak_defs.append(
                {
                    "k": k,
                    "hs4": hs4,
                    "origin": origin,
                    "hazard": hazard,
                    "level": level,
                    "mult": mult,
                    "crit": crit,
                    "start": start,
                    "end": end,
                }
            )
        return effect, ob_id, ob_crit

    # ---------------------------------------------------------------- signals
    def signals(self) -> None:
        """Risk signals from the nine channels: lagged, noisy, tied to the hidden risk."""
        rng, n = self.rng, self.n
        ch = {c: i for i, c in enumerate(SIGNAL_CHANNELS)}
        hz = {h: i for i, h in enumerate(HAZARD_TYPES)}
        sources: list[str] = []

        def src(name: str) -> int:
            if name not in sources:
                sources.append(name)
            return sources.index(name)

        cols: dict[str, list[np.ndarray]] = {
            k: [] for k in ("t", "ch", "ent", "party", "hs", "origin", "sev", "haz", "src")
        }
        n_prod = len(self.products)

        def hs_code(prod: np.ndarray, length: int) -> np.ndarray:
            return prod * 3 + {2: 0, 4: 1, 6: 2}[length]

        def emit(
            t: np.ndarray,
            channel: str,
            ent: np.ndarray | None,
            party: np.ndarray | None,
            hs: np.ndarray | None,
            origin: np.ndarray | None,
            sev: np.ndarray,
            haz: np.ndarray,
            source: np.ndarray,
        ) -> None:
            m = len(t)
            none = np.full(m, -1, dtype=np.int64)
            cols["t"].append(t.astype(np.int64))
            cols["ch"].append(np.full(m, ch[channel]))
            cols["ent"].append(none if ent is None else ent)
            cols["party"].append(none if party is None else party)
            cols["hs"].append(none if hs is None else hs)
            cols["origin"].append(none if origin is None else origin)
            cols["sev"].append(sev)
            cols["haz"].append(haz)
            cols["src"].append(source)

        haz_tab = np.array([cat.SECTORS[p.sector].hazards for p in self.products])
        prod_hazard = _categorical(rng, haz_tab, self.prod)
        consumer = np.array([cat.SECTORS[p.sector].consumer for p in self.products])[self.prod]
        sev_low = np.array([0.6, 0.3, 0.08, 0.02])
        sev_high = np.array([0.05, 0.25, 0.45, 0.25])

        def severity(idx: np.ndarray, alarm: np.ndarray) -> np.ndarray:
            tab = np.vstack([sev_low, sev_high])
            return _categorical(rng, tab, (alarm > rng.random(len(idx))).astype(np.int64))

        def lagged(idx: np.ndarray, mean_days: float, min_days: float) -> np.ndarray:
            return self.t[idx] + ((min_days + rng.exponential(mean_days, len(idx))) * DAY)

        def from_decls(rate: np.ndarray, noise_rate: float) -> np.ndarray:
            """Declarations that emit a signal: risk-driven plus risk-free background."""
            return np.flatnonzero(rng.random(n) < (rate + noise_rate) * k)

        u_crit = self.p_crit_given_nc
        k = self.k  # report intensity: every channel's rate, background included
        # consumer complaints (12315): domestic consumers, imported consumer goods.
        dom = self.is_import & consumer
        idx = from_decls(np.where(dom, 0.3 * self.p * np.where(self.cbec, 2.0, 1.0), 0), 0.0)
        idx = np.union1d(idx, np.flatnonzero(dom & (rng.random(n) < 0.003 * k)))
        emit(
            lagged(idx, 30, 10),
            "consumer_complaint",
            self.ent[idx],
            None,
            np.where(rng.random(len(idx)) < 0.4, hs_code(self.prod[idx], 6), -1),
            None,
            severity(idx, u_crit[idx]),
            prod_hazard[idx],
            np.full(len(idx), src("12315")),
        )
        # injury reports: safety hazards of consumer goods, at home or abroad.
        safety_w = haz_tab[:, 0][self.prod]
        idx = from_decls(np.where(consumer, 0.06 * self.p * safety_w + 0.5 * self.p_crit, 0), 0)
        idx = np.union1d(idx, np.flatnonzero(consumer & (rng.random(n) < 0.0004 * k)))
        emit(
            lagged(idx, 45, 15),
            "injury_report",
            self.ent[idx],
            None,
            hs_code(self.prod[idx], 6),
            None,
            severity(idx, np.full(len(idx), 0.6)),
            np.full(len(idx), hz["safety"]),
            np.full(len(idx), src("National Injury Surveillance System")),
        )
        # foodborne illness: imported food, named by product and origin.
        food_imp = self.food & self.is_import
        idx = from_decls(np.where(food_imp, 0.05 * self.p + 0.6 * self.p_crit, 0), 0)
        idx = np.union1d(idx, np.flatnonzero(food_imp & (rng.random(n) < 0.0006 * k)))
        named = rng.random(len(idx)) < 0.5
        emit(
            lagged(idx, 12, 3),
            "foodborne_illness",
            np.where(named, self.ent[idx], -1),
            None,
            hs_code(self.prod[idx], 4),
            self.origin[idx],
            severity(idx, u_crit[idx] + 0.3),
            np.full(len(idx), hz["health"]),
            np.full(len(idx), src("CDC foodborne disease surveillance")),
        )
        # counterfeit reports: branded goods, under-declared and from bad enterprises.
        branded = np.isin(
            self.sector,
            [
                self.sector_index[s]
                for s in ("cosmetics", "footwear", "textiles", "electrical", "toys")
            ],
        )
        rate = np.where(branded, 0.25 * self.p * (self.log_uv_ratio < -0.5), 0.0)
        idx = from_decls(rate, 0.0)
        idx = np.union1d(idx, np.flatnonzero(branded & (rng.random(n) < 0.0008 * k)))
        emit(
            lagged(idx, 40, 7),
            "counterfeit_report",
            self.ent[idx],
            np.where(self.has_party[idx], self.party[idx], -1),
            hs_code(self.prod[idx], 6),
            None,
            severity(idx, np.full(len(idx), 0.3)),
            np.full(len(idx), hz["fraud_labeling"]),
            np.full(len(idx), src("brand owner")),
        )
        # enterprise self-reports: conscientious (good) enterprises report their own problems.
        good = self.e_q0[self.ent] < 0.3
        idx = from_decls(np.where(good, 0.12 * self.p, 0.0), 0.0)
        emit(
            lagged(idx, 10, 2),
            "enterprise_report",
            self.ent[idx],
            None,
            hs_code(self.prod[idx], 6),
            None,
            severity(idx, np.full(len(idx), 0.1)),
            prod_hazard[idx],
            np.full(len(idx), src("enterprise self-report")),
        )
        # recalls: serious defects surface months later.
        idx = from_decls(np.where(consumer, 0.5 * self.p_crit + 0.005 * self.p, 0.0), 0.0)
        emit(
            lagged(idx, 60, 20),
            "recall",
            self.ent[idx],
            None,
            hs_code(self.prod[idx], 6),
            None,
            severity(idx, np.full(len(idx), 0.7)),
            prod_hazard[idx],
            np.full(len(idx), src("SAMR defective product recall")),
        )
        # market-surveillance sampling: a random sample of goods; failures are reported.
        sampled = rng.random(n) < 0.01 * k
        idx = np.flatnonzero(sampled & (rng.random(n) < 1.5 * self.p))
        emit(
            lagged(idx, 25, 7),
            "monitoring_test",
            self.ent[idx],
            np.where(self.has_party[idx], self.party[idx], -1),
            hs_code(self.prod[idx], 6),
            self.origin[idx],
            severity(idx, u_crit[idx]),
            prod_hazard[idx],
            np.full(len(idx), src("SAMR market sampling")),
        )
        # foreign alerts on exports: the destination's authority flags a Chinese exporter.
        exp_ = ~self.is_import
        idx = from_decls(np.where(exp_, 0.08 * self.p, 0.0), 0.0)
        food_src = np.array([src(s) for s in cat.FOREIGN_ALERT_SOURCES_FOOD])
        goods_src = np.array([src(s) for s in cat.FOREIGN_ALERT_SOURCES_GOODS])
        pick = rng.integers(0, 5, len(idx))
        emit(
            lagged(idx, 20, 5),
            "foreign_alert",
            self.ent[idx],
            None,
            hs_code(self.prod[idx], 6),
            self.origin[idx],
            severity(idx, u_crit[idx]),
            prod_hazard[idx],
            np.where(self.food[idx], food_src[pick], goods_src[pick]),
        )
        # foreign alerts and public opinion on HS4 x origin: more where hazards are high.
        nh, nc = self.hxo.shape
        first_prod = np.array(
            [next(i for i, p in enumerate(self.products) if p.hs6[:4] == h) for h in self.hs4s]
        )
        prod_food = np.array([cat.SECTORS[p.sector].food for p in self.products])
        pair_volume = np.bincount(self.hs4 * nc + self.origin, minlength=nh * nc).astype(float)
        w = pair_volume * np.exp(1.2 * self.hxo.ravel())
        for channel, count, lag_src in (
            ("foreign_alert", n / 1500, "alert"),
            ("public_opinion", n / 2000, "media"),
        ):
            m = int(rng.poisson(count * k))
            pair = rng.choice(nh * nc, size=m, p=w / w.sum())
            h, c = pair // nc, pair % nc
            noise_pair = rng.random(m) < 0.35  # a third are not about real hazards
            rand_pair = rng.choice(nh * nc, size=m, p=pair_volume / pair_volume.sum())
            h = np.where(noise_pair, rand_pair // nc, h)
            c = np.where(noise_pair, rand_pair % nc, c)
            t = START_S + rng.uniform(0, N_DAYS, m) * DAY
            prd = first_prod[h]
            if lag_src == "alert":
                pick = rng.integers(0, 5, m)
                source = np.where(prod_food[prd], food_src[pick], goods_src[pick])
            else:
                source = np.array([src("Weibo"), src("news media")])[rng.integers(0, 2, m)]
            emit(
                t,
                channel,
                None,
                None,
                hs_code(prd, 4),
                c,
                severity(prd, np.full(m, 0.3)),
                _categorical(rng, haz_tab, prd),
                source,
            )
        # planted outbreaks: alerts and media reports, lagged after the start.
        for ob in self.outbreak_defs:
            length = ob["end"] - ob["start"]
            prd = first_prod[self.hs4_index[ob["hs4"]]]
            for channel, m_mean in (("foreign_alert", 5), ("public_opinion", 3)):
                # at intensity 1 exactly today's draw; otherwise Poisson with k x the mean
                m = 1 + int(rng.poisson(m_mean)) if k == 1.0 else int(rng.poisson(k * (1 + m_mean)))
                t = START_S + (ob["start"] + rng.uniform(4, 0.7 * length + 4, m)) * DAY
                pick = rng.integers(0, 5, m)
                if channel == "foreign_alert":
                    source = np.where(prod_food[prd], food_src[pick], goods_src[pick])
                else:
                    source = np.array([src("Weibo"), src("news media")])[pick % 2]
                prds = np.full(m, prd)
                hs_len = np.where(rng.random(m) < 0.5, hs_code(prds, 4), hs_code(prds, 6))
                emit(
                    t,
                    channel,
                    None,
                    None,
                    hs_len,
                    np.full(m, self.cidx[ob["origin"]]),
                    severity(prds, np.full(m, 0.3 + 0.2 * (4 - ob["level"]))),
                    np.full(m, hz[ob["hazard"]]),
                    source,
                )
            ob["first_alert"] = None
        t = np.concatenate(cols["t"])
        keep = t < END_S
        order = np.argsort(t[keep], kind="stable")
        sig = {k: np.concatenate(v)[keep][order] for k, v in cols.items()}
        self.sig = sig
        self.sig_sources = sources
        # When the port learns of each outbreak: its first alert or media report.
        for ob in self.outbreak_defs:
            prd = first_prod[self.hs4_index[ob["hs4"]]]
            hit = (
                ((sig["hs"] == hs_code(prd, 4)) | (sig["hs"] == hs_code(prd, 6)))
                & (sig["origin"] == self.cidx[ob["origin"]])
                & np.isin(sig["ch"], [ch["foreign_alert"], ch["public_opinion"]])
                & (sig["t"] >= START_S + ob["start"] * DAY)
            )
            ob["first_alert"] = int(sig["t"][hit].min()) if hit.any() else None
        self.hs_dict = [p.hs6[:k] for p in self.products for k in (2, 4, 6)]
        assert len(self.hs_dict) == 3 * n_prod

    # ---------------------------------------------------------------- inspections
    def inspections(self) -> None:
        """Random monitoring, mandatory rules, legacy-targeted selection; results and lags."""
        rng, n = self.rng, self.n
        sel = np.full(n, -1, dtype=np.int64)
        s = {x: i for i, x in enumerate(SELECTIONS)}
        # 1. Random monitoring sample: independent of everything, so unbiased.
        sel[rng.random(n) < RANDOM_SHARE] = s["random"]
        # 2. Mandatory: severely discredited, first import of a food product by an enterprise,
        #    a share of legal-inspection food, and the response to a known outbreak.
        r = {name: i for i, name in enumerate(CREDIT_RATINGS)}
        mand = (self.rating == r["severely_discredited"]) & (rng.random(n) < 0.6)
        food_imp = self.food & self.is_import & self.legal
        key = np.where(food_imp, self.ent * 1000 + self.hs4, -1)
        _, first = np.unique(key, return_index=True)
        first = first[key[first] >= 0]
        first_food = np.zeros(n, dtype=bool)
        first_food[first] = True
        mand |= first_food
        mand |= food_imp & (rng.random(n) < 0.012)
        for ob in self.outbreak_defs:
            if ob["first_alert"] is None:
                continue
            match = (self.hs4 == self.hs4_index[ob["hs4"]]) & (
                self.origin == self.cidx[ob["origin"]]
            )
            window = (self.t >= ob["first_alert"]) & (self.t < START_S + (ob["end"] + 30) * DAY)
            mand |= match & window & (rng.random(n) < 0.3)
        sel[(sel < 0) & mand] = s["mandatory"]
        # 3. Targeted: the legacy rule plus officers' noise, among the rest.
        frame = pd.DataFrame(
            {
                "hs_code": pd.Series(
                    pd.Categorical.from_codes(self.prod, [p.hs6 for p in self.products])  # type: ignore[call-overload]
                ).astype(str),
                "origin_country": pd.Series(
                    pd.Categorical.from_codes(self.origin, self.countries)  # type: ignore[call-overload]
                ).astype(str),
                "trade_mode": pd.Series(
                    pd.Categorical.from_codes(self.mode, list(TRADE_MODES))  # type: ignore[call-overload]
                ).astype(str),
                "enterprise_id": self.ent,
                "declared_at": pd.to_datetime(self.t, unit="s", utc=True),
                "legal_inspection": self.legal,
                "third_party_certificate": self.cert,
            }
        )
        credit = pd.Series(pd.Categorical.from_codes(self.rating, list(CREDIT_RATINGS)))  # type: ignore[call-overload]
        self.legacy = legacy_score(frame, credit)
        noisy = self.legacy + rng.normal(0.0, 1.3, n)
        free = sel < 0
        share = TARGETED_SHARE / max(free.mean(), 1e-9)
        cut = np.quantile(noisy[free], 1.0 - min(share, 1.0))
        sel[free & (noisy > cut)] = s["targeted"]
        self.sel = sel
        idx = np.flatnonzero(sel >= 0)
        self.insp_idx = idx
        p = self.p[idx]
        nc = rng.random(len(idx)) < p
        # Severity: critical with the declaration's conditional odds, else major or minor.
        crit = rng.random(len(idx)) < self.p_crit_given_nc[idx]
        major = rng.random(len(idx)) < 0.35
        sev = np.where(crit, 2, np.where(major, 1, 0))
        # Hazard: the outbreak's hazard for the share it explains, fraud for under-declaration,
        # otherwise the sector's profile.
        haz_tab = np.array([cat.SECTORS[pr.sector].hazards for pr in self.products])
        haz = _categorical(rng, haz_tab, self.prod[idx])
        under_share = 1.0 - np.exp(-self.comp["undervaluation"][idx])
        haz = np.where(
            rng.random(len(idx)) < 0.5 * under_share, HAZARD_TYPES.index("fraud_labeling"), haz
        )
        ob_haz = np.array([HAZARD_TYPES.index(o["hazard"]) for o in self.outbreak_defs] + [0])
        from_ob = rng.random(len(idx)) < self.ob_share[idx]
        haz = np.where(from_ob, ob_haz[self.ob_id[idx]], haz)
        d = {x: i for i, x in enumerate(DISPOSALS)}
        disp_tab = np.zeros((4, len(DISPOSALS)))
        disp_tab[0, [d["release"]]] = 1.0  # conforming
        disp_tab[1, [d["release"], d["rectify"]]] = [0.3, 0.7]  # minor
        disp_tab[2, [d["rectify"], d["return"], d["destroy"]]] = [0.4, 0.35, 0.25]  # major
        disp_tab[3, [d["return"], d["destroy"], d["recall"]]] = [0.3, 0.5, 0.2]  # critical
        disp = _categorical(rng, disp_tab, np.where(nc, sev + 1, 0))
        # Lag: hours for a document or physical check, days when a lab test is needed.
        hours = np.where(
            nc,
            rng.lognormal(np.log(72.0), 0.6, len(idx)),
            rng.lognormal(np.log(18.0), 0.9, len(idx)),
        )
        hours = np.clip(hours, 0.5, 240.0)
        self.insp_t = self.t[idx] + (hours * 3600).astype(np.int64)
        self.insp_nc = nc
        self.insp_sev = np.where(nc, sev, -1)
        self.insp_haz = np.where(nc, haz, -1)
        self.insp_disp = disp
        self.insp_sel = sel[idx]

    # ---------------------------------------------------------------- tables
    def build_tables(self) -> None:
        """Assemble the contract tables and the ground truth as Arrow tables."""
        n = self.n
        # Declaration numbers: customs district (4) + year (4) + I/E flag (1) + sequence (9).
        district = np.array([np.frombuffer(p[1].encode(), dtype=np.uint8) for p in self.ports])
        local_year = (self.t + TZ_OFFSET_S).astype("datetime64[s]").astype("datetime64[Y]")
        year = local_year.astype(np.int64) + 1970
        decl_id = _ascii_column(
            [
                district[self.port],
                _digits(year, 4),
                _digits(self.is_import.astype(np.int64), 1),
                _digits(np.arange(1, n + 1), 9),
            ]
        )
        region_codes = [r[1] for r in cat.REGIONS]
        e_region_code = np.array(
            [np.frombuffer(region_codes[r].encode(), dtype=np.uint8) for r in self.e_region]
        )
        ent_ids = _ascii_column(
            [e_region_code, _digits(self.e_type + 1, 1), _digits(np.arange(self.ne), 5)]
        )
        b_code = np.array(
            [np.frombuffer(cat.REGIONS[r][1].encode(), dtype=np.uint8) for r in self.b_region]
        )
        broker_ids = _ascii_column(
            [b_code, _const_block("8", self.nb), _digits(np.arange(self.nb), 5)]
        )
        c_codes = np.array([np.frombuffer(c.encode(), dtype=np.uint8) for c in self.countries])
        party_ids = _ascii_column(
            [_const_block("OS", self.no), c_codes[self.o_country], _digits(np.arange(self.no), 6)]
        )
        # HS code: HS6 + two Chinese digits (8), and often two inspection digits (10).
        rng = self.rng
        suffixes, suf_tab = self._suffix_table()
        suf = _categorical(rng, suf_tab, self.prod)
        if self.suffix is not None:  # drawn before the risk (hs6_origin world)
            suf = self.suffix
        ten = rng.random(n) < 0.7
        ciq = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
        hs8_code = self.prod * len(suffixes) + suf
        hs8_dict = [p.hs6 + s_ for p in self.products for s_ in suffixes]
        hs10_dict = [h + c for h in hs8_dict for c in ("00", "10", "99")]
        hs_codes = np.where(ten, len(hs8_dict) + hs8_code * 3 + ciq, hs8_code)
        hs_code = _take(hs8_dict + hs10_dict, hs_codes)
        units = [p.unit for p in self.products]
        ports = [p[0] for p in self.ports]
        cur_codes = list(cat.USD_PER_UNIT)
        declarations = {
            "declaration_id": decl_id,
            "declared_at": _timestamps(self.t),
            "direction": _take(list(DIRECTIONS), np.where(self.is_import, 0, 1)),
            "port_code": _take(ports, self.port),
            "trade_mode": _take(list(TRADE_MODES), self.mode),
            "hs_code": hs_code,
            "origin_country": _take(self.countries, self.origin),
            "enterprise_id": pc.take(ent_ids, pa.array(self.ent)),
            "declarant_id": pc.take(broker_ids, pa.array(self.broker, mask=~self.has_broker)),
            "overseas_party_id": pc.take(party_ids, pa.array(self.party, mask=~self.has_party)),
            "destination_country": _take(self.countries, self.dest),
            "transport_mode": _take(list(TRANSPORT_MODES), self.transport),
            "goods_description": _take([p.description for p in self.products], self.prod),
            "quantity": pa.array(self.quantity),
            "quantity_unit": _take(units, self.prod),
            "net_weight_kg": pa.array(self.weight),
            "declared_value": pa.array(self.value),
            "currency": _take(cur_codes, self.currency),
            "legal_inspection": pa.array(self.legal),
            "third_party_certificate": pa.array(self.cert),
        }
        columns = {c: declarations[c] for c in TABLES["declarations"].names}
        if self.package is not None:  # an extra column, declared as an attribute by a mapping
            columns[wd.ATTRIBUTE_COLUMN] = _take(list(wd.PACKAGE_TYPES), self.package)
        self.tables["declarations"] = pa.table(columns)
        idx = self.insp_idx
        order = np.argsort(self.insp_t, kind="stable")
        inspections = {
            "declaration_id": pc.take(decl_id, pa.array(idx[order])),
            "inspected_at": _timestamps(self.insp_t[order]),
            "selection": _take(list(SELECTIONS), self.insp_sel[order]),
            "result": _take(list(RESULTS), self.insp_nc[order].astype(np.int64)),
            "hazard_type": _take(list(HAZARD_TYPES), self.insp_haz[order]),
            "severity": _take(list(INSPECTION_SEVERITIES), self.insp_sev[order]),
            "disposal": _take(list(DISPOSALS), self.insp_disp[order]),
        }
        self.tables["inspections"] = pa.table(
            {c: inspections[c] for c in TABLES["inspections"].names}
        )
        words = (
            "Hengtai",
            "Xinda",
            "Jinhai",
            "Ruifeng",
            "Huamei",
            "Dongsheng",
            "Yuanlong",
            "Kaida",
            "Zhongcheng",
            "Baoli",
            "Tianrun",
            "Minghui",
        )
        kinds = ("Industrial", "Trading", "E-commerce", "Supply Chain")
        w1 = rng.integers(0, len(words), self.ne)
        w2 = rng.integers(0, len(words), self.ne)
        names = pc.binary_join_element_wise(
            _take([r[0] for r in cat.REGIONS], self.e_region),
            _take(list(words), w1),
            _take(list(words), w2),
            _take(list(kinds), self.e_type),
            pc.cast(pa.array(np.arange(self.ne)), pa.string()),
            pa.scalar("Co., Ltd."),
            " ",
        )
        enterprises = {
            "enterprise_id": ent_ids,
            "name": names,
            "registered_at": _timestamps(self.e_registered),
            "enterprise_type": _take(list(ENTERPRISE_TYPES), self.e_type),
            "region": _take([r[0] for r in cat.REGIONS], self.e_region),
        }
        self.tables["enterprises"] = pa.table(
            {c: enterprises[c] for c in TABLES["enterprises"].names}
        )
        credit = {
            "enterprise_id": pc.take(ent_ids, pa.array(self.c_ent)),
            "effective_from": _timestamps(self.c_t),
            "rating": _take(list(CREDIT_RATINGS), self.c_rating),
        }
        self.tables["credit_ratings"] = pa.table(
            {c: credit[c] for c in TABLES["credit_ratings"].names}
        )
        sig = self.sig
        m = len(sig["t"])
        sig_ids = _ascii_column([_const_block("S", m), _digits(np.arange(1, m + 1), 9)])
        desc = [
            "consumer complaint about quality",
            "enterprise self-report of a quality problem",
            "media report on product safety",
            "injury linked to a product",
            "foodborne illness cluster",
            "counterfeit goods report",
            "foreign notification of a nonconforming product",
            "product recall",
            "market sampling test failed",
        ]
        signals = {
            "signal_id": sig_ids,
            "reported_at": _timestamps(sig["t"]),
            "channel": _take(list(SIGNAL_CHANNELS), sig["ch"]),
            "enterprise_id": pc.take(
                ent_ids, pa.array(np.maximum(sig["ent"], 0), mask=sig["ent"] < 0)
            ),
            "overseas_party_id": pc.take(
                party_ids, pa.array(np.maximum(sig["party"], 0), mask=sig["party"] < 0)
            ),
            "hs_code": _take(self.hs_dict, sig["hs"]),
            "origin_country": _take(self.countries, sig["origin"]),
            "severity": _take(list(SIGNAL_SEVERITIES), sig["sev"]),
            "hazard_type": _take(list(HAZARD_TYPES), sig["haz"]),
            "source": _take(self.sig_sources, sig["src"]),
            "description": _take(desc, sig["ch"]),
        }
        self.tables["risk_signals"] = pa.table(
            # hs_codes and mapping_rule are filled by mapped feeds only (demo/rasff.py)
            {c: signals[c] for c in TABLES["risk_signals"].names if c in signals}
        )
        truth = {
            "declaration_id": decl_id,
            "declared_at": _timestamps(self.t),
            "p_true": pa.array(self.p),
            "critical_p_true": pa.array(self.p_crit),
            "logit": pa.array(self.logit),
        }
        for k, v in self.comp.items():
            truth[f"logit_{k}"] = pa.array(v)
        truth["enterprise_quality"] = pa.array(self.comp["enterprise"])
        ob_names = [f"OB{o['k'] + 1}" for o in self.outbreak_defs]
        truth["outbreak_id"] = _take(ob_names, self.ob_id)
        truth["legacy_score"] = pa.array(self.legacy)
        self.truth = pa.table(truth)
        self.outbreaks = self._outbreak_report(ob_names)

    def _outbreak_report(self, names: list[str]) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        inspected = np.zeros(self.n, dtype=bool)
        inspected[self.insp_idx] = True
        nc_all = np.zeros(self.n, dtype=bool)
        nc_all[self.insp_idx] = self.insp_nc
        for ob, name in zip(self.outbreak_defs, names, strict=True):
            match = (self.hs4 == self.hs4_index[ob["hs4"]]) & (
                self.origin == self.cidx[ob["origin"]]
            )
            t0 = START_S + ob["start"] * DAY
            t1 = START_S + ob["end"] * DAY
            inside = match & (self.t >= t0) & (self.t < t1)
            outside = match & ~inside
            p_in = float(self.p[inside].mean()) if inside.any() else float("nan")
            p_out = float(self.p[outside].mean()) if outside.any() else float("nan")

            def iso(sec: int) -> str:
                return (np.datetime64(int(sec) + TZ_OFFSET_S, "s").astype(str)) + "+08:00"

            out.append(
                {
                    "id": name,
                    "hs4": ob["hs4"],
                    "origin_country": ob["origin"],
                    "start": iso(t0),
                    "end": iso(t1),
                    "peak_odds_multiplier": ob["mult"],
                    "rate_multiplier": round(p_in / p_out, 3) if p_out > 0 else None,
                    "mean_p_true_inside": round(p_in, 5),
                    "mean_p_true_outside": round(p_out, 5),
                    "hazard_type": ob["hazard"],
                    "critical_share_of_outbreak_nonconformities": round(
                        float(1 / (1 + np.exp(-ob["crit"]))), 3
                    ),
                    "level": ob["level"],
                    "level_name": cat.LEVEL_NAMES[ob["level"]],
                    "first_alert_at": iso(ob["first_alert"]) if ob["first_alert"] else None,
                    "declarations_inside": int(inside.sum()),
                    "inspected_inside": int((inside & inspected).sum()),
                    "nonconforming_inside": int((inside & nc_all).sum()),
                }
            )
        return out


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _to_csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as ISO-8601 local time with the +08:00 offset, as the contract shows them."""
    cols = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            sec = (
                pc.cast(col, pa.timestamp("s", tz=TZ))
                .cast(pa.int64())
                .to_numpy(zero_copy_only=False)
            )
            text = np.datetime_as_string((sec + TZ_OFFSET_S).astype("datetime64[s]"), unit="s")
            col = pc.binary_join_element_wise(pa.array(text), "+08:00", "")
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        pacsv.write_csv(_to_csv_table(table), path)


def write_demo_data(
    out: Path,
    n_declarations: int,
    seed: int,
    fmt: str = "parquet",
    progress: bool = False,
    world: str = "default",
    signal_intensity: float = 1.0,
) -> dict[str, int]:
    """Write demo contract tables and a separate ground-truth folder.

    Parameters
    ----------
    out
        Folder to write into (created if missing). Gets ``declarations``, ``inspections``,
        ``enterprises``, ``credit_ratings`` and ``risk_signals`` as ``.parquet`` or ``.csv``, and
        ``ground_truth/declaration_truth.parquet`` plus ``ground_truth/outbreaks.json``.
    n_declarations
        Number of declarations (about three years ending 2026-10-31, Asia/Shanghai).
    seed
        Random seed; the same seed gives byte-identical files.
    fmt
        ``"parquet"`` (timestamps tz-aware) or ``"csv"`` (ISO-8601 with ``+08:00``).
    progress
        Show a rich progress bar over the generation steps.
    world
        Where the risk is planted (``demo/worlds.py``, ``docs/demo-data.md``); ``"default"`` is
        today's world, byte for byte.
    signal_intensity
        Multiplier of the rate of every risk-signal channel, the reports about planted outbreaks
        included (issue 17 replays 0.5, 1 and 2); 1 is today's.

    Returns
    -------
    dict[str, int]
        Rows written per contract table.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if n_declarations < 100:
        raise ValueError("n_declarations must be at least 100")
    out = Path(out)
    sim = _Sim(int(n_declarations), int(seed), world, signal_intensity)

    def write_all() -> None:
        sim.build_tables()
        out.mkdir(parents=True, exist_ok=True)
        for name, table in sim.tables.items():
            _write(table, out / f"{name}.{fmt}", fmt)
        gt = out / "ground_truth"
        gt.mkdir(exist_ok=True)
        assert sim.truth is not None
        pq.write_table(sim.truth, gt / "declaration_truth.parquet", compression="zstd")
        (gt / "outbreaks.json").write_text(
            json.dumps(sim.outbreaks, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    steps: list[tuple[str, Callable[[], None]]] = [
        ("calendar", sim.calendar),
        ("enterprises", sim.enterprises),
        ("overseas parties", sim.overseas),
        ("declarations", sim.declarations),
        ("goods and values", sim.goods),
        ("credit ratings", sim.credit),
        ("hidden risk", sim.risk),
        ("risk signals", sim.signals),
        ("inspections", sim.inspections),
        ("writing tables", write_all),
    ]
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]demo-data[/] {task.description:<18}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
        ) as bar:
            task = bar.add_task(steps[0][0], total=len(steps))
            for label, fn in steps:
                bar.update(task, description=label)
                fn()
                bar.advance(task)
    else:
        for _, fn in steps:
            fn()
    return {name: table.num_rows for name, table in sim.tables.items()}
