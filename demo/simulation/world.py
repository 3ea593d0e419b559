"""The world the trade happens in: the calendar, the enterprises (with their declarants) and the
overseas parties."""

from __future__ import annotations

import numpy as np

from demo import catalog as cat
from demo.simulation.common import (
    CHINESE_NEW_YEAR,
    DAY,
    N_DAYS,
    START_LOCAL,
    START_S,
    choice,
    sigmoid,
)
from demo.simulation.state import SimState
from features.contract import (
    ENTERPRISE_TYPES,
)


class WorldSteps(SimState):
    """Steps 1-3: declaration times, enterprises, overseas parties."""

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
        etype = choice(
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
        self.e_sector = choice(rng, sector_w, ne)
        # Importer or exporter by the sector's balance; platforms mostly import parcels.
        imp_share = np.array([s.import_share for s in self.sectors])[self.e_sector]
        importer = rng.random(ne) < imp_share
        self.e_import_p = np.where(platform, 0.9, np.where(importer, 0.94, 0.06))
        port_w = np.array([p[3] for p in self.ports])
        home = rng.choice(len(self.ports), size=ne, p=port_w / port_w.sum())
        cbec_home = np.array([self.port_index[p] for p in cat.CBEC_PORTS])[
            choice(rng, cat.CBEC_PORTS, ne)
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
        manip = rng.random(ne) < sigmoid(-2.6 + 1.3 * q0)
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
