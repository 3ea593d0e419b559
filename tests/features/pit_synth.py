"""Small synthetic contract tables in canonical dtypes (for tests and, until the demo generator
lands, for the benchmark)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import (
    CREDIT_RATINGS,
    DIRECTIONS,
    ENTERPRISE_TYPES,
    HAZARD_TYPES,
    SELECTIONS,
    SIGNAL_CHANNELS,
    SIGNAL_SEVERITIES,
    TRADE_MODES,
    TRANSPORT_MODES,
)

T0 = pd.Timestamp("2023-01-01", tz="UTC")

# Declared crosses of every kind: pairs with the full code, a mode, an attribute, and a triple.
CROSSES = [
    "ent",
    "hs6_x_org",
    "hsc_x_trn",
    "port_x_trd",
    "dcl_x_attr_office_group",
    "hs4_x_org_x_trd",
]


def _ids(prefix: str, codes: np.ndarray) -> pd.Series:
    return pd.Series([f"{prefix}{c:05d}" for c in codes], dtype="str")


def _with_na(s: pd.Series, rng: np.random.Generator, share: float) -> pd.Series:
    return s.where(rng.random(len(s)) >= share)


def make_tables(
    n: int = 2000,
    seed: int = 0,
    days: int = 500,
    n_ent: int | None = None,
    time_unit: str = "h",
    attributes: bool = False,
) -> dict[str, pd.DataFrame]:
    """Random contract tables.

    ``time_unit`` coarsens timestamps ("h" or "D" makes many ties); entity pools scale with ``n``
    so that some entities are seen once and some often.
    """
    rng = np.random.default_rng(seed)
    n_ent = n_ent or max(5, n // 20)
    ent = rng.zipf(1.6, n) % n_ent
    secs = rng.integers(0, days * 86400, n)
    declared = (
        (T0 + pd.to_timedelta(secs, unit="s")).floor(time_unit)
        if time_unit
        else (T0 + pd.to_timedelta(secs, unit="s"))
    )
    hs6 = rng.zipf(1.4, n) % max(8, n // 50)
    hs_code = pd.Series(
        [
            f"{10 + h % 5:02d}{(h // 5) % 4:02d}{h % 17:02d}" + ("1234" if i % 3 == 0 else "")
            for i, h in enumerate(hs6)
        ],
        dtype="str",
    )
    countries = np.array(["CN", "DE", "US", "VN", "JP", "KR", "TH", "IT"])
    usd = np.round(rng.lognormal(8, 1.5, n), 2)
    usd[rng.random(n) < 0.02] = 0.0
    kg = np.round(rng.lognormal(5, 1.2, n), 3)
    kg_s = pd.Series(kg).where(rng.random(n) >= 0.05)
    decl = pd.DataFrame(
        {
            "declaration_id": _ids("D", np.arange(n)),
            "declared_at": pd.Series(declared).astype("datetime64[ns, UTC]"),
            "direction": pd.Series(rng.choice(DIRECTIONS, n, p=[0.8, 0.2]), dtype="str"),
            "port_code": _ids("P", rng.integers(0, 6, n)),
            "trade_mode": pd.Series(rng.choice(TRADE_MODES, n), dtype="str"),
            "hs_code": hs_code,
            "origin_country": pd.Series(rng.choice(countries, n), dtype="str"),
            "enterprise_id": _ids("E", ent),
            "declarant_id": _with_na(_ids("B", rng.integers(0, max(3, n // 100), n)), rng, 0.1),
            "overseas_party_id": _with_na(_ids("O", rng.zipf(1.5, n) % max(5, n // 15)), rng, 0.15),
            "transport_mode": _with_na(
                pd.Series(rng.choice(TRANSPORT_MODES, n), dtype="str"), rng, 0.1
            ),
            "net_weight_kg": kg_s.astype("float64"),
            "declared_value": usd,
            "currency": pd.Series(["USD"] * n, dtype="str"),
            "declared_value_usd": usd.astype("float64"),
            "legal_inspection": rng.random(n) < 0.3,
            "third_party_certificate": rng.random(n) < 0.1,
        }
    )
    # Issues ingest recorded (a few rows with one or two); a generator of its own, so the other
    # columns stay as they were.
    decl["dq_issue_count"] = np.random.default_rng(seed + 7919).choice(
        np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], dtype=np.int32), n
    )
    if attributes:
        decl["office_group"] = _with_na(
            pd.Series(rng.choice(["a", "b", "c"], n), dtype="str"), rng, 0.05
        )
        decl["tax_rate"] = rng.choice([0.0, 5.0, 8.0, np.nan], n)

    inspected = rng.random(n) < 0.3
    ii = np.flatnonzero(inspected)
    lag = rng.integers(0, 40 * 86400, len(ii))
    lag[rng.random(len(ii)) < 0.1] = 0  # result at the declaration instant
    insp_at = decl["declared_at"].iloc[ii].reset_index(drop=True) + pd.to_timedelta(lag, unit="s")
    if time_unit:
        insp_at = insp_at.dt.ceil(time_unit)
    nc = rng.random(len(ii)) < 0.25
    sev = np.where(nc, rng.choice(["minor", "major", "critical"], len(ii)), None)
    insp = pd.DataFrame(
        {
            "declaration_id": decl["declaration_id"].iloc[ii].reset_index(drop=True),
            "inspected_at": insp_at.astype("datetime64[ns, UTC]"),
            "selection": pd.Series(rng.choice(SELECTIONS, len(ii)), dtype="str"),
            "result": pd.Series(np.where(nc, "nonconforming", "conforming"), dtype="str"),
            "hazard_type": pd.Series(
                np.where(nc, rng.choice(HAZARD_TYPES, len(ii)), None), dtype="str"
            ),
            "severity": pd.Series(sev, dtype="str"),
            "disposal": pd.Series([None] * len(ii), dtype="str"),
        }
    )
    # Results arrive out of order: shuffle rows.
    insp = insp.iloc[rng.permutation(len(insp))].reset_index(drop=True)

    ents = pd.Series(sorted(set(decl["enterprise_id"])), dtype="str")
    m = len(ents)
    reg = T0 - pd.to_timedelta(rng.integers(-100, 2000, m), unit="D")
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ents,
            "name": ents,
            "registered_at": pd.Series(reg)
            .astype("datetime64[ns, UTC]")
            .where(rng.random(m) > 0.1),
            "enterprise_type": _with_na(
                pd.Series(rng.choice(ENTERPRISE_TYPES, m), dtype="str"), rng, 0.1
            ),
            "region": pd.Series(["x"] * m, dtype="str"),
        }
    )
    k = max(3, m // 2)
    cr_t = (T0 + pd.to_timedelta(rng.integers(-50, days, k), unit="D")).floor("D")
    credit = pd.DataFrame(
        {
            "enterprise_id": pd.Series(rng.choice(ents.to_numpy(), k), dtype="str"),
            "effective_from": pd.Series(cr_t).astype("datetime64[ns, UTC]"),
            "rating": pd.Series(rng.choice(CREDIT_RATINGS, k), dtype="str"),
        }
    )
    s = max(10, n // 10)
    sig_t = T0 + pd.to_timedelta(rng.integers(0, days * 86400, s), unit="s")
    if time_unit:
        sig_t = sig_t.floor(time_unit)
    pick = rng.integers(0, n, s)
    hs_len = rng.choice([2, 4, 6, 8], s)
    ent_s = decl["enterprise_id"].to_numpy(dtype=object)[pick]
    osp_s = decl["overseas_party_id"].to_numpy(dtype=object, na_value=None)[pick]
    org_s = decl["origin_country"].to_numpy(dtype=object)[pick]
    hs_s = np.array(
        [h[:L] for h, L in zip(decl["hs_code"].to_numpy(dtype=object)[pick], hs_len, strict=False)],
        dtype=object,
    )
    kind = rng.integers(0, 6, s)
    signals = pd.DataFrame(
        {
            "signal_id": _ids("S", np.arange(s)),
            "reported_at": pd.Series(sig_t).astype("datetime64[ns, UTC]"),
            "channel": pd.Series(rng.choice(SIGNAL_CHANNELS, s), dtype="str"),
            "enterprise_id": pd.Series(np.where(np.isin(kind, [0, 4]), ent_s, None), dtype="str"),
            "overseas_party_id": pd.Series(np.where(kind == 1, osp_s, None), dtype="str"),
            "hs_code": pd.Series(np.where(np.isin(kind, [2, 3, 4]), hs_s, None), dtype="str"),
            "origin_country": pd.Series(np.where(np.isin(kind, [3, 5]), org_s, None), dtype="str"),
            "severity": _with_na(
                pd.Series(rng.choice(SIGNAL_SEVERITIES, s), dtype="str"), rng, 0.2
            ),
            "hazard_type": pd.Series([None] * s, dtype="str"),
            "source": pd.Series(["test"] * s, dtype="str"),
            "description": pd.Series([""] * s, dtype="str"),
        }
    )
    # A signal must name a subject: drop rows whose only subject was a missing overseas party.
    subj = (
        signals[["enterprise_id", "overseas_party_id", "hs_code", "origin_country"]]
        .notna()
        .any(axis=1)
    )
    signals = signals[subj].reset_index(drop=True)
    return {
        "declarations": decl,
        "inspections": insp,
        "enterprises": enterprises,
        "credit_ratings": credit,
        "risk_signals": signals,
    }
