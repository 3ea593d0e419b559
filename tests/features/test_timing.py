"""Perturb everything that happens at or after a cut-off: no feature before it may change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_offline
from tests.features.pit_synth import make_tables


def _perturb_after(
    tables: dict[str, pd.DataFrame], cut: pd.Timestamp, seed: int
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in tables.items()}
    insp = out["inspections"]
    late = insp["inspected_at"] >= cut
    flip = np.where(insp["result"] == "nonconforming", "conforming", "nonconforming")
    insp.loc[late, "result"] = pd.Series(flip, index=insp.index, dtype="str")[late]
    insp.loc[late, "severity"] = "critical"
    insp.loc[late, "selection"] = "random"
    # Move late results around, but never before the cut-off.
    shift = pd.to_timedelta(rng.integers(0, 5 * 86400, int(late.sum())), unit="s")
    insp.loc[late, "inspected_at"] = insp.loc[late, "inspected_at"] + shift
    decl = out["declarations"]
    later = decl["declared_at"] > cut
    decl.loc[later, "declared_value_usd"] = decl.loc[later, "declared_value_usd"] * 7.0
    decl.loc[later, "net_weight_kg"] = 1.0
    for col in ("legal_inspection", "third_party_certificate"):
        decl.loc[later, col] = ~decl.loc[later, col]
    sig = out["risk_signals"]
    late_sig = sig["reported_at"] >= cut
    sig.loc[late_sig, "channel"] = "recall"
    sig.loc[late_sig, "severity"] = "serious"
    # Extra results at the cut-off instant and after, for declarations made before it.
    early = decl.loc[
        ~later & ~decl["declaration_id"].isin(insp["declaration_id"]), "declaration_id"
    ]
    add = early.iloc[:20]
    extra = pd.DataFrame(
        {
            "declaration_id": add.to_numpy(),
            "inspected_at": pd.Series([cut] * len(add)).astype("datetime64[ns, UTC]"),
            "selection": "targeted",
            "result": "nonconforming",
            "hazard_type": "safety",
            "severity": "major",
            "disposal": pd.NA,
        }
    ).astype(
        {
            c: "str"
            for c in (
                "declaration_id",
                "selection",
                "result",
                "hazard_type",
                "severity",
                "disposal",
            )
        }
    )
    out["inspections"] = pd.concat([insp, extra], ignore_index=True)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nothing_before_cutoff_changes(seed: int) -> None:
    tables = make_tables(1500, seed=seed, days=400)
    times = tables["declarations"]["declared_at"].sort_values()
    cut = times.iloc[len(times) * 2 // 3]
    base = build_offline(tables)
    moved = build_offline(_perturb_after(tables, cut, seed))
    before = (base["declared_at"] <= cut).to_numpy()
    a = base.loc[before].iloc[:, 3:].to_numpy()
    b = moved.loc[before].iloc[:, 3:].to_numpy()
    assert np.array_equal(a, b, equal_nan=True)
    # ...and the perturbation is real: later declarations do change.
    after = ~before
    assert not np.array_equal(
        base.loc[after].iloc[:, 3:].to_numpy(),
        moved.loc[after].iloc[:, 3:].to_numpy(),
        equal_nan=True,
    )
