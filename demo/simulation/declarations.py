"""The declarations: who declares what from where, the goods and values, credit ratings, and the
hidden risk of each declaration (the planted world and outbreaks included)."""

from __future__ import annotations

from typing import cast

import numpy as np

from demo import catalog as cat
from demo import worlds as wd
from demo.simulation.common import (
    DAY,
    END_S,
    N_DAYS,
    NOISE_SD,
    START_S,
    TARGET_MEAN_P,
    categorical,
    grouped_pick,
    sigmoid,
    suffix_table,
)
from demo.simulation.state import SimState
from features.contract import (
    CREDIT_RATINGS,
    ENTERPRISE_TYPES,
    TRADE_MODES,
)


class DeclarationSteps(SimState):
    """Steps 4-7: declarations, goods and values, credit ratings, hidden risk."""

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
        imp_origin = categorical(rng, origin_tab, prod)
        dest_tab = np.zeros((1, len(self.countries)))
        for c, dw in cat.EXPORT_DESTINATIONS.items():
            dest_tab[0, self.cidx[c]] = dw
        dest = categorical(rng, dest_tab, np.zeros(n, dtype=np.int64))
        self.origin = np.where(self.is_import, imp_origin, self.cidx["CN"])
        self.dest = np.where(self.is_import, -1, dest)
        # Overseas party: loyal partner most of the time.
        partner_country = np.where(self.is_import, self.origin, self.dest)
        group = self.group_lookup[np.where(self.is_import, 0, 1), self.sector, partner_country]
        loyal = rng.random(n) < 0.65
        u = np.where(loyal, self.e_pref_u[ent], rng.random(n))
        self.party = grouped_pick(self.o_group, self.o_weight, group, u)
        has_party = rng.random(n) < np.where(platform, 0.75, 0.97)
        self.has_party = has_party
        # Trade mode by enterprise type.
        modes = {m: i for i, m in enumerate(TRADE_MODES)}
        tm = np.zeros((len(ENTERPRISE_TYPES), len(TRADE_MODES)))
        tm[ENTERPRISE_TYPES.index("manufacturer")] = [0.55, 0.33, 0.0, 0.0, 0.07, 0.05]
        tm[ENTERPRISE_TYPES.index("trader")] = [0.78, 0.0, 0.04, 0.07, 0.07, 0.04]
        tm[ENTERPRISE_TYPES.index("ecommerce_platform")] = [0.03, 0.0, 0.92, 0.0, 0.05, 0.0]
        tm[ENTERPRISE_TYPES.index("other")] = [0.7, 0.0, 0.0, 0.0, 0.1, 0.2]
        mode = categorical(rng, tm, self.e_type[ent])
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
        self.transport = categorical(rng, tr, kind)
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
        cert_p = sigmoid(
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
        drift = self.e_delta[ent] * sigmoid((day - self.e_tc[ent]) / 30.0)
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
            if sigmoid(x + mid).mean() > TARGET_MEAN_P:
                hi = mid
            else:
                lo = mid
        comp["intercept"] = np.full(n, (lo + hi) / 2)
        logit = x + comp["intercept"]
        self.comp = comp
        self.logit = logit
        self.p = sigmoid(logit)
        # Share of the odds owed to the outbreak: which nonconformities it explains.
        self.ob_share = np.where(
            comp["outbreak"] > 0, 1.0 - sigmoid(logit - comp["outbreak"]) / self.p, 0.0
        )
        self.ob_id = ob_id
        crit_base = np.array([cat.SECTORS[p.sector].crit_logit for p in self.products])[self.prod]
        pc_base = sigmoid(crit_base - 0.8 + 0.35 * comp["enterprise"])
        self.p_crit_given_nc = (1 - self.ob_share) * pc_base + self.ob_share * sigmoid(ob_crit)
        self.p_crit = self.p * self.p_crit_given_nc

    def _plant_world(self, comp: dict[str, np.ndarray]) -> None:
        """Move risk to the world's grain (``demo/worlds.py``); the default world draws nothing."""
        w, wr, n = self.world, self.wrng, self.n
        if w == "default":
            return
        if w == "weak_enterprise":
            comp["enterprise"] = wd.WEAK_ENTERPRISE_SCALE * comp["enterprise"]
        elif w == "hs6_origin":
            # The catalogue has about one HS6 per HS4, so the finer grain is the 8-digit line.
            suffixes, tab = suffix_table(self.products)
            self.suffix = categorical(wr, tab, self.prod)
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
            habit = categorical(wr, sector_mix, self.e_sector)
            own = categorical(wr, sector_mix, self.sector)
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
        self.outbreak_defs = []
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
