"""Fit the LightGBM risk model on a time split, with a selection-bias correction chosen on the
validation random sample, and calibrate it (Platt on the raw margin).

Rows and labels
---------------
Features: one row per declaration (``features.build.build_offline``). Labels: inspected
declarations only (``nonconforming`` is 1/0), and only if the result was known before the next
segment began (see :mod:`training.split`).

Selection bias
--------------
Most labels come from targeted inspections. Candidates (``selection.candidates``):

* ``none``: every labelled row weighs 1.
* ``random_upweight``: rows of the random monitoring sample weigh ``random_weight``.
* ``ipw``: inverse propensity ``1 / P(inspected | features)`` from a small LightGBM fitted on all
  train-period declarations, clipped at ``ipw_clip`` and normalised to mean 1.

Each candidate is trained with early stopping on the loss it optimises (its own weights, times
the severity weights, on the validation rows) and calibrated (Platt) on the labelled validation
rows. ``none`` is kept unless a correction's calibrated per-row log loss over **all** labelled
validation rows is lower by more than ``replace_none_z`` standard errors of the paired
difference, and not higher on the validation random sample: the random sample alone holds a few
hundred rows with a handful of positives (257 rows, 4 positives on the 200k declarant world),
where an AUC difference of 0.1 is noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.bundle import Calibration
from features.progress import Progress
from training.calibrate import fit_platt
from training.config import TrainConfig
from training.evaluate import evaluation_frame, paired_z, ranking_metrics, row_logloss
from training.split import TEST, TRAIN, VALIDATION, TimeSplit, time_split

ID_COLUMNS = ("declaration_id", "declared_at", "enterprise_id")


@dataclass
class TrainingData:
    """Features of all declarations with their labels, segments and label availability."""

    frame: pd.DataFrame
    feature_names: list[str]
    labels: pd.DataFrame  # evaluation_frame: inspected, y, critical, random
    segment: np.ndarray
    known: np.ndarray  # label usable for this row (inspected and known in time)
    split: TimeSplit
    severity: np.ndarray  # str per row: the inspection's severity, "" when none

    def matrix(self, rows: np.ndarray | None = None) -> np.ndarray:
        """float64 feature matrix (model column order) of ``rows`` (a boolean mask).

        Filled one column at a time (column-major, as ``DataFrame.to_numpy`` of one block):
        selecting the columns and then the rows of the frame first would copy every row's
        features twice before the cast (the propensity model's matrix of all train-period rows
        peaked at three times its own size).
        """
        n = len(self.frame) if rows is None else int(np.count_nonzero(rows))
        out = np.empty((n, len(self.feature_names)), dtype=np.float64, order="F")
        for j, name in enumerate(self.feature_names):
            col = self.frame[name].to_numpy()
            if col.dtype.kind != "f":  # a nullable or object column: its NA as NaN
                col = self.frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            out[:, j] = col if rows is None else col[rows]
        return out

    def rows(self, segment: str, labelled: bool = True) -> np.ndarray:
        """Boolean mask of a segment's rows (only labelled ones by default)."""
        mask = self.segment == segment
        return mask & self.known if labelled else mask


def prepare(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    feature_names: list[str],
    test_months: int,
    validation_months: int,
    split: TimeSplit | None = None,
) -> TrainingData:
    """Align labels to features, split by time and mark usable labels.

    Parameters
    ----------
    features
        ``build_offline`` output (``declaration_id``, ``declared_at``, ``enterprise_id`` and the
        features in model order).
    labels
        ``build_labels`` output.
    feature_names
        Model feature order (``feature_specs`` names).
    test_months, validation_months
        Split lengths.
    split
        Explicit boundaries instead of the calendar split of ``features`` (the backtest retrains
        at a date ``T`` with validation just before it and no test rows).
    """
    missing = [c for c in (*ID_COLUMNS[:2], *feature_names) if c not in features.columns]
    if missing:
        raise ValueError(f"feature frame lacks columns {missing[:5]}")
    frame = features.sort_values(["declared_at", "declaration_id"], kind="stable").reset_index(
        drop=True
    )
    if split is None:
        split = time_split(frame["declared_at"], test_months, validation_months)
    segment = split.segment(frame["declared_at"])
    ev = evaluation_frame(frame, labels)
    inspected_at = frame[["declaration_id"]].merge(
        labels[["declaration_id", "inspected_at"]], on="declaration_id", how="left"
    )["inspected_at"]
    known = ev["inspected"].to_numpy() & split.label_known(segment, inspected_at)
    severity = (
        frame[["declaration_id"]]
        .merge(labels[["declaration_id", "severity"]], on="declaration_id", how="left")["severity"]
        .astype("str")
        .fillna("")
        .to_numpy()
    )
    return TrainingData(frame, list(feature_names), ev, segment, known, split, severity)


def fit_booster(
    X_train: np.ndarray,
    y_train: np.ndarray,
    w_train: np.ndarray | None,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    feature_names: list[str],
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    w_valid: np.ndarray | None = None,
) -> lgb.Booster:
    """Train with early stopping on the validation log loss, weighted by ``w_valid`` (give the
    validation rows the weights the training rows have, so that early stopping watches the loss
    that is optimised); return the booster cut at its best iteration (so every later
    ``predict`` uses exactly those trees)."""
    # Native categoricals (code maps, contract vocabularies): LightGBM splits on sets of codes.
    cats = categorical_names(feature_names)
    dtrain = lgb.Dataset(
        X_train,
        label=y_train,
        weight=w_train,
        feature_name=feature_names,
        categorical_feature=[n for n in feature_names if n in cats] or "auto",
        free_raw_data=True,
    )
    dvalid = lgb.Dataset(X_valid, label=y_valid, weight=w_valid, reference=dtrain)
    booster = lgb.train(
        {**params, "first_metric_only": True},
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dvalid],
        valid_names=["validation"],
        # first_metric_only on the callback itself: the params' flag does not reach a callback
        # made here, which otherwise stops on whichever metric stalls first and keeps that
        # metric's best round (the validation AUC, noisy with ~100 positives, cut the 200k
        # weak_enterprise world's model at 15 trees where the log loss is lowest at 22).
        callbacks=[
            lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
        ],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def categorical_names(feature_names: list[str]) -> set[str]:
    """The features among ``feature_names`` that LightGBM treats as categorical."""
    from features.registry import categorical_feature_names

    attributes = {
        n[len("attr_") : -len("_cat_now")]: "categorical"
        for n in feature_names
        if n.startswith("attr_") and n.endswith("_cat_now")
    }
    return set(categorical_feature_names(attributes)) & set(feature_names)


def shap_cost(trees: int, leaves: int, depth: int) -> int:
    """Exact TreeSHAP cost per row, up to a constant: trees x leaves x depth^2."""
    return trees * leaves * depth * depth


def capacity_grid(config: TrainConfig, n_labelled: int) -> list[dict[str, Any]]:
    """Every point of the full grid, scaled to the labelled train rows (see
    :func:`choose_capacity`, which walks it one axis at a time).

    ``min_data_in_leaf`` is a share of the labelled rows (at least the floor); the tree count is
    capped so that the TreeSHAP cost (trees x leaves x depth^2) stays within the budget.
    """
    cc = config.capacity
    depth = _depth(config)
    out = []
    for leaves in cc.leaves:
        rounds = min(config.lightgbm.num_boost_round, cc.shap_cost_budget // (leaves * depth**2))
        if rounds < 10:
            continue
        for share in cc.min_leaf_shares:
            mdl = max(cc.min_leaf_floor, round(share * n_labelled))
            for ff in cc.feature_fractions:
                out.append(
                    {
                        "num_leaves": leaves,
                        "min_data_in_leaf": mdl,
                        "feature_fraction": ff,
                        "num_boost_round": rounds,
                    }
                )
    return out


def _depth(config: TrainConfig) -> int:
    return config.lightgbm.max_depth if config.lightgbm.max_depth > 0 else 8


def choose_capacity(
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None = None,
    fit: Callable[..., lgb.Booster] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Walk the grid one axis at a time, each fit on train (severity weights, no correction)
    with early stopping on the validation log loss under the same severity weights, keeping the
    lowest such validation log loss: first the leaves
    (at the first ``min_leaf_shares`` and the last ``feature_fractions``), then the minimum leaf
    size at the best leaves, then the feature fraction. The configured ``lightgbm.*`` point is
    fitted too and stays unless the grid's best lowers the validation log loss by more than
    ``capacity.replace_default_z`` standard errors of the paired per-row difference (a few
    thousand validation rows: smaller differences are noise). Returns the chosen overrides and
    one row per point fitted."""
    tr, va = data.rows(TRAIN), data.rows(VALIDATION)
    y = data.labels["y"].to_numpy()
    X_tr, X_va = data.matrix(tr), data.matrix(va)
    w_tr = severity_weights(data, tr, config)
    w_va = severity_weights(data, va, config)
    grid = capacity_grid(config, int(tr.sum()))
    if not grid:
        raise ValueError("capacity grid is empty: shap_cost_budget is too small for its leaves")
    mdls = list(dict.fromkeys(q["min_data_in_leaf"] for q in grid))  # in share order
    ffs = list(config.capacity.feature_fractions)
    rows: list[dict[str, Any]] = []
    row_losses: list[np.ndarray] = []  # weighted per-row validation losses, as ``rows``

    def fit_point(point: dict[str, Any]) -> dict[str, Any]:
        for r in rows:
            if all(r[k] == point[k] for k in point):
                return r
        if progress:
            progress(f"capacity {len(rows) + 1}")
        params = config.lightgbm.params(config.seed) | {
            k: v for k, v in point.items() if k != "num_boost_round"
        }
        booster = (fit or fit_booster)(
            X_tr,
            y[tr],
            w_tr,
            X_va,
            y[va],
            data.feature_names,
            params,
            int(point["num_boost_round"]),
            config.lightgbm.early_stopping_rounds,
            w_valid=w_va,
        )
        raw = np.asarray(booster.predict(X_va, raw_score=True), dtype=np.float64)
        p = 1.0 / (1.0 + np.exp(-raw))
        losses = row_logloss(p, y[va]) * (1.0 if w_va is None else w_va)
        logloss = float(losses.sum() / (len(losses) if w_va is None else w_va.sum()))
        size = model_size(booster)
        row = {
            **point,
            "trees": size["trees"],
            "depth_max": size["depth_max"],
            "shap_cost": shap_cost(size["trees"], point["num_leaves"], size["depth_max"]),
            "validation_logloss": logloss,
            "validation_auc": ranking_metrics(p, y[va], probabilities=True)["auc"],
        }
        rows.append(row)
        row_losses.append(losses)
        return row

    def best_of(points: list[dict[str, Any]]) -> dict[str, Any]:
        return min((fit_point(q) for q in points), key=lambda r: r["validation_logloss"])

    def at(**fixed: Any) -> list[dict[str, Any]]:
        return [q for q in grid if all(q[k] == v for k, v in fixed.items())]

    lg = config.lightgbm
    configured = fit_point(
        {
            "num_leaves": lg.num_leaves,
            "min_data_in_leaf": lg.min_data_in_leaf,
            "feature_fraction": lg.feature_fraction,
            "num_boost_round": min(
                lg.num_boost_round,
                config.capacity.shap_cost_budget // (lg.num_leaves * _depth(config) ** 2),
            ),
        }
    )
    best = best_of(at(min_data_in_leaf=mdls[0], feature_fraction=ffs[-1]))
    best = best_of(at(num_leaves=best["num_leaves"], feature_fraction=ffs[-1]))
    best = best_of(at(num_leaves=best["num_leaves"], min_data_in_leaf=best["min_data_in_leaf"]))
    z = paired_z(row_losses[rows.index(best)], row_losses[rows.index(configured)])
    if best is not configured and not z > config.capacity.replace_default_z:
        best = configured
    for r in rows:
        r["kept"] = r is best
        r["configured"] = r is configured
    return {k: best[k] for k in ("num_leaves", "min_data_in_leaf", "feature_fraction")} | {
        "num_boost_round": best["num_boost_round"]
    }, rows


def model_size(booster: lgb.Booster) -> dict[str, int]:
    """Trees, total and largest leaves, and greatest depth (TreeSHAP cost drivers)."""
    dump = booster.dump_model()

    def depth(node: dict[str, Any]) -> int:
        if "leaf_index" in node or "left_child" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    trees = dump["tree_info"]
    leaves = [int(t["num_leaves"]) for t in trees]
    return {
        "trees": len(trees),
        "leaves_total": int(sum(leaves)),
        "leaves_max": int(max(leaves, default=0)),
        "depth_max": int(max((depth(t["tree_structure"]) for t in trees), default=0)),
    }


def propensity_weights(
    data: TrainingData, rows: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray, dict[str, float]]:
    """Inverse-propensity weights for ``rows`` from a model of ``inspected`` on all train-period
    declarations."""
    train_all = data.rows(TRAIN, labelled=False)
    X = data.matrix(train_all)
    target = data.labels["inspected"].to_numpy()[train_all].astype(np.float64)
    params = config.lightgbm.params(config.seed) | {
        "num_leaves": 15,
        "learning_rate": 0.1,
        "metric": "binary_logloss",
    }
    model = lgb.train(
        params, lgb.Dataset(X, label=target, feature_name=data.feature_names), num_boost_round=100
    )
    del X  # every train-period row: not held while the weighted rows' matrix is built
    p = np.asarray(model.predict(data.matrix(rows)), dtype=np.float64)
    w = np.minimum(1.0 / np.clip(p, 1e-6, 1.0), config.selection.ipw_clip)
    w = w / w.mean()
    return w, {"ipw_weight_max": float(w.max()), "ipw_propensity_min": float(p.min())}


def severity_weights(
    data: TrainingData, rows: np.ndarray, config: TrainConfig
) -> np.ndarray | None:
    """Weights of the labelled ``rows`` by the severity of their nonconformity
    (``severity_weights.critical`` / ``.major``; conforming and minor rows weigh 1), or ``None``
    when both weights are 1."""
    sw = config.severity_weights
    if sw.critical == 1.0 and sw.major == 1.0:
        return None
    pos = data.labels["y"].to_numpy()[rows] == 1.0
    sev = data.severity[rows]
    return np.where(
        pos & (sev == "critical"), sw.critical, np.where(pos & (sev == "major"), sw.major, 1.0)
    )


def sample_weights(
    correction: str, data: TrainingData, rows: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray | None, dict[str, float]]:
    """Row weights of the labelled ``rows``: the selection-bias correction times the severity
    weights (:func:`severity_weights`)."""
    w, stats = _correction_weights(correction, data, rows, config)
    sev = severity_weights(data, rows, config)
    if sev is None:
        return w, stats
    return (sev if w is None else w * sev), stats


def _correction_weights(
    correction: str, data: TrainingData, rows: np.ndarray, config: TrainConfig
) -> tuple[np.ndarray | None, dict[str, float]]:
    """Row weights of the labelled ``rows`` for a selection-bias correction."""
    if correction == "none":
        return None, {}
    if correction == "random_upweight":
        rnd = data.labels["random"].to_numpy()[rows]
        w = np.where(rnd, config.selection.random_weight, 1.0)
        return w, {"random_rows": float(rnd.sum())}
    if correction == "ipw":
        return propensity_weights(data, rows, config)
    raise ValueError(f"unknown correction {correction!r}")


@dataclass
class FittedModel:
    """A trained, calibrated booster and how it was chosen."""

    booster: lgb.Booster
    calibration: Calibration
    correction: str
    size: dict[str, int]
    # correction -> validation metrics (random sample and all inspected) and weight stats
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    # correction -> (booster, calibration), kept so every candidate can be evaluated on test
    alternatives: dict[str, tuple[lgb.Booster, Calibration]] = field(default_factory=dict)
    # capacity chosen on validation (overrides of lightgbm.*) and the grid's rows
    capacity: dict[str, Any] = field(default_factory=dict)
    grid: list[dict[str, Any]] = field(default_factory=list)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability."""
        # lightgbm's stubs also allow sparse/list results; a dense X gives an ndarray.
        raw = cast(np.ndarray, self.booster.predict(X, raw_score=True))
        return self.calibration.probability(raw)


def choose_correction(
    losses: dict[str, np.ndarray],
    random_rows: np.ndarray,
    z: float,
    candidates: dict[str, dict[str, float]] | None = None,
) -> str:
    """The selection-bias correction kept: ``none`` unless another candidate's per-row
    validation log loss (calibrated, all labelled validation rows) is lower by more than ``z``
    standard errors of the paired difference and its mean on the ``random_rows`` is not higher
    than ``none``'s; among several, the lowest log loss. Each candidate's paired z against
    ``none`` is written into ``candidates`` when given."""
    ref = losses["none"]
    passed = []
    for name, loss in losses.items():
        if name == "none":
            continue
        score = paired_z(loss, ref)
        not_worse_on_random = bool(
            random_rows.any() and loss[random_rows].mean() <= ref[random_rows].mean()
        )
        if candidates is not None:
            candidates[name]["validation.paired_z_vs_none"] = score
        if score > z and not_worse_on_random:
            passed.append(name)
    return min(passed, key=lambda n: float(losses[n].mean())) if passed else "none"


def train_model(
    data: TrainingData,
    config: TrainConfig,
    progress: Progress | None = None,
    fit: Callable[..., lgb.Booster] | None = None,
) -> FittedModel:
    """Train every selection-bias candidate, calibrate each on the validation period, and keep
    ``none`` unless a correction beats it clearly (:func:`choose_correction`).

    Parameters
    ----------
    data
        Output of :func:`prepare`.
    config
        Training configuration.
    progress
        Optional callback told the name of each step as it starts.
    fit
        Fits one booster with :func:`fit_booster`'s arguments (default: that function; on a
        Dask cluster: ``training.distributed.fit_booster_dask`` bound to a client).
    """
    tr = data.rows(TRAIN)
    va = data.rows(VALIDATION)
    y = data.labels["y"].to_numpy()
    rnd = data.labels["random"].to_numpy()
    if y[tr].sum() == 0 or y[va].sum() == 0:
        raise ValueError("train and validation periods both need nonconforming inspections")
    capacity: dict[str, Any] = {}
    grid: list[dict[str, Any]] = []
    if config.capacity.grid:
        capacity, grid = choose_capacity(data, config, progress, fit)
    X_tr, X_va = data.matrix(tr), data.matrix(va)
    y_tr, y_va = y[tr], y[va]
    rnd_va = rnd[va]
    params = config.lightgbm.params(config.seed) | {
        k: v for k, v in capacity.items() if k != "num_boost_round"
    }
    rounds = int(capacity.get("num_boost_round", config.lightgbm.num_boost_round))
    candidates: dict[str, dict[str, float]] = {}
    alternatives: dict[str, tuple[lgb.Booster, Calibration]] = {}
    names = list(config.selection.candidates)
    y_rnd = y_va[rnd_va]
    if not (0 < y_rnd.sum() < len(y_rnd)):
        # No random monitoring sample with both outcomes in validation (e.g. a foreign export of
        # inspected rows only): a correction cannot be judged, so only "none" is trained.
        names = ["none"]
    both = tr | va  # one propensity fit gives the train and the validation weights
    losses: dict[str, np.ndarray] = {}
    for correction in names:
        if progress:
            progress(f"train ({correction})")
        w_both, stats = sample_weights(correction, data, both, config)
        w_tr = None if w_both is None else w_both[tr[both]]
        w_va = None if w_both is None else w_both[va[both]]
        booster = (fit or fit_booster)(
            X_tr,
            y_tr,
            w_tr,
            X_va,
            y_va,
            data.feature_names,
            params,
            rounds,
            config.lightgbm.early_stopping_rounds,
            w_valid=w_va,
        )
        margin = np.asarray(booster.predict(X_va, raw_score=True), dtype=np.float64)
        calibration = fit_platt(margin, y_va)
        p = calibration.probability(margin)
        losses[correction] = row_logloss(p, y_va)
        on_random = ranking_metrics(p[rnd_va], y_va[rnd_va], probabilities=True)
        on_all = ranking_metrics(p, y_va, probabilities=True)
        candidates[correction] = {
            **{f"validation.random_sample.{k}": v for k, v in on_random.items()},
            **{f"validation.all_inspected.{k}": v for k, v in on_all.items()},
            "validation.all_inspected.logloss": float(losses[correction].mean()),
            # NaN, not a numpy warning, when the validation window holds no random-sample row.
            "validation.random_sample.logloss": (
                float(losses[correction][rnd_va].mean()) if rnd_va.any() else float("nan")
            ),
            "trees": float(booster.num_trees()),
            **stats,
        }
        alternatives[correction] = (booster, calibration)
    best = choose_correction(losses, rnd_va, config.selection.replace_none_z, candidates)
    booster, calibration = alternatives[best]
    return FittedModel(
        booster=booster,
        calibration=calibration,
        correction=best,
        size=model_size(booster),
        candidates=candidates,
        alternatives=alternatives,
        capacity=capacity,
        grid=grid,
    )


__all__ = [
    "TEST",
    "TRAIN",
    "VALIDATION",
    "FittedModel",
    "choose_correction",
    "TrainingData",
    "fit_booster",
    "model_size",
    "prepare",
    "sample_weights",
    "severity_weights",
    "train_model",
]
