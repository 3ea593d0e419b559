"""The week-by-week replay: policies select within the budget, only their selections reveal
results, models retrain on what each policy revealed, and a killed run resumes.

Per week (half-open, starting at ``start`` local midnight, ``features.registry.CALENDAR_TZ``):

1. the week's selectable declarations (``Universe.eligible``) and ``k = round(budget x n)``;
2. per policy: retrain when due (``monthly``: the first week of a calendar month; ``weekly``;
   ``never``: the model of the start only), on the pre-start history and the policy's own
   results returned before the week began, through ``training.train.prepare`` and
   ``train_model`` (the training pipeline's split, label-availability rule, weights and Platt
   calibration; validation is the ``split.validation_months`` before the retraining date);
3. features under the policy's revealed results (:mod:`training.backtest.features`), the
   model's probabilities, and the policy's :meth:`~training.backtest.policies.Policy.select`;
4. the selected declarations' outcomes join the policy's revealed results at their reveal time;
5. the week is checkpointed (``<out>/state``): a new run with the same inputs continues after
   the last completed week and writes the same report.

Training uses a fixed configuration (:data:`BACKTEST_OVERRIDES`: today's default history keys,
no key selection, no capacity grid, no selection-bias candidates besides ``none``) so each
retraining costs one LightGBM fit; a ``--config`` file can change the booster's settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.bundle import Calibration
from features.progress import Progress, no_progress
from features.registry import CALENDAR_TZ
from features.windows import to_ns
from training.backtest.features import FeatureSource
from training.backtest.policies import Policy, Selection, WeekView
from training.backtest.universe import Universe, build_universe
from training.config import TrainConfig, load_config
from training.split import TimeSplit
from training.train import prepare, train_model

Retrain = Literal["monthly", "weekly", "never"]
STATE_VERSION = 1
# The backtest retrains many times: one fit each, on the default key set (see the module doc).
# One LightGBM thread: on the shared 2-core machine two OpenMP threads made a fit 7x slower
# under load (12.8 s against 1.8 s at load average 12, 50k demo). Learning rate 0.1 and 63 bins
# halve a fit at 1M (30.4 s -> 15.3 s, validation AUC 0.808 -> 0.807, load average 9).
BACKTEST_OVERRIDES: dict[str, Any] = {
    "features": {"select": False},
    "capacity": {"grid": False},
    "selection": {"candidates": ["none"]},
    "lightgbm": {"num_threads": 1, "learning_rate": 0.1, "max_bin": 63},
}


@dataclass(frozen=True)
class BacktestSpec:
    """What to replay (everything that changes the result; part of the resume digest)."""

    start: str  # first day (local calendar date)
    end: str  # last day (inclusive)
    budget: float = 0.05
    retrain: Retrain = "monthly"
    seed: int = 7
    held_aside_share: float = 0.10
    warnings_step_days: int = 7  # 0: no warning replay
    timezone: str = CALENDAR_TZ  # of the calendar days

    def __post_init__(self) -> None:
        if not 0 < self.budget < 1:
            raise ValueError(f"--budget must be in (0, 1), got {self.budget}")
        if self.retrain not in ("monthly", "weekly", "never"):
            raise ValueError(f"--retrain must be monthly, weekly or never, got {self.retrain!r}")
        if not 0 < self.held_aside_share <= 1:
            raise ValueError("the held-aside share must be in (0, 1]")
        if self.start_ts >= self.end_ts - pd.Timedelta(days=1):
            raise ValueError(f"--start {self.start} is not before --end {self.end}")
        if self.warnings_step_days < 0:
            raise ValueError("the warnings step must be >= 0 days")

    @property
    def start_ts(self) -> pd.Timestamp:
        """Start of the first day (UTC)."""
        return _local_day(self.start, "--start", self.timezone)

    @property
    def end_ts(self) -> pd.Timestamp:
        """End of the last day (UTC, exclusive)."""
        return _local_day(self.end, "--end", self.timezone) + pd.Timedelta(days=1)

    def weeks(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """Week boundaries (UTC); the last week is cut at ``end``."""
        out = []
        t, end = self.start_ts, self.end_ts
        while t < end:
            nxt = min(t + pd.Timedelta(days=7), end)
            out.append((t, nxt))
            t = nxt
        return out


def _local_day(text: str, flag: str, tz: str) -> pd.Timestamp:
    try:
        day = pd.Timestamp(text)
    except ValueError as exc:
        raise ValueError(f"{flag} {text!r} is not a date (YYYY-MM-DD)") from exc
    if day.tzinfo is None:
        day = day.tz_localize(tz)
    return day.tz_convert("UTC")


@dataclass
class PolicyState:
    """What one policy has done and learnt so far."""

    policy: Policy
    rng: np.random.Generator
    rows: list[np.ndarray] = field(default_factory=list)  # selected rows, per week
    random: list[np.ndarray] = field(default_factory=list)
    X: list[np.ndarray] = field(default_factory=list)  # their features as the policy saw them
    eval_rows: list[np.ndarray] = field(default_factory=list)
    eval_score: list[np.ndarray] = field(default_factory=list)
    model: lgb.Booster | None = None
    calibration: Calibration | None = None
    model_file: str | None = None
    trained_at: str | None = None
    retrain_notes: list[str] = field(default_factory=list)

    def selected(self) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, np.int64)
        rnd = np.concatenate(self.random) if self.random else np.zeros(0, bool)
        return rows, rnd


@dataclass
class World:
    """The store read once: tables, universe, features, legacy points, pre-start history."""

    tables: dict[str, pd.DataFrame]
    universe: Universe
    ids: np.ndarray
    t_ns: np.ndarray
    legacy: np.ndarray
    history: pd.DataFrame  # inspection rows of pre-start declarations (everyone knows them)
    history_rows: np.ndarray
    history_reveal_ns: np.ndarray  # their ``inspected_at`` (UTC ns)
    source: FeatureSource | None
    store_fingerprint: str
    truth_digest: str
    outbreaks: list[dict[str, Any]]
    truth: pd.DataFrame | None


def load_world(
    store_dir: Path,
    spec: BacktestSpec,
    truth_path: Path | None,
    need_features: bool,
    progress: Progress | None = None,
) -> World:
    """Read the store (and the ground truth) and build what every week needs."""
    from features.build import final_inspections
    from features.categorical import fit_code_maps
    from features.store import Store
    from training.baselines import legacy_scores

    say = progress or no_progress
    store = Store(Path(store_dir))
    say("read the store")
    tables = store.tables()
    decl = _contiguous(tables["declarations"].reset_index(drop=True))
    tables["declarations"] = decl
    if len(decl) == 0:
        raise ValueError(f"store {store_dir} has no declarations")
    manifest = Path(store_dir) / "manifest.json"
    fingerprint = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else ""
    truth = None
    truth_digest = ""
    outbreaks: list[dict[str, Any]] = []
    if truth_path is not None:
        from training.pipeline import load_ground_truth

        truth_path = Path(truth_path)
        if not truth_path.is_file():
            raise ValueError(f"--ground-truth {truth_path} is not a file")
        truth_digest = hashlib.sha256(truth_path.read_bytes()).hexdigest()
        truth = load_ground_truth(truth_path)
        ob_file = truth_path.with_name("outbreaks.json")
        if ob_file.is_file():
            outbreaks = json.loads(ob_file.read_text(encoding="utf-8"))
            import pyarrow.parquet as pq

            if "outbreak_id" in pq.read_schema(truth_path).names:
                inside = pd.read_parquet(truth_path, columns=["declaration_id", "outbreak_id"])
                truth["outbreak_id"] = inside["outbreak_id"].to_numpy()
    ids = decl["declaration_id"].astype("str").to_numpy(dtype=object)
    t_ns = to_ns(decl["declared_at"])
    start_ns = int(spec.start_ts.value)
    if not (t_ns < start_ns).any():
        raise ValueError(f"the store has no declarations before --start {spec.start}: no history")
    if not ((t_ns >= start_ns) & (t_ns < spec.end_ts.value)).any():
        raise ValueError(f"the store has no declarations between {spec.start} and {spec.end}")
    say("outcomes")
    universe = build_universe(
        tables, start_ns, int(spec.end_ts.value), spec.seed, truth, spec.held_aside_share
    )
    insp = final_inspections(tables["inspections"])
    row = pd.Index(ids).get_indexer(insp["declaration_id"].astype("str"))
    pre = (row >= 0) & (t_ns[np.maximum(row, 0)] < start_ns)
    history = insp[pre].reset_index(drop=True)
    history_rows = row[pre].astype(np.int64)
    say("legacy points")
    legacy = legacy_scores(decl, tables.get("credit_ratings"), decl["declaration_id"])
    source = None
    if need_features:
        say("label-independent features")
        categories = fit_code_maps(decl, store.attributes)
        source = FeatureSource(tables, store.attributes, categories, history)
    return World(
        tables, universe, ids, t_ns, legacy, history, history_rows,
        to_ns(history["inspected_at"]), source, fingerprint, truth_digest, outbreaks, truth,
    )  # fmt: skip


def _contiguous(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every Arrow-backed column in one chunk.

    A store read from many partition files gives chunked Arrow columns; taking rows from them
    (every week takes the week's and the revealed declarations) costs about twice as much as
    from one chunk (0.026 s against 0.012 s for 20,000 of 200,000 rows). Values are unchanged.
    """
    out = frame.copy(deep=False)
    for name in out.columns:
        arr = out[name].array
        chunked = getattr(arr, "_pa_array", None)
        if chunked is not None and chunked.num_chunks > 1:
            out[name] = pd.Series(
                pd.array(chunked.combine_chunks(), dtype=out[name].dtype), index=out.index
            )
    return out


def training_config(config_path: Path | None) -> TrainConfig:
    """The fixed training configuration of the backtest (see :data:`BACKTEST_OVERRIDES`)."""
    return load_config(config_path, overrides=BACKTEST_OVERRIDES)


def _policy_rng(seed: int, name: str) -> np.random.Generator:
    # Seeded by the policy's own name: adding a policy to a run changes no other's draws.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Backtest:
    """One replay run writing its state and report into ``out``."""

    def __init__(
        self,
        world: World,
        spec: BacktestSpec,
        policies: list[Policy],
        out: Path,
        config: TrainConfig,
        progress: Progress | None = None,
    ) -> None:
        names = [p.name for p in policies]
        if len(set(names)) != len(names):
            raise ValueError(f"policies must have distinct names, got {names}")
        if not policies:
            raise ValueError("give at least one --policy")
        self.world = world
        self.spec = spec
        self.policies = policies
        self.out = Path(out)
        self.state_dir = self.out / "state"
        self.config = config
        self.say = progress or no_progress
        self.weeks = spec.weeks()
        self.states = {p.name: PolicyState(p, _policy_rng(spec.seed, p.name)) for p in policies}
        self.records: list[dict[str, Any]] = []
        # Models trained on the pre-start history alone (the same for every policy), by date.
        self._history_models: dict[str, tuple[str, Calibration]] = {}
        self.weeks_done = 0
        self.timings: dict[str, float] = {}
        self.digest = self._digest()

    # ------------------------------------------------------------------ identity and state

    def _digest(self) -> str:
        ident = {
            "version": STATE_VERSION,
            "store": self.world.store_fingerprint,
            "truth": self.world.truth_digest,
            "spec": asdict(self.spec),
            "policies": [p.name for p in self.policies],
            "config": self.config.model_dump(mode="json"),
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()

    def _checkpoint_file(self) -> Path:
        return self.state_dir / "checkpoint.json"

    def resume(self) -> int:
        """Load the state of an earlier run with the same inputs; returns the weeks done."""
        file = self._checkpoint_file()
        if not file.exists():
            return 0
        ck = json.loads(file.read_text(encoding="utf-8"))
        if ck.get("digest") != self.digest:
            raise ValueError(
                f"{self.out} holds a backtest of other inputs (store, period, policies or "
                "settings); choose another --out or remove it"
            )
        done = int(ck["weeks_done"])
        for name, st in self.states.items():
            pdir = self.state_dir / _slug(name)
            for w in range(done):
                with np.load(pdir / f"week-{w:04d}.npz", allow_pickle=False) as z:
                    st.rows.append(z["rows"])
                    st.random.append(z["random"])
                    st.X.append(z["X"])
                    st.eval_rows.append(z["eval_rows"])
                    st.eval_score.append(z["eval_score"])
            saved = ck["policies"][name]
            st.rng.bit_generator.state = saved["rng"]
            st.retrain_notes = list(saved.get("retrain_notes", []))
            if saved.get("model_file"):
                st.model = lgb.Booster(model_file=str(self.state_dir / saved["model_file"]))
                st.calibration = Calibration(**saved["calibration"])
                st.model_file = saved["model_file"]
                st.trained_at = saved["trained_at"]
        self.records = ck["records"]
        self.weeks_done = done
        self.timings = {k: float(v) for k, v in ck.get("timings", {}).items()}
        return done

    def _save_week(self, w: int) -> None:
        for name, st in self.states.items():
            pdir = self.state_dir / _slug(name)
            pdir.mkdir(parents=True, exist_ok=True)
            np.savez(
                pdir / f"week-{w:04d}.npz",
                rows=st.rows[w],
                random=st.random[w],
                X=st.X[w],
                eval_rows=st.eval_rows[w],
                eval_score=st.eval_score[w],
            )
        ck = {
            "digest": self.digest,
            "weeks_done": w + 1,
            "records": self.records,
            "timings": self.timings,
            "policies": {
                name: {
                    "rng": st.rng.bit_generator.state,
                    "model_file": st.model_file,
                    "calibration": (None if st.calibration is None else asdict(st.calibration)),
                    "trained_at": st.trained_at,
                    "retrain_notes": st.retrain_notes,
                }
                for name, st in self.states.items()
            },
        }
        tmp = self._checkpoint_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(ck, default=_json_default), encoding="utf-8")
        os.replace(tmp, self._checkpoint_file())

    # ------------------------------------------------------------------ revealed results

    def revealed(self, st: PolicyState, before_ns: int) -> tuple[pd.DataFrame, np.ndarray]:
        """Inspection rows the policy knows at ``before_ns`` (pre-start history and its own
        selections whose results came back before then), and their declarations' row numbers."""
        w = self.world
        h_known = w.history_reveal_ns < before_ns
        hist = w.history[h_known]
        rows, rnd = st.selected()
        if len(rows) == 0:
            return hist.reset_index(drop=True), w.history_rows[h_known]
        known = w.universe.reveal_ns[rows] < before_ns
        own = w.universe.inspection_rows(rows[known], rnd[known], w.ids)
        cols = [c for c in own.columns]
        frame = pd.concat([hist[cols], own], ignore_index=True)
        return frame, np.r_[w.history_rows[h_known], rows[known]]

    # ------------------------------------------------------------------ retraining

    def _due(self, st: PolicyState, week_start: pd.Timestamp) -> bool:
        if not st.policy.needs_model:
            return False
        if st.model is None:
            return True
        if self.spec.retrain == "weekly":
            return True
        if self.spec.retrain == "never":
            return False
        assert st.trained_at is not None
        last = pd.Timestamp(st.trained_at).tz_convert(self.spec.timezone)
        now = week_start.tz_convert(self.spec.timezone)
        return (now.year, now.month) != (last.year, last.month)

    def _training_rows(self, st: PolicyState, T_ns: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Features and labels of every result known at ``T_ns`` to the policy."""
        w = self.world
        assert w.source is not None
        src = w.source
        u = w.universe
        h_rows = w.history_rows
        h_known = w.history_reveal_ns < T_ns
        rows, rnd = st.selected()
        X_own = np.vstack(st.X) if st.X else np.zeros((0, len(src.names)))
        own_known = u.reveal_ns[rows] < T_ns
        hist = w.history[h_known]
        own = u.inspection_rows(rows[own_known], rnd[own_known], w.ids)
        all_rows = np.r_[h_rows[h_known], rows[own_known]]
        X = np.vstack([src.matrix[h_rows[h_known]], X_own[own_known]])
        decl = w.tables["declarations"]
        frame = pd.DataFrame(X, columns=src.names)
        frame.insert(0, "declaration_id", pd.Series(w.ids[all_rows], dtype="str"))
        # Taken as Series: ``to_numpy()`` of a tz-aware column makes an object array of
        # Timestamps (1.5 s per retraining at 200k declarations, 5x that at 1M).
        frame.insert(1, "declared_at", decl["declared_at"].iloc[all_rows].reset_index(drop=True))
        frame.insert(
            2, "enterprise_id", decl["enterprise_id"].iloc[all_rows].reset_index(drop=True)
        )
        labels = pd.concat(
            [
                hist[
                    [
                        "declaration_id",
                        "inspected_at",
                        "selection",
                        "result",
                        "severity",
                        "hazard_type",
                    ]
                ],  # fmt: skip
                own,
            ],
            ignore_index=True,
        )
        labels["declaration_id"] = labels["declaration_id"].astype("str")
        labels["inspected"] = True
        labels["nonconforming"] = (labels["result"] == "nonconforming").astype(np.float64)
        labels["inspected_at"] = pd.to_datetime(labels["inspected_at"], utc=True)
        return frame, labels.drop(columns=["result"])

    def retrain(self, st: PolicyState, week_start: pd.Timestamp, w: int) -> None:
        """Fit the policy's model at ``week_start`` on what it knows then."""
        T = week_start
        rows, _ = st.selected()
        own = int((self.world.universe.reveal_ns[rows] < T.value).sum())
        cached = self._history_models.get(T.isoformat()) if own == 0 else None
        if cached is not None:  # nothing of its own yet: the history model of that date
            self._use_model(st, cached[0], cached[1], T)
            return
        frame, labels = self._training_rows(st, int(T.value))
        vm = self.config.split.validation_months
        split = TimeSplit(
            start=pd.Timestamp(frame["declared_at"].min()),
            validation_start=T - pd.DateOffset(months=vm),
            test_start=T,
            end=T,
        )
        assert self.world.source is not None
        data = prepare(frame, labels, self.world.source.names, 1, vm, split=split)
        try:
            fitted = train_model(data, self.config)
        except ValueError as exc:
            if st.model is None:
                raise ValueError(f"{st.policy.name}: cannot train the first model: {exc}") from exc
            st.retrain_notes.append(f"{T.date()}: kept the previous model ({exc})")
            return
        pdir = self.state_dir / _slug(st.policy.name)
        pdir.mkdir(parents=True, exist_ok=True)
        name = f"{_slug(st.policy.name)}/model-{w:04d}.txt"
        fitted.booster.save_model(str(self.state_dir / name))
        if own == 0:
            self._history_models[T.isoformat()] = (name, fitted.calibration)
        self._use_model(st, name, fitted.calibration, T)

    def _use_model(self, st: PolicyState, name: str, calibration: Calibration, T: pd.Timestamp
                   ) -> None:  # fmt: skip
        # Loaded from its file: a resumed run scores with exactly the same trees.
        st.model = lgb.Booster(model_file=str(self.state_dir / name))
        st.calibration = calibration
        st.model_file = name
        st.trained_at = T.isoformat()

    def _probability(self, st: PolicyState, X: np.ndarray) -> np.ndarray:
        assert st.model is not None and st.calibration is not None
        raw = np.asarray(st.model.predict(X, raw_score=True), dtype=np.float64)
        return st.calibration.probability(raw)

    # ------------------------------------------------------------------ the replay

    def week_rows(self, week_start: pd.Timestamp, week_end: pd.Timestamp) -> np.ndarray:
        w = self.world
        m = (w.t_ns >= week_start.value) & (w.t_ns < week_end.value) & w.universe.eligible
        rows = np.flatnonzero(m)
        return rows[np.argsort(w.t_ns[rows], kind="stable")]

    def view(self, st: PolicyState, rows: np.ndarray, ws: pd.Timestamp, we: pd.Timestamp
             ) -> tuple[WeekView, np.ndarray | None]:  # fmt: skip
        """The policy's view of the week, and the full feature matrix (for training later)."""
        w = self.world
        pol = st.policy
        revealed, revealed_rows = self.revealed(st, int(ws.value))
        X = None
        p = None
        if pol.needs_model or pol.needs_features:
            assert w.source is not None
            X = w.source.week(rows, revealed, revealed_rows)
        if pol.needs_model:
            assert X is not None
            p = self._probability(st, X)
        decl = w.tables["declarations"].iloc[rows].reset_index(drop=True)
        names = w.source.names if w.source is not None else []
        view = WeekView(
            week_start=ws,
            week_end=we,
            declarations=decl,
            features=X if pol.needs_features else None,
            feature_names=names,
            probability=p,
            legacy=w.legacy[rows].copy(),
            revealed=revealed,
        )
        return view, X

    def run(self, stop_after: int | None = None) -> bool:
        """Replay the remaining weeks; returns True when every week is done.

        ``stop_after``: stop after that many weeks of this call (tests of resuming).
        """
        w = self.world
        u = w.universe
        n_features = len(w.source.names) if w.source is not None else 0
        for done_now, wi in enumerate(range(self.weeks_done, len(self.weeks))):
            if stop_after is not None and done_now >= stop_after:
                return False
            ws, we = self.weeks[wi]
            t0 = time.perf_counter()
            rows = self.week_rows(ws, we)
            k = int(round(self.spec.budget * len(rows)))
            exp = u.expected_nc[rows]
            crit = u.expected_critical[rows]
            oracle = None
            if u.mode == "truth" and k:
                best = np.argsort(-exp, kind="stable")[:k]
                oracle = (float(exp[best].sum()), float(np.sort(crit)[::-1][:k].sum()))
            held = np.flatnonzero(u.held_aside[rows])
            for name, st in self.states.items():
                retrained = False
                if self._due(st, ws):
                    t1 = time.perf_counter()
                    self.retrain(st, ws, wi)
                    retrained = True
                    self.timings["retrain_s"] = (
                        self.timings.get("retrain_s", 0.0) + time.perf_counter() - t1
                    )
                t1 = time.perf_counter()
                view, X = self.view(st, rows, ws, we)
                self.timings["features_s"] = (
                    self.timings.get("features_s", 0.0) + time.perf_counter() - t1
                )
                sel = st.policy.select(view, k, st.rng)
                _check(sel, len(rows), k, name)
                chosen = rows[sel.rows]
                st.rows.append(chosen)
                st.random.append(sel.random.astype(bool))
                st.X.append(
                    X[sel.rows] if (X is not None and st.policy.needs_model)
                    else np.zeros((0, n_features))
                )  # fmt: skip
                score = (
                    view.probability if view.probability is not None
                    else view.legacy if st.policy.kind == "legacy" else None
                )  # fmt: skip
                st.eval_rows.append(rows[held])
                st.eval_score.append(score[held] if score is not None else np.zeros(0))
                rec = {
                    "policy": name,
                    "week": wi,
                    "start": str(ws.tz_convert(self.spec.timezone).date()),
                    "declarations": int(len(rows)),
                    "budget": k,
                    "inspected": int(len(chosen)),
                    "random_draws": int(sel.random.sum()),
                    "found": float(u.expected_nc[chosen].sum()),
                    "critical_found": float(u.expected_critical[chosen].sum()),
                    "found_revealed": int(u.nonconforming[chosen].sum()),
                    "all_nonconformities": float(exp.sum()),
                    "all_critical": float(crit.sum()),
                    "retrained": retrained,
                }
                if oracle is not None:
                    rec["oracle_found"], rec["oracle_critical"] = oracle
                self.records.append(rec)
            self.timings["weeks_s"] = self.timings.get("weeks_s", 0.0) + time.perf_counter() - t0
            self._save_week(wi)
            self.weeks_done = wi + 1
            day = ws.tz_convert(self.spec.timezone).date()
            self.say(f"week {wi + 1}/{len(self.weeks)} ({day})")
        return True


def _check(sel: Selection, n: int, k: int, name: str) -> None:
    rows = sel.rows
    if len(rows) > k:
        raise ValueError(f"policy {name} selected {len(rows)} declarations, budget {k}")
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"policy {name} selected a position outside the week")
    if len(np.unique(rows)) != len(rows):
        raise ValueError(f"policy {name} selected a declaration twice")
    assert sel.random is not None
    if len(sel.random) != len(rows):
        raise ValueError(f"policy {name}: random flags and rows differ in length")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value)}")
