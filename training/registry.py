"""MLflow tracking and registry: log a training run, register the pyfunc model with the alias
``challenger``, load a registered version's bundle (verified), and the promotion gate that moves
``champion``.

Store: SQLite tracking/registry (``sqlite:///mlruns/mlflow.db``) with artifacts under an explicit
artifact root; registry aliases, not stages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema, TensorSpec

from riskmodel import manifest_digest
from riskmodel.registry import BUNDLE_ARTIFACT, BUNDLE_DIR_TAG, MANIFEST_TAG, load_model
from training.config import GateConfig, TrainConfig
from training.evaluate import flatten_metrics
from training.pipeline import TrainingResult, evaluate_bundle, headline

EXPERIMENT = "guomen-training"
PROMOTION_EXPERIMENT = "guomen-promotion"
CHALLENGER, CHAMPION = "challenger", "champion"
PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")


def _artifact_uri(root: Path | str) -> str:
    text = str(root)
    if "://" in text:
        return text
    path = Path(text).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def experiment_id(tracking_uri: str, artifact_root: Path | str, name: str = EXPERIMENT) -> str:
    """Id of experiment ``name``, created with ``artifact_root`` as its artifact location."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = _artifact_uri(artifact_root).rstrip("/") + f"/{name}"
    return str(client.create_experiment(name, artifact_location=location))


def _use(tracking_uri: str) -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def _log_metrics(metrics: dict[str, float]) -> None:
    items = list(_finite(metrics).items())
    for i in range(0, len(items), 500):
        mlflow.log_metrics(dict(items[i : i + 500]))


def _pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in ("mlflow", "lightgbm", "numpy", "pandas", "scipy")]


@dataclass(frozen=True)
class RegisteredModel:
    """A registered version and where it came from."""

    name: str
    version: str
    run_id: str
    model_uri: str
    manifest_sha256: str


def log_and_register(
    result: TrainingResult,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifact_root: Path | str,
    model_name: str,
    experiment: str = EXPERIMENT,
) -> RegisteredModel:
    """Log params, metrics, plots and the bundle, register the pyfunc model and alias it
    ``challenger``.

    Parameters
    ----------
    result
        Output of :func:`training.pipeline.run_training`.
    config
        The configuration it ran with (logged as params).
    tracking_uri
        MLflow tracking and registry URI (``sqlite:///...``).
    artifact_root
        Folder (or URI) under which the experiment stores artifacts.
    model_name
        Registered model name.
    experiment
        Experiment name.
    """
    client = _use(tracking_uri)
    exp = experiment_id(tracking_uri, artifact_root, experiment)
    digest = manifest_digest(result.bundle_dir)
    names = result.bundle.feature_names
    with mlflow.start_run(experiment_id=exp, run_name=result.bundle_dir.name) as run:
        params: dict[str, Any] = {k: str(v) for k, v in config.flat().items()}
        params.update({f"split.{k}": v for k, v in result.split.items()})
        params.update(
            {
                "correction_kept": result.fitted.correction,
                "features": len(names),
                "calibration.a": result.fitted.calibration.a,
                "calibration.b": result.fitted.calibration.b,
                "fingerprint": result.fingerprint,
                "bundle_dir": str(result.bundle_dir),
                **{f"model_size.{k}": v for k, v in result.fitted.size.items()},
                **{f"policy.threshold.{k}": v for k, v in result.policy["thresholds"].items()},
            }
        )
        mlflow.log_params(params)
        metrics = flatten_metrics(result.metrics, "test")
        for name, base in result.baselines.items():
            metrics.update(flatten_metrics(base, f"baseline.{name}"))
        for name, cand in result.candidates.items():
            metrics.update({f"candidate.{name}.{k}": v for k, v in cand.items()})
        metrics.update({f"counts.{k}": float(v) for k, v in result.counts.items()})
        metrics.update({f"seconds.{k}": v for k, v in result.timings.items()})
        _log_metrics(metrics)
        mlflow.set_tags(
            {
                "correction": result.fitted.correction,
                "fingerprint": result.fingerprint,
                MANIFEST_TAG: digest,
            }
        )
        mlflow.log_artifacts(str(result.report_dir), "report")
        mlflow.log_artifacts(str(result.bundle_dir), BUNDLE_ARTIFACT)
        example = result.example[names].astype(np.float64)
        # Explicit: every feature is a double that may be NaN (missing) but must be present.
        signature = ModelSignature(
            inputs=Schema([ColSpec("double", n, required=False) for n in names]),
            outputs=Schema([TensorSpec(np.dtype(np.float64), (-1,))]),
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_FILE),
            artifacts={"bundle": str(result.bundle_dir)},
            model_config={MANIFEST_TAG: digest},
            signature=signature,
            input_example=example,
            pip_requirements=_pip_requirements(),
            registered_model_name=model_name,
        )
        run_id = run.info.run_id
    version = str(info.registered_model_version)
    client.set_registered_model_alias(model_name, CHALLENGER, version)
    tags = {
        MANIFEST_TAG: digest,
        "fingerprint": result.fingerprint,
        BUNDLE_DIR_TAG: str(result.bundle_dir),
        "test_start": result.split["test_start"],
        "test_end": result.split["test_end"],
        "correction": result.fitted.correction,
        **{f"test.{k}": f"{v:.6g}" for k, v in result.summary(config.policy.budget).items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return RegisteredModel(model_name, version, run_id, f"models:/{model_name}/{version}", digest)


def resolve_version(tracking_uri: str, model_name: str, ref: str) -> str | None:
    """Version number for ``ref`` (a version number or an alias); ``None`` if the alias is unset."""
    client = _use(tracking_uri)
    if ref.isdigit():
        return ref
    try:
        return str(client.get_model_version_by_alias(model_name, ref).version)
    except MlflowException:
        return None


@dataclass
class GateVerdict:
    """Outcome of the promotion gate."""

    promoted: bool
    challenger_version: str
    champion_version: str | None
    checks: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    period: dict[str, str] = field(default_factory=dict)
    forced: bool = False
    reason: str = ""
    message: str = ""
    # The challenger against the plain LightGBM baseline on its own test period (from training).
    plain_baseline: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# metric -> direction (+1: higher is better) and tolerance field name in GateConfig
GATE_METRICS: dict[str, tuple[int, str]] = {
    "precision": (+1, "precision_tolerance"),
    "critical_recall": (+1, "critical_recall_tolerance"),
    "ece": (-1, "ece_tolerance"),
}


def gate_checks(
    challenger: dict[str, float], champion: dict[str, float], tolerance: GateConfig
) -> dict[str, dict[str, float | bool]]:
    """Per metric: both values, the tolerance and whether the challenger passes (it may be worse
    than the champion by at most the tolerance; a NaN on either side fails)."""
    out: dict[str, dict[str, float | bool]] = {}
    for metric, (direction, tol_name) in GATE_METRICS.items():
        tol = float(getattr(tolerance, tol_name))
        new, old = float(challenger[metric]), float(champion[metric])
        ok = math.isfinite(new) and math.isfinite(old) and direction * (new - old) >= -tol - 1e-12
        out[metric] = {"challenger": new, "champion": old, "tolerance": tol, "passed": bool(ok)}
    return out


def gate_view(metrics: dict[str, Any], budget: float, subset: str) -> dict[str, float]:
    """The three gate numbers from an evaluation: precision and critical recall at ``budget``
    and ECE, on ``subset`` (``all_inspected`` or ``random_sample``)."""
    entry = metrics["budgets"][f"{budget:g}"][subset]
    return {
        "precision": entry["precision"],
        "critical_recall": entry["critical_recall"],
        "ece": metrics[subset]["ece"],
    }


def promote(
    *,
    tracking_uri: str,
    artifact_root: Path | str,
    model_name: str,
    config: TrainConfig,
    features: Any = None,
    labels: pd.DataFrame | None = None,
    load_features: Callable[[], tuple[Any, pd.DataFrame]] | None = None,
    force: bool = False,
    reason: str = "",
    ground_truth: pd.DataFrame | None = None,
) -> GateVerdict:
    """Compare ``challenger`` with ``champion`` on the challenger's test period and move
    ``champion`` if the challenger is not worse beyond the configured tolerances.

    The first model becomes champion without comparison. ``force`` moves the alias whatever the
    numbers and requires a ``reason``. The verdict, numbers and reason are logged as an MLflow
    run (experiment ``guomen-promotion``) and as tags on the challenger's model version.

    Parameters
    ----------
    features, labels
        ``build_offline`` / ``build_labels`` of a store covering the test period; or
        ``load_features`` to build them only when a comparison is needed.
    """
    if force and not reason.strip():
        raise ValueError("--force needs a --reason")
    client = _use(tracking_uri)
    challenger = resolve_version(tracking_uri, model_name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{model_name} has no {CHALLENGER} version")
    champion = resolve_version(tracking_uri, model_name, CHAMPION)
    verdict = GateVerdict(
        promoted=False,
        challenger_version=challenger,
        champion_version=champion,
        forced=force,
        reason=reason,
    )
    gate = config.gate
    try:
        challenger_bundle = load_model(tracking_uri, model_name, challenger).bundle
        plain = dict(challenger_bundle.metrics.get("plain_baseline") or {})
        verdict.plain_baseline = {
            k: plain[k] for k in ("statement", "basis", "budgets") if k in plain
        }
    except Exception as exc:  # the verdict stands without it; say why it is missing
        verdict.plain_baseline = {"statement": f"plain baseline not read: {type(exc).__name__}"}
    if champion is None:
        verdict.promoted = True
        verdict.message = "first model: becomes champion"
    elif champion == challenger:
        verdict.message = f"challenger v{challenger} is already champion"
    else:
        if features is None or labels is None:
            if load_features is None:
                raise ValueError("features and labels (or load_features) are needed to compare")
            features, labels = load_features()
        new_bundle = load_model(tracking_uri, model_name, challenger).bundle
        old_bundle = load_model(tracking_uri, model_name, champion).bundle
        split = new_bundle.metrics.get("split", {})
        start = pd.Timestamp(split["test_start"])
        end = pd.Timestamp(split["test_end"])
        kw: dict[str, Any] = {
            "budgets": (config.policy.budget,),
            "ece_bins": config.evaluation.ece_bins,
            "ground_truth": ground_truth,
            "seed": config.seed,
        }
        new_m = evaluate_bundle(new_bundle, features, labels, start, end, **kw)
        old_m = evaluate_bundle(old_bundle, features, labels, start, end, **kw)
        verdict.period = {"start": start.isoformat(), "end": end.isoformat()}
        verdict.checks = gate_checks(
            gate_view(new_m, config.policy.budget, gate.subset),
            gate_view(old_m, config.policy.budget, gate.subset),
            gate,
        )
        passed = all(bool(c["passed"]) for c in verdict.checks.values())
        verdict.promoted = passed or force
        failed = [m for m, c in verdict.checks.items() if not c["passed"]]
        if passed:
            verdict.message = "challenger is not worse beyond tolerance: promoted"
        elif force:
            verdict.message = f"gate failed on {', '.join(failed)}; forced: {reason}"
        else:
            verdict.message = f"gate failed on {', '.join(failed)}: champion kept"
    if force and champion is None:
        verdict.message += f" (forced: {reason})"
    if verdict.promoted and champion != challenger:
        client.set_registered_model_alias(model_name, CHAMPION, challenger)
    _log_verdict(client, tracking_uri, artifact_root, model_name, verdict, config)
    return verdict


def _log_verdict(
    client: MlflowClient,
    tracking_uri: str,
    artifact_root: Path | str,
    model_name: str,
    verdict: GateVerdict,
    config: TrainConfig,
) -> None:
    exp = experiment_id(tracking_uri, artifact_root, PROMOTION_EXPERIMENT)
    name = f"promote v{verdict.challenger_version} over v{verdict.champion_version or '-'}"
    with mlflow.start_run(experiment_id=exp, run_name=name):
        mlflow.log_params(
            {
                "model_name": model_name,
                "challenger_version": verdict.challenger_version,
                "champion_version": verdict.champion_version or "",
                "forced": verdict.forced,
                "reason": verdict.reason,
                "budget": config.policy.budget,
                "gate_subset": config.gate.subset,
                **{f"tolerance.{k}": v for k, v in config.gate.model_dump().items()},
                **{f"period.{k}": v for k, v in verdict.period.items()},
            }
        )
        metrics: dict[str, float] = {"promoted": float(verdict.promoted)}
        for metric, check in verdict.checks.items():
            metrics[f"challenger.{metric}"] = float(check["challenger"])
            metrics[f"champion.{metric}"] = float(check["champion"])
            metrics[f"passed.{metric}"] = float(bool(check["passed"]))
        for budget, entry in (verdict.plain_baseline.get("budgets") or {}).items():
            metrics[f"challenger_vs_plain.{budget}.model"] = float(entry["model"])
            metrics[f"challenger_vs_plain.{budget}.plain"] = float(entry["plain"])
        _log_metrics(metrics)
        mlflow.set_tags({"verdict": verdict.message, "promoted": str(verdict.promoted)})
        if verdict.plain_baseline.get("statement"):
            mlflow.set_tag("plain_baseline", verdict.plain_baseline["statement"])
        mlflow.log_text(json.dumps(verdict.to_dict(), indent=2), "verdict.json")
    tags = {
        "gate.promoted": str(verdict.promoted),
        "gate.verdict": verdict.message,
        "gate.against": verdict.champion_version or "",
        "gate.forced": str(verdict.forced),
        "gate.reason": verdict.reason,
    }
    for metric, check in verdict.checks.items():
        tags[f"gate.{metric}"] = (
            f"{check['challenger']:.4g} vs {check['champion']:.4g} (tol {check['tolerance']:g})"
        )
    for key, value in tags.items():
        client.set_model_version_tag(model_name, verdict.challenger_version, key, value)


def evaluate_version(
    *,
    tracking_uri: str,
    model_name: str,
    version: str,
    features: Any,
    labels: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    config: TrainConfig,
    ground_truth: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Re-evaluate a registered version (bundle downloaded and verified) on any period."""
    bundle = load_model(tracking_uri, model_name, version).bundle
    metrics = evaluate_bundle(
        bundle,
        features,
        labels,
        start,
        end,
        budgets=config.evaluation.budgets,
        ece_bins=config.evaluation.ece_bins,
        ground_truth=ground_truth,
        seed=config.seed,
    )
    metrics["headline"] = headline(metrics, config.policy.budget)
    metrics["model"] = {"name": model_name, "version": str(version)}
    return metrics


def ensure_sqlite_parent(tracking_uri: str) -> None:
    """Create the folder of a ``sqlite:///`` store (SQLite creates the file, not the folder)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        Path(tracking_uri[len(prefix) :]).parent.mkdir(parents=True, exist_ok=True)
