"""Shared backtest fixtures: the tiny known-answer world and one finished replay of it."""

from __future__ import annotations

from pathlib import Path

import pytest

# The replay every test of this package compares against (the CLI's defaults besides these).
START, END = "2026-01-01", "2026-03-31"
HELD_ASIDE = 0.5  # the tiny world's months are small: half of them in the evaluator's sample
POLICY_SPECS = ("random", "legacy", "exploit", "hybrid:explore=0.2,by=random", "thompson")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, truth file) of the tiny world."""
    from tests.training.backtest.tiny_world import write_tiny_store

    return write_tiny_store(tmp_path_factory.mktemp("tiny"))


def tiny_spec():
    from training.backtest import BacktestSpec

    return BacktestSpec(start=START, end=END, budget=0.05, retrain="monthly", seed=7,
                        warnings_step_days=0, held_aside_share=HELD_ASIDE)  # fmt: skip


@pytest.fixture(scope="session")
def tiny_run(tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted replay of the tiny world: (out folder, backtest.json content)."""
    from training.backtest import parse_policy, run_backtest

    store, truth = tiny
    out = tmp_path_factory.mktemp("tiny-run") / "run"
    doc = run_backtest(store, out, tiny_spec(), [parse_policy(p) for p in POLICY_SPECS],
                       ground_truth=truth)  # fmt: skip
    assert doc is not None
    return out, doc
