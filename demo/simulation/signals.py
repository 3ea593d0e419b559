"""Risk signals from the nine channels, the reports about planted outbreaks included."""

from __future__ import annotations

import numpy as np

from demo import catalog as cat
from demo.simulation.common import (
    DAY,
    END_S,
    N_DAYS,
    START_S,
    categorical,
)
from demo.simulation.state import SimState
from features.contract import (
    HAZARD_TYPES,
    SIGNAL_CHANNELS,
)


class SignalSteps(SimState):
    """Step 8: risk signals."""

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
        prod_hazard = categorical(rng, haz_tab, self.prod)
        consumer = np.array([cat.SECTORS[p.sector].consumer for p in self.products])[self.prod]
        sev_low = np.array([0.6, 0.3, 0.08, 0.02])
        sev_high = np.array([0.05, 0.25, 0.45, 0.25])

        def severity(idx: np.ndarray, alarm: np.ndarray) -> np.ndarray:
            tab = np.vstack([sev_low, sev_high])
            return categorical(rng, tab, (alarm > rng.random(len(idx))).astype(np.int64))

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
                categorical(rng, haz_tab, prd),
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
