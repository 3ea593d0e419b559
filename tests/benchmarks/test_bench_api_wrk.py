"""The wrk benchmark pools its two halves per server from their latency quantiles."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from bench_api_wrk import pool, pooled_quantile  # noqa: E402


def _run(latencies_us: np.ndarray) -> dict:
    """A run as the Lua ``done()`` reports it (quantiles 0.1 % .. 99.9 %, then the max)."""
    q = [int(np.percentile(latencies_us, i / 10, method="inverted_cdf")) for i in range(1, 1000)]
    return {
        "clients": 8, "requests": len(latencies_us), "sent": len(latencies_us),
        "duration_us": 10_000_000, "statuses": {"200": len(latencies_us)},
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "latency_us": {"min": int(latencies_us.min()), "max": int(latencies_us.max()),
                       "mean": float(latencies_us.mean()), "stdev": 0.0},
        "quantiles_us": [*q, int(latencies_us.max())],
    }  # fmt: skip


def test_pooled_quantiles_match_the_quantiles_of_all_requests():
    rng = np.random.default_rng(3)
    fast = rng.lognormal(np.log(2_000), 0.3, 30_000)  # 2 ms
    slow = rng.lognormal(np.log(9_000), 0.5, 10_000)  # 9 ms, a third as many requests
    both = np.concatenate([fast, slow])
    runs = [_run(fast), _run(slow)]
    for q in (0.5, 0.9, 0.99):
        want = np.percentile(both, 100 * q) / 1e3
        assert abs(pooled_quantile(runs, q) - want) / want < 0.02
    phase = pool(runs)
    assert phase["requests"] == phase["ok"] == 40_000 and phase["errors"] == 0
    assert phase["requests_per_s"] == 2_000.0
    assert phase["latency_ms"]["max"] == int(both.max()) / 1e3
    assert phase["latency_ms"]["p50"] < phase["latency_ms"]["p90"] < phase["latency_ms"]["p99"]
