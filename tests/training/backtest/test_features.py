"""The week's features under a policy's revealed results equal the full offline build on those
results, and nothing outside LABEL_AGGREGATIONS reads a result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_offline, final_inspections
from features.categorical import fit_code_maps
from training.backtest.features import FeatureSource, label_dependent


@pytest.fixture(scope="module")
def demo_tables(tmp_path_factory):
    """A small demo world (signals, credit, every key) read back from its store."""
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from features.store import Store

    root = tmp_path_factory.mktemp("bt-features")
    write_demo_data(root / "src", n_declarations=8_000, seed=3)
    ingest(root / "src", root / "store")
    return Store(root / "store").tables()


def test_label_independent_features_ignore_results(demo_tables) -> None:
    cats = fit_code_maps(demo_tables["declarations"])
    with_results = build_offline(demo_tables, categories=cats)
    without = build_offline({**demo_tables, "inspections": demo_tables["inspections"].iloc[:0]},
                            categories=cats)  # fmt: skip
    label = set(label_dependent())
    other = [c for c in with_results.columns[3:] if c not in label]
    assert len(label) > 50 and len(other) > 50
    pd.testing.assert_frame_equal(with_results[other], without[other])
    # ... and the label-dependent ones do read them.
    assert sum(not with_results[c].equals(without[c]) for c in label) > 0.8 * len(label)


def test_week_features_equal_the_full_build_on_the_revealed_results(demo_tables) -> None:
    decl = demo_tables["declarations"].reset_index(drop=True)
    insp = final_inspections(demo_tables["inspections"])
    start = decl["declared_at"].quantile(0.7)
    week_end = start + pd.Timedelta(days=7)
    rows = np.flatnonzero(((decl["declared_at"] >= start) & (decl["declared_at"] < week_end))
                          .to_numpy())  # fmt: skip
    when = insp.merge(decl[["declaration_id", "declared_at"]], on="declaration_id")
    history = insp[insp["declaration_id"].isin(when["declaration_id"][when["declared_at"] < start])]
    # A policy's revealed set: the history plus a random half of the later results, cut at the
    # week's start (as the engine passes it).
    rng = np.random.default_rng(0)
    later = insp[~insp["declaration_id"].isin(history["declaration_id"])]
    revealed = pd.concat([history, later[rng.random(len(later)) < 0.5]], ignore_index=True)
    revealed = revealed[revealed["inspected_at"] < start].reset_index(drop=True)
    cats = fit_code_maps(decl)
    source = FeatureSource(demo_tables, {}, cats, history)
    got = source.week(rows, revealed)
    full = build_offline({**demo_tables, "inspections": revealed}, categories=cats)
    want = full[source.names].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
    np.testing.assert_array_equal(got, want)
