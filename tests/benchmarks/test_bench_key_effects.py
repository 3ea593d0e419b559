"""The point-in-time sums of benchmarks/bench_key_effects.py follow the features' timing rule."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from bench_key_effects import sums_known_before  # noqa: E402


def test_sums_count_only_results_known_strictly_before_the_declaration():
    rng = np.random.default_rng(3)
    n = 400
    key = rng.choice(np.array(["a", "b", "c", None], dtype=object), n)
    declared = rng.integers(0, 50, n)  # coarse times: many ties
    inspected = rng.random(n) < 0.6
    result_at = declared + rng.integers(0, 10, n)  # a result may come at its declaration time
    nc = (rng.random(n) < 0.3).astype(float)
    weight = rng.random(n)
    got_nc, got_w = sums_known_before(key, inspected, result_at, declared, [nc, weight])
    for i in range(n):
        if key[i] is None:
            assert np.isnan(got_nc[i]) and np.isnan(got_w[i])
            continue
        seen = (key == key[i]) & inspected & (result_at < declared[i])
        assert got_nc[i] == nc[seen].sum()
        assert np.isclose(got_w[i], weight[seen].sum())
    assert got_nc[np.asarray([k is not None for k in key])].max() > 0
