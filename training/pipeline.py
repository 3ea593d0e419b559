"""The whole training step: split, train, calibrate, evaluate against baselines (and the oracle
on demo data), derive the supervision policy, draw the plots and write the model bundle.

MLflow logging and registration are separate (:mod:`training.registry`), so this runs and is
tested without a tracking store.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from features.bundle import ModelBundle, save_bundle
from features.progress import Progress
from policy.tiers import derive_policy
from training import baselines, plots
from training.config import TrainConfig
from training.evaluate import evaluate_scores, evaluation_frame, flatten_metrics
from training.train import (
    TEST,
    TRAIN,
    VALIDATION,
    FittedModel,
    TrainingData,
    prepare,
    train_model,
)


@dataclass
class TrainingResult:
    """What one training run produced."""

    bundle: ModelBundle
    bundle_dir: Path
    report_dir: Path
    fitted: FittedModel
    split: dict[str, str]
    metrics: dict[str, Any]  # model's test metrics (evaluate_scores output)
    baselines: dict[str, dict[str, Any]]  # name -> test metrics
    candidates: dict[str, dict[str, float]]  # correction -> validation + test summary
    policy: dict[str, Any]
    fingerprint: str
    plots: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    # a few test rows of feature columns: the registered model's input example
    example: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self, budget: float) -> dict[str, float]:
        """Headline numbers at ``budget`` for printing and the promotion gate."""
        return headline(self.metrics, budget)


def headline(metrics: dict[str, Any], budget: float) -> dict[str, float]:
    """Precision and critical recall at ``budget`` (random sample and all inspected), AUC, ECE."""
    entry = metrics["budgets"][f"{budget:g}"]
    out = {
        "precision": entry["random_sample"]["precision"],
        "critical_recall": entry["random_sample"]["critical_recall"],
        "precision_all_inspected": entry["all_inspected"]["precision"],
        "critical_recall_all_inspected": entry["all_inspected"]["critical_recall"],
        "auc": metrics["random_sample"]["auc"],
        "auc_all_inspected": metrics["all_inspected"]["auc"],
        "ece": metrics["random_sample"]["ece"],
        "ece_all_inspected": metrics["all_inspected"]["ece"],
    }
    if "truth" in entry:
        out["oracle_ratio"] = entry["truth"]["ratio"]
        out["critical_oracle_ratio"] = entry["truth"]["critical_ratio"]
    return out


def training_fingerprint(data: TrainingData, store_fingerprint: str) -> str:
    """sha256 over the sorted labelled (train + validation) declaration ids with their labels,
    the feature order and the store's fingerprint (its manifest digest)."""
    rows = data.known & (data.segment != TEST)
    ids = data.frame["declaration_id"].astype("str").to_numpy()[rows]
    y = data.labels["y"].to_numpy()[rows].astype(np.int8)
    order = np.argsort(ids, kind="stable")
    digest = hashlib.sha256()
    digest.update(store_fingerprint.encode())
    digest.update("\x1f".join(data.feature_names).encode())
    digest.update(
        "\n".join(f"{i}\t{v}" for i, v in zip(ids[order], y[order], strict=True)).encode()
    )
    return digest.hexdigest()


def _align_truth(ids: pd.Series, truth: pd.DataFrame | None) -> pd.DataFrame | None:
    if truth is None:
        return None
    t = truth[["declaration_id", "p_true", "critical_p_true"]].copy()
    t["declaration_id"] = t["declaration_id"].astype("str")
    aligned = pd.DataFrame({"declaration_id": ids.astype("str").to_numpy()}).merge(
        t, on="declaration_id", how="left"
    )
    if aligned["p_true"].isna().any():
        raise ValueError("ground truth lacks some test declarations")
    return aligned


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_training(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    feature_specs: list[Any],
    *,
    config: TrainConfig,
    models_dir: Path,
    model_name: str,
    declarations: pd.DataFrame | None = None,
    credit_ratings: pd.DataFrame | None = None,
    attributes: dict[str, str] | None = None,
    store_fingerprint: str = "",
    ground_truth: pd.DataFrame | None = None,
    progress: Progress | None = None,
    entities: list[str] | None = None,
    categories: dict[str, list[str]] | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    sampling: dict[str, Any] | None = None,
    fit: Callable[..., Any] | None = None,
) -> TrainingResult:
    """Train, evaluate and write a bundle.

    Parameters
    ----------
    features, labels
        ``build_offline`` and ``build_labels`` outputs.
    feature_specs
        ``feature_specs(attributes)`` (dataclasses or dicts), in model column order.
    config
        Training configuration.
    models_dir
        Parent folder of the bundle (``<model_name>-<UTC time>-<id>/``) and its report folder
        (same name plus ``.report``: metrics JSON and plots, not part of the bundle).
    model_name
        Registered model name, recorded in the bundle.
    declarations, credit_ratings
        Contract tables for the legacy-rule and plain LightGBM baselines (skipped if omitted).
    attributes
        Extra model attributes of the store (recorded in the bundle).
    store_fingerprint
        Digest of the store manifest, part of the training-data fingerprint.
    ground_truth
        Demo only: ``declaration_id, p_true, critical_p_true`` for the oracle comparison.
    progress
        Optional callback told the name of each step as it starts.
    entities
        The history keys ``features`` was built from (None: the default set); recorded in the
        bundle so serving builds exactly those.
    categories
        The code maps ``features`` was built with; None: fitted on ``declarations`` as
        ``build_offline`` does by default (``features.categorical.fit_code_maps``).
    tables
        The contract tables: with them (and ``features.select``) the history keys are chosen
        on validation (``training.select``) and the features rebuilt for the chosen set.
    sampling
        How ``features`` was sampled from partitioned features (``training.partitioned``),
        recorded in the report and the bundle's metrics.
    fit
        Booster fitter (``training.train.train_model``'s ``fit``: a Dask cluster's, or local).

    Returns
    -------
    TrainingResult
    """
    timings: dict[str, float] = {}

    def step(name: str) -> None:
        if progress:
            progress(name)

    specs = [_jsonable(s) for s in feature_specs]
    names = [s["name"] for s in specs]
    if categories is None:
        from features.categorical import fit_code_maps
        from features.registry import categorical_keys

        cats = [n for n in names if n in categorical_keys(attributes)]
        if cats and declarations is None:
            raise ValueError("categorical features need their code maps (or the declarations)")
        categories = (
            {n: m for n, m in fit_code_maps(declarations, attributes).items() if n in cats}
            if cats and declarations is not None
            else {}
        )
    ev = config.evaluation
    step("split")
    t0 = time.perf_counter()
    data = prepare(
        features, labels, names, config.split.test_months, config.split.validation_months
    )
    timings["split"] = time.perf_counter() - t0
    selection: dict[str, Any] = {}
    if config.features.select and tables is not None:
        from features.build import build_offline
        from features.registry import feature_specs as registry_specs
        from training.select import select_entities

        t0 = time.perf_counter()
        chosen = select_entities(data, tables, attributes, categories, config, progress)
        entities = chosen.entities
        selection = chosen.as_dict()
        step("build the chosen features")
        features = build_offline(tables, attributes, entities=entities, categories=categories)
        specs = [_jsonable(s) for s in registry_specs(attributes, entities)]
        names = [s["name"] for s in specs]
        data = prepare(
            features, labels, names, config.split.test_months, config.split.validation_months
        )
        timings["select"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fitted = train_model(data, config, progress, fit)
    timings["train"] = time.perf_counter() - t0

    step("evaluate")
    t0 = time.perf_counter()
    test_rows = data.rows(TEST, labelled=False)
    test_frame = data.labels[test_rows].reset_index(drop=True)
    test_ids = data.frame.loc[test_rows, "declaration_id"]
    truth = _align_truth(test_ids, ground_truth)
    X_test = data.matrix(test_rows)
    p_test = fitted.probability(X_test)
    kw: dict[str, Any] = {
        "budgets": ev.budgets,
        "ece_bins": ev.ece_bins,
        "truth": truth,
        "seed": config.seed,
    }
    metrics = evaluate_scores(p_test, test_frame, probabilities=True, **kw)
    candidates: dict[str, dict[str, float]] = {}
    for name, (booster, calibration) in fitted.alternatives.items():
        alt_raw = cast(np.ndarray, booster.predict(X_test, raw_score=True))
        alt_p = calibration.probability(alt_raw)
        alt = evaluate_scores(alt_p, test_frame, probabilities=True, **kw)
        candidates[name] = {
            **fitted.candidates[name],
            **{k: v for k, v in headline(alt, config.policy.budget).items()},
            "kept": float(name == fitted.correction),
        }
    timings["evaluate"] = time.perf_counter() - t0

    step("baselines")
    t0 = time.perf_counter()
    base: dict[str, dict[str, Any]] = {}
    base["random"] = evaluate_scores(
        baselines.random_scores(len(X_test), config.seed + 1), test_frame, probabilities=False, **kw
    )
    if declarations is not None:
        legacy = baselines.legacy_scores(declarations, credit_ratings, test_ids)
        base["legacy_rule"] = evaluate_scores(legacy, test_frame, probabilities=False, **kw)
    tr = data.rows("train")
    lr = baselines.fit_logistic(data.matrix(tr), data.labels["y"].to_numpy()[tr], config.seed)
    base["logistic_regression"] = evaluate_scores(
        baselines.logistic_scores(lr, X_test), test_frame, probabilities=True, **kw
    )
    plain_verdict: dict[str, Any] = {}
    if declarations is not None:
        # aligned to the training frame's order (sorted by time)
        pos = pd.Index(declarations["declaration_id"].astype("str")).get_indexer(
            pd.Index(data.frame["declaration_id"].astype("str"))
        )
        if (pos < 0).any():
            raise ValueError("the declarations table lacks declarations of the features")
        p_plain, plain_cols = baselines.plain_lightgbm_scores(
            declarations.iloc[pos],
            attributes,
            data.labels["y"].to_numpy(dtype=np.float64),
            data.rows(TRAIN),
            data.rows(VALIDATION),
            test_rows,
            config.seed,
            config.lightgbm.num_threads,
        )
        base["plain_lightgbm"] = evaluate_scores(p_plain, test_frame, probabilities=True, **kw)
        plain_verdict = baselines.compare_to_plain(metrics, base["plain_lightgbm"])
        plain_verdict["features"] = plain_cols
    timings["baselines"] = time.perf_counter() - t0

    step("policy")
    t0 = time.perf_counter()
    va_all = data.rows(VALIDATION, labelled=False)
    policy = derive_policy(
        fitted.probability(data.matrix(va_all)),
        budget=config.policy.budget,
        monitoring_share=config.policy.monitoring_share,
    ).to_dict()
    fingerprint = training_fingerprint(data, store_fingerprint)
    timings["policy"] = time.perf_counter() - t0

    step("bundle")
    t0 = time.perf_counter()
    created = datetime.now(UTC)
    stem = f"{model_name}-{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    models_dir = Path(models_dir)
    report_dir = models_dir / f"{stem}.report"
    report_dir.mkdir(parents=True, exist_ok=False)
    counts = {
        "declarations": len(data.frame),
        **{
            f"{seg}_declarations": int((data.segment == seg).sum())
            for seg in ("train", "validation", "test")
        },
        **{f"{seg}_labelled": int(data.rows(seg).sum()) for seg in ("train", "validation", "test")},
        "test_random_sample": int((test_frame["random"] & test_frame["inspected"]).sum()),
    }
    bundle_metrics = {
        "test": metrics,
        "baselines": {
            k: {"budgets": v["budgets"], "random_sample": v["random_sample"]}
            for k, v in base.items()
        },
        "headline": headline(metrics, config.policy.budget),
        "split": data.split.as_dict(),
        "model_size": fitted.size,
        "correction": fitted.correction,
        "counts": counts,
        "plain_baseline": plain_verdict,
        "feature_selection": {
            "entities": selection.get("entities", entities),
            "keys": selection.get("keys", []),
        },
        "capacity": {"chosen": fitted.capacity, "grid": fitted.grid},
        **({"sample": sampling} if sampling else {}),
    }
    bundle = ModelBundle(
        booster=fitted.booster,
        calibration=fitted.calibration,
        feature_names=names,
        feature_specs=specs,
        policy=policy,
        metrics=_jsonable(bundle_metrics),
        fingerprint=fingerprint,
        attributes=dict(attributes or {}),
        created_at=created.isoformat(),
        model_name=model_name,
        entities=None if entities is None else list(entities),
        categories={n: list(v) for n, v in categories.items() if n in names},
        extra={
            "config": _jsonable(config.model_dump()),
            "correction": fitted.correction,
            "store_fingerprint": store_fingerprint,
        },
    )
    bundle_dir = save_bundle(bundle, models_dir / stem)
    timings["bundle"] = time.perf_counter() - t0

    step("plots")
    t0 = time.perf_counter()
    insp = test_frame["inspected"].to_numpy()
    rnd = insp & test_frame["random"].to_numpy()
    y = test_frame["y"].to_numpy()
    plot_paths = [
        plots.calibration_plot(
            {"all inspected": (p_test[insp], y[insp]), "random sample": (p_test[rnd], y[rnd])},
            report_dir / "calibration.png",
        ),
        plots.budget_plot(
            {"model": metrics, **base}, report_dir / "budget_random_sample.png", "random_sample"
        ),
        plots.budget_plot(
            {"model": metrics, **base}, report_dir / "budget_all_inspected.png", "all_inspected"
        ),
    ]
    rng = np.random.default_rng(config.seed)
    sample = rng.choice(len(X_test), size=min(ev.shap_sample, len(X_test)), replace=False)
    plot_paths.append(
        plots.shap_summary_plot(
            fitted.booster,
            X_test[np.sort(sample)],
            names,
            fitted.calibration.a,
            report_dir / "shap_summary.png",
        )
    )
    timings["plots"] = time.perf_counter() - t0
    report = {
        "bundle": str(bundle_dir),
        "split": data.split.as_dict(),
        "counts": counts,
        "model_size": fitted.size,
        "correction": fitted.correction,
        "candidates": candidates,
        "calibration": {"a": fitted.calibration.a, "b": fitted.calibration.b},
        "policy": policy,
        "test": metrics,
        "baselines": base,
        "plain_baseline": plain_verdict,
        "feature_selection": selection,
        "capacity": {"chosen": fitted.capacity, "grid": fitted.grid},
        "fingerprint": fingerprint,
        **({"sample": sampling} if sampling else {}),
    }
    (report_dir / "metrics.json").write_text(
        json.dumps(_jsonable(report), indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return TrainingResult(
        bundle=bundle,
        bundle_dir=bundle_dir,
        report_dir=report_dir,
        fitted=fitted,
        split=data.split.as_dict(),
        metrics=metrics,
        baselines=base,
        candidates=candidates,
        policy=policy,
        fingerprint=fingerprint,
        plots=plot_paths,
        timings=timings,
        counts=counts,
        example=pd.DataFrame(X_test[:3], columns=names),
    )


def evaluate_bundle(
    bundle: ModelBundle,
    features: pd.DataFrame | Callable[[ModelBundle], pd.DataFrame],
    labels: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    budgets: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.20),
    ece_bins: int = 10,
    ground_truth: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Score every declaration with ``start <= declared_at < end`` and evaluate.

    Parameters
    ----------
    bundle
        A loaded (verified) model bundle.
    features, labels
        ``build_offline`` (with the bundle's feature columns) and ``build_labels`` outputs;
        ``features`` may be a callable giving the frame of a bundle
        (:meth:`TrainingInputs.features_for`: its history keys and code maps).
    start, end
        Period (UTC-aware timestamps; half-open).
    """
    if callable(features):  # a source that builds each bundle's own feature set
        features = features(bundle)
    missing = [c for c in bundle.feature_names if c not in features.columns]
    if missing:
        raise ValueError(f"features lack the bundle's columns {missing[:5]}")
    ts = pd.to_datetime(features["declared_at"], utc=True)
    rows = ((ts >= start) & (ts < end)).to_numpy()
    if not rows.any():
        raise ValueError(f"no declarations between {start} and {end}")
    period = features.loc[rows].reset_index(drop=True)
    X = period[bundle.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
    p = bundle.probability(X)
    frame = evaluation_frame(period, labels)
    truth = _align_truth(period["declaration_id"], ground_truth)
    out = evaluate_scores(
        p, frame, probabilities=True, budgets=budgets, ece_bins=ece_bins, truth=truth, seed=seed
    )
    out["period"] = {"start": start.isoformat(), "end": end.isoformat()}
    return out


__all__ = [
    "TrainingResult",
    "evaluate_bundle",
    "flatten_metrics",
    "headline",
    "run_training",
    "training_fingerprint",
]


@dataclass
class TrainingInputs:
    """Everything read from a store for training or evaluation."""

    tables: dict[str, pd.DataFrame]
    attributes: dict[str, str]
    features: pd.DataFrame
    labels: pd.DataFrame
    specs: list[Any]
    store_fingerprint: str
    categories: dict[str, list[str]] = field(default_factory=dict)
    _built: dict[str, pd.DataFrame] = field(default_factory=dict)

    def features_for(self, bundle: ModelBundle) -> pd.DataFrame:
        """The offline features of ``bundle``'s own feature set (history keys, code maps)."""
        from features.build import build_offline

        key = json.dumps([bundle.entities, bundle.categories, bundle.attributes], sort_keys=True)
        if key not in self._built:
            self._built[key] = build_offline(
                self.tables,
                bundle.attributes or None,
                entities=bundle.entities,
                categories=bundle.categories or None,
            )
        return self._built[key]


def load_inputs(
    store_dir: Path, progress: Progress | None = None, build: bool = True
) -> TrainingInputs:
    """Read the store, build point-in-time features (unless ``build`` is False: evaluation
    builds each bundle's own with :meth:`TrainingInputs.features_for`) and labels.

    The store fingerprint is the sha256 of its ``manifest.json`` (which lists the content hash
    of every loaded batch).
    """
    from features.build import build_labels, build_offline
    from features.categorical import fit_code_maps
    from features.registry import feature_specs
    from features.store import Store

    store = Store(Path(store_dir))
    if progress:
        progress("read store")
    tables = store.tables()
    if len(tables["declarations"]) == 0:
        raise ValueError(f"store {store_dir} has no declarations")
    attributes = store.attributes
    manifest = Path(store_dir) / "manifest.json"
    fp = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists() else ""
    if progress:
        progress("build features")
    # Code maps from every stored declaration (labels are not read; deterministic).
    categories = fit_code_maps(tables["declarations"], attributes)
    features = build_offline(tables, attributes, categories=categories) if build else pd.DataFrame()
    labels = build_labels(tables)
    return TrainingInputs(
        tables, attributes, features, labels, feature_specs(attributes), fp, categories
    )


def load_ground_truth(path: Path) -> pd.DataFrame:
    """Demo ground truth (``declaration_truth.parquet``): ``declaration_id, p_true,
    critical_p_true``. Only evaluation reads it."""
    truth = pd.read_parquet(path, columns=["declaration_id", "p_true", "critical_p_true"])
    truth["declaration_id"] = truth["declaration_id"].astype("str")
    return truth
