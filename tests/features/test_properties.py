"""Hypothesis: small random histories (ties on timestamps, results arriving out of order,
entities seen once) -- the fast pipeline equals the slow reference row by row, and online equals
offline for a declaration of the history."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_offline
from features.categorical import fit_code_maps
from features.online import OnlineFeatures
from features.registry import feature_names
from features.snapshot import Snapshot
from tests.features.reference import compare, reference_features

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HOURS = [0, 1, 1, 2, 24 * 29, 24 * 30, 24 * 31, 24 * 89, 24 * 90, 24 * 365, 24 * 366, 24 * 400]


@st.composite
def histories(draw: st.DrawFn) -> dict[str, pd.DataFrame]:
    n = draw(st.integers(1, 25))
    # Few distinct instants (many ties), some exactly one window apart.
    base = draw(st.lists(st.sampled_from(HOURS), min_size=n, max_size=n))
    jitter = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    declared = [T0 + pd.Timedelta(hours=h + 24 * 35 * j) for h, j in zip(base, jitter, strict=True)]
    ent = draw(st.lists(st.sampled_from(["E1", "E2", "E3", f"E{n}x"]), min_size=n, max_size=n))
    hs = draw(
        st.lists(
            st.sampled_from(["950300", "95030012", "950410", "030389", "0303891234"]),
            min_size=n,
            max_size=n,
        )
    )
    osp = draw(st.lists(st.sampled_from(["O1", "O2", None]), min_size=n, max_size=n))
    org = draw(st.lists(st.sampled_from(["CN", "DE"]), min_size=n, max_size=n))
    usd = draw(st.lists(st.sampled_from([0.0, 10.0, 100.0, 1000.0, 55.5]), min_size=n, max_size=n))
    kg = draw(st.lists(st.sampled_from([1.0, 2.0, 10.0, None]), min_size=n, max_size=n))
    decl = pd.DataFrame(
        {
            "declaration_id": pd.Series([f"D{i}" for i in range(n)], dtype="str"),
            "declared_at": pd.Series(declared).astype("datetime64[ns, UTC]"),
            "direction": pd.Series(["import"] * n, dtype="str"),
            "port_code": pd.Series(["P1"] * n, dtype="str"),
            "trade_mode": pd.Series(["general_trade"] * n, dtype="str"),
            "hs_code": pd.Series(hs, dtype="str"),
            "origin_country": pd.Series(org, dtype="str"),
            "enterprise_id": pd.Series(ent, dtype="str"),
            "declarant_id": pd.Series([None] * n, dtype="str"),
            "overseas_party_id": pd.Series(osp, dtype="str"),
            "net_weight_kg": pd.Series(kg, dtype="float64"),
            "declared_value": usd,
            "currency": pd.Series(["USD"] * n, dtype="str"),
            "declared_value_usd": pd.Series(usd, dtype="float64"),
            "legal_inspection": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
            "third_party_certificate": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        }
    )
    inspected = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    rows = []
    for i in np.flatnonzero(inspected):
        lag = draw(st.sampled_from([0, 0, 1, 24, 24 * 30, 24 * 100]))
        nc = draw(st.booleans())
        rows.append(
            {
                "declaration_id": f"D{i}",
                "inspected_at": declared[i] + pd.Timedelta(hours=lag),
                "selection": draw(st.sampled_from(["random", "targeted"])),
                "result": "nonconforming" if nc else "conforming",
                "severity": draw(st.sampled_from(["minor", "major", "critical"])) if nc else None,
            }
        )
    rows = draw(st.permutations(rows)) if rows else rows  # out-of-order arrival
    insp = pd.DataFrame(
        rows, columns=["declaration_id", "inspected_at", "selection", "result", "severity"]
    )
    insp = insp.astype(
        {"declaration_id": "str", "selection": "str", "result": "str", "severity": "str"}
    )
    insp["inspected_at"] = pd.to_datetime(insp["inspected_at"], utc=True)
    k = draw(st.integers(0, 6))
    sig = pd.DataFrame(
        {
            "signal_id": pd.Series([f"S{i}" for i in range(k)], dtype="str"),
            "reported_at": pd.Series(
                [T0 + pd.Timedelta(hours=draw(st.sampled_from(HOURS))) for _ in range(k)]
            ).astype("datetime64[ns, UTC]"),
            "channel": pd.Series(
                [draw(st.sampled_from(["recall", "foreign_alert"])) for _ in range(k)], dtype="str"
            ),
            "enterprise_id": pd.Series(
                [draw(st.sampled_from(["E1", None])) for _ in range(k)], dtype="str"
            ),
            "overseas_party_id": pd.Series([None] * k, dtype="str"),
            "hs_code": pd.Series(
                [draw(st.sampled_from(["95", "9503", "950300", None])) for _ in range(k)],
                dtype="str",
            ),
            "origin_country": pd.Series(
                [draw(st.sampled_from(["CN", None])) for _ in range(k)], dtype="str"
            ),
            "severity": pd.Series(
                [draw(st.sampled_from(["low", "serious", None])) for _ in range(k)], dtype="str"
            ),
        }
    )
    subject = sig[["enterprise_id", "hs_code", "origin_country"]].notna().any(axis=1)
    sig = sig[subject].reset_index(drop=True)
    credit = pd.DataFrame(
        {
            "enterprise_id": pd.Series(["E1", "E1", "E2"], dtype="str"),
            "effective_from": pd.Series([T0, T0, T0 + pd.Timedelta(hours=1)]).astype(
                "datetime64[ns, UTC]"
            ),
            "rating": pd.Series(["aeo_advanced", "discredited", "regular"], dtype="str"),
        }
    )
    return {
        "declarations": decl,
        "inspections": insp,
        "risk_signals": sig,
        "credit_ratings": credit,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_fast_equals_reference(tables: dict[str, pd.DataFrame]) -> None:
    assert compare(build_offline(tables), reference_features(tables)) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.integers(0, 1000))
def test_online_equals_offline(tables: dict[str, pd.DataFrame], pick: int) -> None:
    names = feature_names()
    off = build_offline(tables)
    decl = tables["declarations"]
    i = pick % len(decl)
    row = {k: (None if pd.isna(v) else v) for k, v in decl.iloc[i].to_dict().items()}
    vec = OnlineFeatures(
        Snapshot.build(tables, row["declared_at"]),
        names,
        categories=fit_code_maps(tables["declarations"]),
    ).vector(row)
    want = off.loc[i, names].to_numpy(dtype=np.float64)
    same = np.isclose(vec, want, rtol=1e-9, atol=1e-12) | (np.isnan(vec) & np.isnan(want))
    assert same.all(), [
        (n, a, b) for n, a, b, ok in zip(names, vec, want, same, strict=False) if not ok
    ]
