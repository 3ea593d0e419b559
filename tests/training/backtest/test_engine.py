"""The replay: known answers, no look-ahead, identical output after an interruption."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training.backtest.conftest import POLICY_SPECS, tiny_spec
from training.backtest import Backtest, Policy, Selection, WeekView, load_world, parse_policy
from training.backtest.engine import training_config
from training.backtest.policies import top_k


def totals(doc: dict) -> dict[str, dict]:
    return {n: p["total"] for n, p in doc["results"]["policies"].items()}


def test_tiny_world_ranks_the_policies_as_expected(tiny_run) -> None:
    """Bad enterprises are visible only through their inspection history: the model policies
    find several times what random finds, the legacy rule (blind to history) no more than
    chance, exploring a fifth at random costs part of exploit's gain, and nobody beats the
    oracle."""
    _, doc = tiny_run
    t = totals(doc)
    rnd, leg, exp = t["random"]["found"], t["legacy"]["found"], t["exploit"]["found"]
    hyb, ths = t["hybrid-random-0.2"]["found"], t["thompson-20"]["found"]
    assert doc["results"]["universe"]["mode"] == "truth"
    assert exp > 3.0 * rnd
    assert leg < 1.6 * rnd
    assert rnd < hyb < exp * 1.02
    assert ths > 2.0 * rnd
    for name, tot in t.items():
        assert tot["found"] <= tot["oracle_found"] + 1e-9, name
        assert tot["inspected"] == t["random"]["inspected"], name  # the same budget for all
    assert t["exploit"]["vs_oracle"] > 0.7
    # The model ranks the held-aside sample well; the legacy points cannot.
    months = doc["results"]["policies"]["exploit"]["months"]
    assert all(m["auc"] > 0.8 for m in months)
    assert doc["results"]["comparisons"]["vs_legacy"]["policies"]["exploit"]["found"] > 0


def test_report_files(tiny_run) -> None:
    out, doc = tiny_run
    for name in ("backtest.json", "backtest.md", *doc["run"]["charts"]):
        assert (out / name).stat().st_size > 0, name
    md = (out / "backtest.md").read_text(encoding="utf-8")
    assert "Universe: truth" in md and "`exploit`" in md
    svg = (out / "cumulative_found.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "<script" not in svg and "style=" not in svg
    weeks = doc["results"]["policies"]["exploit"]["weeks"]
    assert len(weeks) == len(doc["results"]["weeks"]) == 13
    # A policy keeps its colour on every chart (the legend line before its name).
    legend = re.compile(r'stroke="(#[0-9a-f]{6})" stroke-width="3"/>\n<text [^>]*>([^<]+)</text>')
    colours = [dict((n, c) for c, n in legend.findall((out / f).read_text(encoding="utf-8")))
               for f in ("cumulative_found.svg", "monthly_auc.svg", "monthly_ece.svg")]  # fmt: skip
    assert colours[1]["exploit"] == colours[0]["exploit"] == colours[2]["exploit"]
    assert colours[1]["legacy"] == colours[0]["legacy"] != colours[0]["exploit"]


def test_resume_after_an_interruption_gives_identical_output(tiny, tiny_run, tmp_path) -> None:
    from training.backtest import run_backtest

    store, truth = tiny
    out = tmp_path / "run"
    pols = [parse_policy(p) for p in POLICY_SPECS]
    assert run_backtest(store, out, tiny_spec(), pols, ground_truth=truth, stop_after=5) is None
    ck = json.loads((out / "state" / "checkpoint.json").read_text())
    assert ck["weeks_done"] == 5
    pols = [parse_policy(p) for p in POLICY_SPECS]  # fresh objects, as a new process has
    doc = run_backtest(store, out, tiny_spec(), pols, ground_truth=truth)
    assert doc is not None and doc["run"]["resumed_after_week"] == 5
    assert doc["results"] == tiny_run[1]["results"]


def test_other_inputs_refuse_to_resume(tiny, tmp_path) -> None:
    from training.backtest import BacktestSpec, run_backtest

    store, truth = tiny
    out = tmp_path / "run"
    run_backtest(store, out, tiny_spec(), [parse_policy("random")], ground_truth=truth,
                 stop_after=1)  # fmt: skip
    other = BacktestSpec(start="2026-01-01", end="2026-03-31", budget=0.1, warnings_step_days=0)
    with pytest.raises(ValueError, match="other inputs"):
        run_backtest(store, out, other, [parse_policy("random")], ground_truth=truth)


# ----------------------------------------------------------------------------- look-ahead


class Recorder(Policy):
    """Exploit, checking that everything it is handed is from before the week."""

    kind = "recorder"
    needs_model = True
    needs_features = True
    seen: list[tuple[pd.Timestamp, int]] = []

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        rev = view.revealed
        assert (pd.to_datetime(rev["inspected_at"], utc=True) < view.week_start).all()
        assert not set(rev["declaration_id"]) & set(view.declarations["declaration_id"])
        assert not {"result", "severity", "hazard_type", "inspected_at"} & set(
            view.declarations.columns
        )
        assert (view.declarations["declared_at"] >= view.week_start).all()
        assert (view.declarations["declared_at"] < view.week_end).all()
        Recorder.seen.append((view.week_start, len(rev)))
        assert view.probability is not None
        return Selection(top_k(view.probability, k, rng))


class Peeker(Policy):
    """A cheat: it reads the outcomes straight from the files behind the engine's back."""

    kind = "peeker"

    def __init__(self, outcomes: np.ndarray, ids: np.ndarray) -> None:
        self.bad = set(ids[outcomes])

    def select(self, view: WeekView, k: int, rng: np.random.Generator) -> Selection:
        score = view.declarations["declaration_id"].isin(self.bad).to_numpy(dtype=float)
        return Selection(top_k(score, k, rng))


def _decisions(world, policies, out: Path, weeks: int) -> dict[str, list[np.ndarray]]:
    bt = Backtest(world, tiny_spec(), policies, out, training_config(None))
    bt.run(stop_after=weeks)
    return {name: st.rows for name, st in bt.states.items()}


def lookahead(a: dict[str, list[np.ndarray]], b: dict[str, list[np.ndarray]], weeks: int
              ) -> set[str]:  # fmt: skip
    """Policies whose decisions in the first ``weeks`` weeks differ between two worlds that
    differ only in results returned after those weeks began."""
    return {
        name for name in a
        if any(not np.array_equal(a[name][w], b[name][w]) for w in range(weeks))
    }  # fmt: skip


def test_the_engine_hands_policies_only_the_past(tiny, tmp_path) -> None:
    """Two worlds that agree on every result returned before week 6 and disagree on every
    later one: honest policies decide weeks 1-6 identically in both, so nothing they were
    handed came from the future; the cheat that reads the files decides differently and is
    caught."""
    store, truth = tiny
    spec = tiny_spec()
    cut = spec.weeks()[5][0]  # the start of week 6
    worlds = []
    for flip in (False, True):
        world = load_world(store, spec, truth, need_features=True)
        if flip:
            later = world.universe.reveal_ns >= cut.value
            world.universe.nonconforming[later] = ~world.universe.nonconforming[later]
        worlds.append(world)
    runs = []
    for i, world in enumerate(worlds):
        pols = [parse_policy(p) for p in POLICY_SPECS]
        pols += [Recorder(), Peeker(world.universe.nonconforming, world.ids)]
        runs.append(_decisions(world, pols, tmp_path / f"w{i}", weeks=6))
    assert lookahead(runs[0], runs[1], weeks=6) == {"peeker"}
    # The recorder saw its revealed set grow week by week, always strictly before the week.
    assert len(Recorder.seen) == 12
    assert Recorder.seen[5][1] > Recorder.seen[0][1]


def test_a_policy_over_its_budget_is_refused(tiny, tmp_path) -> None:
    class Greedy(Policy):
        kind = "greedy"

        def select(self, view, k, rng):
            return Selection(np.arange(min(len(view), k + 1)))

    store, truth = tiny
    world = load_world(store, tiny_spec(), truth, need_features=False)
    bt = Backtest(world, tiny_spec(), [Greedy()], tmp_path, training_config(None))
    with pytest.raises(ValueError, match="budget"):
        bt.run(stop_after=1)
