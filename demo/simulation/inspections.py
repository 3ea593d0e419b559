"""The port's inspections: which declarations are inspected (random monitoring, targeted, the
legacy rule) and what they find."""

from __future__ import annotations

import numpy as np
import pandas as pd

from demo import catalog as cat
from demo.simulation.common import (
    DAY,
    RANDOM_SHARE,
    START_S,
    TARGETED_SHARE,
    categorical,
)
from demo.simulation.state import SimState
from features.contract import (
    CREDIT_RATINGS,
    DISPOSALS,
    HAZARD_TYPES,
    SELECTIONS,
    TRADE_MODES,
)
from policy.legacy import legacy_score


class InspectionSteps(SimState):
    """Step 9: inspections."""

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
        haz = categorical(rng, haz_tab, self.prod[idx])
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
        disp = categorical(rng, disp_tab, np.where(nc, sev + 1, 0))
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
