"""A tiny world with a known answer for backtests: a tenth of the enterprises are bad (every
declaration nonconforming with probability 0.35, the others 0.01); nothing the legacy points
table reads says which (legal inspection, chapters, origins, credit are the same for all), so
the legacy rule ranks no better than chance, and an enterprise's inspection history says
everything. History: a 20 % random monitoring sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

T0 = pd.Timestamp("2025-01-01", tz="Asia/Shanghai").tz_convert("UTC")
DAYS = 455  # 2025-01-01 .. 2026-03-31
BAD_RATE, GOOD_RATE, BAD_SHARE = 0.35, 0.01, 0.10


def tiny_tables(n: int = 14_000, seed: int = 5, n_ent: int = 120) -> tuple[dict, pd.DataFrame]:
    """Contract tables and the ground truth (``declaration_id, p_true, critical_p_true``)."""
    rng = np.random.default_rng(seed)
    ent = rng.integers(0, n_ent, n)
    bad = np.zeros(n_ent, dtype=bool)
    bad[rng.choice(n_ent, int(BAD_SHARE * n_ent), replace=False)] = True
    p = np.where(bad[ent], BAD_RATE, GOOD_RATE)
    secs = np.sort(rng.integers(0, DAYS * 86400, n))
    declared = T0 + pd.to_timedelta(secs, unit="s")
    usd = np.round(rng.lognormal(9, 0.5, n), 2)
    ids = [f"T{i:07d}" for i in range(n)]
    decl = pd.DataFrame(
        {
            "declaration_id": ids,
            "declared_at": declared,
            "direction": "import",
            "port_code": "CNSHA",
            "trade_mode": "general_trade",
            "hs_code": "84713000",
            "origin_country": rng.choice(["DE", "JP"], n),
            "enterprise_id": [f"E{e:04d}" for e in ent],
            "declarant_id": [f"B{b}" for b in rng.integers(0, 5, n)],
            "overseas_party_id": [f"O{o}" for o in rng.integers(0, 30, n)],
            "transport_mode": "sea",
            "goods_description": "machines",
            "quantity": rng.integers(1, 50, n).astype("float64"),
            "quantity_unit": "set",
            "net_weight_kg": np.round(rng.lognormal(6, 0.5, n), 1),
            "declared_value": usd,
            "currency": "USD",
            "legal_inspection": False,
            "third_party_certificate": False,
        }
    )
    # History before 2026-01-01 only: a 20 % random sample (the store of an ordinary office).
    cut = pd.Timestamp("2026-01-01", tz="Asia/Shanghai").tz_convert("UTC")
    ii = np.flatnonzero((rng.random(n) < 0.20) & (declared < cut))
    nc = rng.random(len(ii)) < p[ii]
    lag = pd.to_timedelta(rng.integers(3600, 4 * 86400, len(ii)), unit="s")
    insp = pd.DataFrame(
        {
            "declaration_id": [ids[i] for i in ii],
            "inspected_at": declared[ii] + lag,
            "selection": "random",
            "result": np.where(nc, "nonconforming", "conforming"),
            "hazard_type": np.where(nc, "safety", None),
            "severity": np.where(nc, "major", None),
        }
    )
    ents = [f"E{e:04d}" for e in range(n_ent)]
    enterprises = pd.DataFrame(
        {
            "enterprise_id": ents,
            "name": ents,
            "registered_at": T0 - pd.Timedelta(days=800),
            "enterprise_type": "trader",
            "region": "east",
        }
    )
    truth = pd.DataFrame(
        {"declaration_id": ids, "p_true": p, "critical_p_true": np.where(bad[ent], 0.05, 0.0)}
    )
    return {"declarations": decl, "inspections": insp, "enterprises": enterprises}, truth


def write_tiny_store(root: Path, **kw) -> tuple[Path, Path]:
    """Write the tables, ingest them (``guomen ingest``'s function); returns (store, truth)."""
    from features.ingest import ingest

    tables, truth = tiny_tables(**kw)
    src = root / "src"
    src.mkdir(parents=True)
    for name, frame in tables.items():
        frame.to_parquet(src / f"{name}.parquet", index=False)
    ingest(src, root / "store")
    truth_file = root / "truth" / "declaration_truth.parquet"
    truth_file.parent.mkdir()
    truth.to_parquet(truth_file, index=False)
    return root / "store", truth_file
