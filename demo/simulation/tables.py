"""The contract tables and the ground truth, assembled from the simulation's arrays."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from demo import catalog as cat
from demo import worlds as wd
from demo.simulation.common import (
    DAY,
    START_S,
    TZ_OFFSET_S,
    ascii_column,
    categorical,
    const_block,
    digits,
    suffix_table,
    take,
    timestamps,
)
from demo.simulation.state import SimState
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


class TableSteps(SimState):
    """Step 10: contract tables, ground truth and the outbreak report."""

    # ---------------------------------------------------------------- tables
    def build_tables(self) -> None:
        """Assemble the contract tables and the ground truth as Arrow tables."""
        n = self.n
        # Declaration numbers: customs district (4) + year (4) + I/E flag (1) + sequence (9).
        district = np.array([np.frombuffer(p[1].encode(), dtype=np.uint8) for p in self.ports])
        local_year = (self.t + TZ_OFFSET_S).astype("datetime64[s]").astype("datetime64[Y]")
        year = local_year.astype(np.int64) + 1970
        decl_id = ascii_column(
            [
                district[self.port],
                digits(year, 4),
                digits(self.is_import.astype(np.int64), 1),
                digits(np.arange(1, n + 1), 9),
            ]
        )
        region_codes = [r[1] for r in cat.REGIONS]
        e_region_code = np.array(
            [np.frombuffer(region_codes[r].encode(), dtype=np.uint8) for r in self.e_region]
        )
        ent_ids = ascii_column(
            [e_region_code, digits(self.e_type + 1, 1), digits(np.arange(self.ne), 5)]
        )
        b_code = np.array(
            [np.frombuffer(cat.REGIONS[r][1].encode(), dtype=np.uint8) for r in self.b_region]
        )
        broker_ids = ascii_column(
            [b_code, const_block("8", self.nb), digits(np.arange(self.nb), 5)]
        )
        c_codes = np.array([np.frombuffer(c.encode(), dtype=np.uint8) for c in self.countries])
        party_ids = ascii_column(
            [const_block("OS", self.no), c_codes[self.o_country], digits(np.arange(self.no), 6)]
        )
        # HS code: HS6 + two Chinese digits (8), and often two inspection digits (10).
        rng = self.rng
        suffixes, suf_tab = suffix_table(self.products)
        suf = categorical(rng, suf_tab, self.prod)
        if self.suffix is not None:  # drawn before the risk (hs6_origin world)
            suf = self.suffix
        ten = rng.random(n) < 0.7
        ciq = rng.choice(3, size=n, p=[0.7, 0.2, 0.1])
        hs8_code = self.prod * len(suffixes) + suf
        hs8_dict = [p.hs6 + s_ for p in self.products for s_ in suffixes]
        hs10_dict = [h + c for h in hs8_dict for c in ("00", "10", "99")]
        hs_codes = np.where(ten, len(hs8_dict) + hs8_code * 3 + ciq, hs8_code)
        hs_code = take(hs8_dict + hs10_dict, hs_codes)
        units = [p.unit for p in self.products]
        ports = [p[0] for p in self.ports]
        cur_codes = list(cat.USD_PER_UNIT)
        declarations = {
            "declaration_id": decl_id,
            "declared_at": timestamps(self.t),
            "direction": take(list(DIRECTIONS), np.where(self.is_import, 0, 1)),
            "port_code": take(ports, self.port),
            "trade_mode": take(list(TRADE_MODES), self.mode),
            "hs_code": hs_code,
            "origin_country": take(self.countries, self.origin),
            "enterprise_id": pc.take(ent_ids, pa.array(self.ent)),
            "declarant_id": pc.take(broker_ids, pa.array(self.broker, mask=~self.has_broker)),
            "overseas_party_id": pc.take(party_ids, pa.array(self.party, mask=~self.has_party)),
            "destination_country": take(self.countries, self.dest),
            "transport_mode": take(list(TRANSPORT_MODES), self.transport),
            "goods_description": take([p.description for p in self.products], self.prod),
            "quantity": pa.array(self.quantity),
            "quantity_unit": take(units, self.prod),
            "net_weight_kg": pa.array(self.weight),
            "declared_value": pa.array(self.value),
            "currency": take(cur_codes, self.currency),
            "legal_inspection": pa.array(self.legal),
            "third_party_certificate": pa.array(self.cert),
        }
        columns = {c: declarations[c] for c in TABLES["declarations"].names}
        if self.package is not None:  # an extra column, declared as an attribute by a mapping
            columns[wd.ATTRIBUTE_COLUMN] = take(list(wd.PACKAGE_TYPES), self.package)
        self.tables["declarations"] = pa.table(columns)
        idx = self.insp_idx
        order = np.argsort(self.insp_t, kind="stable")
        inspections = {
            "declaration_id": pc.take(decl_id, pa.array(idx[order])),
            "inspected_at": timestamps(self.insp_t[order]),
            "selection": take(list(SELECTIONS), self.insp_sel[order]),
            "result": take(list(RESULTS), self.insp_nc[order].astype(np.int64)),
            "hazard_type": take(list(HAZARD_TYPES), self.insp_haz[order]),
            "severity": take(list(INSPECTION_SEVERITIES), self.insp_sev[order]),
            "disposal": take(list(DISPOSALS), self.insp_disp[order]),
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
            take([r[0] for r in cat.REGIONS], self.e_region),
            take(list(words), w1),
            take(list(words), w2),
            take(list(kinds), self.e_type),
            pc.cast(pa.array(np.arange(self.ne)), pa.string()),
            pa.scalar("Co., Ltd."),
            " ",
        )
        enterprises = {
            "enterprise_id": ent_ids,
            "name": names,
            "registered_at": timestamps(self.e_registered),
            "enterprise_type": take(list(ENTERPRISE_TYPES), self.e_type),
            "region": take([r[0] for r in cat.REGIONS], self.e_region),
        }
        self.tables["enterprises"] = pa.table(
            {c: enterprises[c] for c in TABLES["enterprises"].names}
        )
        credit = {
            "enterprise_id": pc.take(ent_ids, pa.array(self.c_ent)),
            "effective_from": timestamps(self.c_t),
            "rating": take(list(CREDIT_RATINGS), self.c_rating),
        }
        self.tables["credit_ratings"] = pa.table(
            {c: credit[c] for c in TABLES["credit_ratings"].names}
        )
        sig = self.sig
        m = len(sig["t"])
        sig_ids = ascii_column([const_block("S", m), digits(np.arange(1, m + 1), 9)])
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
            "reported_at": timestamps(sig["t"]),
            "channel": take(list(SIGNAL_CHANNELS), sig["ch"]),
            "enterprise_id": pc.take(
                ent_ids, pa.array(np.maximum(sig["ent"], 0), mask=sig["ent"] < 0)
            ),
            "overseas_party_id": pc.take(
                party_ids, pa.array(np.maximum(sig["party"], 0), mask=sig["party"] < 0)
            ),
            "hs_code": take(self.hs_dict, sig["hs"]),
            "origin_country": take(self.countries, sig["origin"]),
            "severity": take(list(SIGNAL_SEVERITIES), sig["sev"]),
            "hazard_type": take(list(HAZARD_TYPES), sig["haz"]),
            "source": take(self.sig_sources, sig["src"]),
            "description": take(desc, sig["ch"]),
        }
        self.tables["risk_signals"] = pa.table(
            # hs_codes and mapping_rule are filled by mapped feeds only (demo/rasff.py)
            {c: signals[c] for c in TABLES["risk_signals"].names if c in signals}
        )
        truth = {
            "declaration_id": decl_id,
            "declared_at": timestamps(self.t),
            "p_true": pa.array(self.p),
            "critical_p_true": pa.array(self.p_crit),
            "logit": pa.array(self.logit),
        }
        for k, v in self.comp.items():
            truth[f"logit_{k}"] = pa.array(v)
        truth["enterprise_quality"] = pa.array(self.comp["enterprise"])
        ob_names = [f"OB{o['k'] + 1}" for o in self.outbreak_defs]
        truth["outbreak_id"] = take(ob_names, self.ob_id)
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
