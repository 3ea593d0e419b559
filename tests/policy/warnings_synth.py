"""Small synthetic contract tables with one planted outbreak, for the warnings tests.

Canonical dtypes as ``features.store.Store.read`` returns them (``str`` ids, UTC timestamps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01", tz="UTC")
OUTBREAK_HS4, OUTBREAK_ORIGIN = "0303", "VN"


def make_tables(
    n: int = 6000,
    days: int = 400,
    outbreak_day: int = 340,
    outbreak_rate: float = 0.6,
    base_rate: float = 0.04,
    inspect_share: float = 0.25,
    seed: int = 0,
    outbreak_inspect_share: float = 0.6,
    signals: bool = True,
) -> dict[str, pd.DataFrame]:
    """Declarations over ``days`` days; HS4 0303 from VN turns bad (critical, health) from
    ``outbreak_day`` on, inspected at ``outbreak_inspect_share`` once it turns bad. With
    ``signals`` three risk signals about it follow the start."""
    rng = np.random.default_rng(seed)
    t = START + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D")
    hs4 = rng.choice(["0303", "9503", "8516", "3304"], n, p=[0.3, 0.3, 0.2, 0.2])
    origin = rng.choice(["VN", "DE", "JP", "TH"], n)
    ent = np.array([f"E{int(i):03d}" for i in rng.integers(0, 40, n)])
    party = np.array([f"P{int(i):03d}" for i in rng.integers(0, 30, n)])
    port = rng.choice(["CNSHA", "CNNGB", "CNSZX", "CNTAO"], n)
    decl = pd.DataFrame(
        {
            "declaration_id": [f"D{i:06d}" for i in range(n)],
            "declared_at": t,
            "direction": "import",
            "port_code": port,
            "trade_mode": "general_trade",
            "hs_code": [h + "10" for h in hs4],
            "origin_country": origin,
            "enterprise_id": ent,
            "overseas_party_id": party,
            "declared_value": rng.uniform(100, 5000, n),
            "currency": "USD",
            "declared_value_usd": rng.uniform(100, 5000, n),
        }
    )
    for c in (
        "declaration_id",
        "direction",
        "port_code",
        "trade_mode",
        "hs_code",
        "origin_country",
        "enterprise_id",
        "overseas_party_id",
        "currency",
    ):
        decl[c] = decl[c].astype("str")
    in_outbreak = (
        (hs4 == OUTBREAK_HS4)
        & (origin == OUTBREAK_ORIGIN)
        & (t >= START + pd.Timedelta(days=outbreak_day))
    )
    p_bad = np.where(in_outbreak, outbreak_rate, base_rate)
    inspected = rng.uniform(size=n) < np.where(in_outbreak, outbreak_inspect_share, inspect_share)
    bad = rng.uniform(size=n) < p_bad
    idx = np.flatnonzero(inspected)
    sev = np.where(
        in_outbreak[idx], "critical", rng.choice(["minor", "major", "critical"], len(idx))
    )
    haz = np.where(in_outbreak[idx], "health", rng.choice(["safety", "other"], len(idx)))
    insp = pd.DataFrame(
        {
            "declaration_id": decl["declaration_id"].to_numpy()[idx],
            "inspected_at": t[idx] + pd.Timedelta(days=2),
            "selection": "random",
            "result": np.where(bad[idx], "nonconforming", "conforming"),
            "hazard_type": np.where(bad[idx], haz, None),
            "severity": np.where(bad[idx], sev, None),
        }
    )
    for c in ("declaration_id", "selection", "result", "hazard_type", "severity"):
        insp[c] = insp[c].astype("str")
    insp.loc[~bad[idx], ["hazard_type", "severity"]] = pd.NA
    sig = pd.DataFrame(
        {
            "signal_id": ["S1", "S2", "S3"],
            "reported_at": [START + pd.Timedelta(days=outbreak_day + d) for d in (5, 9, 12)],
            "channel": ["foreign_alert", "consumer_complaint", "monitoring_test"],
            "enterprise_id": pd.array([None, None, None], dtype="str"),
            "overseas_party_id": pd.array([None, None, None], dtype="str"),
            "hs_code": pd.array(["030310", "0303", "03"], dtype="str"),
            "origin_country": pd.array(["VN", "VN", None], dtype="str"),
            "severity": pd.array(["high", "serious", "low"], dtype="str"),
            "hazard_type": pd.array(["health", "health", None], dtype="str"),
        }
    )
    if not signals:
        sig = sig.iloc[:0]
    empty = pd.DataFrame({"enterprise_id": pd.Series(dtype="str")})
    return {
        "declarations": decl,
        "inspections": insp,
        "risk_signals": sig,
        "enterprises": empty,
        "credit_ratings": empty.copy(),
    }


def new_declaration(i: int, **fields: object) -> dict[str, object]:
    """One declaration in contract fields (for scoring or matching)."""
    row: dict[str, object] = {
        "declaration_id": f"NEW{i:05d}",
        "declared_at": "2025-02-10T10:00:00+08:00",
        "direction": "import",
        "port_code": "CNSHA",
        "trade_mode": "general_trade",
        "hs_code": "030310",
        "origin_country": "VN",
        "enterprise_id": "E001",
        "overseas_party_id": "P001",
        "declared_value": 1000.0,
        "currency": "USD",
    }
    row.update(fields)
    return row


def reports(
    n: int, start: int, hs: str, origin: str, channels: list[str], sources: list[str], tag: str
) -> pd.DataFrame:
    """``n`` reports about ``hs`` x ``origin``, three days apart from day ``start``, cycling
    through the channels and sources given."""
    return pd.DataFrame(
        {
            "signal_id": pd.array([f"{tag}{i}" for i in range(n)], dtype="str"),
            "reported_at": [START + pd.Timedelta(days=start + 3 * i) for i in range(n)],
            "channel": pd.array([channels[i % len(channels)] for i in range(n)], dtype="str"),
            "enterprise_id": pd.array([None] * n, dtype="str"),
            "overseas_party_id": pd.array([None] * n, dtype="str"),
            "hs_code": pd.array([hs] * n, dtype="str"),
            "origin_country": pd.array([origin] * n, dtype="str"),
            "severity": pd.array(["medium"] * n, dtype="str"),
            "hazard_type": pd.array(["safety"] * n, dtype="str"),
            "source": pd.array([sources[i % len(sources)] for i in range(n)], dtype="str"),
        }
    )


def with_reports(tables: dict[str, pd.DataFrame], *frames: pd.DataFrame) -> dict:
    """The tables with ``frames`` of reports added beside a history of ordinary reports."""
    # a year of ordinary reports about busy pairs: the history the prior is pooled from
    history = [
        reports(12, 10 + 3 * j, hs, org, ["foreign_alert"], ["RASFF"], f"B{hs}{org}")
        for j, (hs, org) in enumerate([("9503", "TH"), ("3304", "JP"), ("0303", "DE")])
    ]
    sig = pd.concat([tables["risk_signals"], *history, *frames], ignore_index=True)
    return {**tables, "risk_signals": sig}
