"""Selection-policy backtest (``guomen backtest``): replay weeks of declarations under each
policy, revealing only what it selected, and report what each finds (docs/backtest.md)."""

from training.backtest.engine import BACKTEST_OVERRIDES, Backtest, BacktestSpec, load_world
from training.backtest.policies import (
    DEFAULT_POLICIES,
    POLICIES,
    Policy,
    Selection,
    WeekView,
    parse_policy,
    register_policy,
)
from training.backtest.run import run_backtest

__all__ = [
    "BACKTEST_OVERRIDES",
    "DEFAULT_POLICIES",
    "POLICIES",
    "Backtest",
    "BacktestSpec",
    "Policy",
    "Selection",
    "WeekView",
    "load_world",
    "parse_policy",
    "register_policy",
    "run_backtest",
]
