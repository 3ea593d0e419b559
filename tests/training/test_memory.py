"""Training's memory is bounded by the sample cap, not by the declarations in the folder.

Measured with ``tracemalloc`` (numpy and pandas buffers are traced; deterministic, not timing):
the float64 matrix of a set of rows costs about its own size (it used to copy every row's
features twice first, three times its size for the propensity model's matrix), and reading
partitions under a cap holds memory in proportion to the kept rows.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features.partitioned import StoreSource, build_partitioned
from training.partitioned import load_partitioned_inputs
from training.split import TRAIN
from training.train import prepare


def _peak(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()``'s result and the peak traced bytes allocated while it ran."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def partitions(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, inputs = demo
    out = tmp_path_factory.mktemp("parts") / "features"
    build_partitioned(
        StoreSource(root / "store"), out, inputs.attributes, categories=inputs.categories,
        partition_months=1,
    )  # fmt: skip
    return out


def test_matrix_is_the_frame_cast_and_costs_its_own_size() -> None:
    rng = np.random.default_rng(0)
    n, k = 40_000, 30
    cols = {f"f{j}": rng.random(n).astype(np.float32) for j in range(k)}
    cols["f3"][::7] = np.nan
    frame = pd.DataFrame(
        {"declaration_id": [f"d{i}" for i in range(n)],
         "declared_at": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
         "enterprise_id": "e", **cols}
    )  # fmt: skip
    frame["f5"] = frame["f5"].astype("Float64")  # a nullable column: its NA becomes NaN
    frame.loc[::5, "f5"] = pd.NA
    labels = pd.DataFrame(
        {"declaration_id": frame["declaration_id"], "inspected": False, "nonconforming": np.nan,
         "selection": "", "severity": "",
         "inspected_at": pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")}
    )  # fmt: skip
    names = [f"f{j}" for j in range(k)]
    data = prepare(frame, labels, names, test_months=0, validation_months=0)
    rows = np.zeros(n, dtype=bool)
    rows[rng.choice(n, n // 2, replace=False)] = True
    got, peak = _peak(lambda: data.matrix(rows))
    want = data.frame[names][rows].to_numpy(dtype=np.float64, na_value=np.nan)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True)
    assert np.isnan(got[:, 5]).any()
    assert np.array_equal(data.matrix(), data.frame[names].to_numpy(np.float64, na_value=np.nan),
                          equal_nan=True)  # fmt: skip
    # The result plus one column's temporaries (the old way: 2.5 times the result).
    assert peak < 1.25 * got.nbytes, (peak, got.nbytes)


def test_inputs_under_a_cap_hold_memory_for_the_kept_rows(demo, partitions: Path) -> None:
    root, _ = demo
    kw: dict[str, Any] = {"test_months": 4, "validation_months": 3, "seed": 1}
    full, peak_full = _peak(
        lambda: load_partitioned_inputs(partitions, root / "store", max_rows=10**9, **kw)
    )
    cap = 1500
    part, peak_cap = _peak(
        lambda: load_partitioned_inputs(partitions, root / "store", max_rows=cap, **kw)
    )
    assert full.sample.rows[TRAIN] > 8 * cap
    kept = len(part.features)
    assert kept == sum(part.sample.kept.values()) <= 3 * cap + 5 * np.sqrt(3 * cap)
    assert len(full.features) == sum(full.sample.rows.values()) > 6 * kept
    # The raw declarations carried: the kept ones plus one per enterprise (the legacy rule's
    # first declaration), never a partition's every row.
    enterprises = part.declarations["enterprise_id"].nunique()
    assert len(part.declarations) <= kept + enterprises
    # Memory follows the kept rows: a sixth of them or fewer, well under half the peak.
    assert peak_cap < 0.5 * peak_full, (peak_cap, peak_full)
