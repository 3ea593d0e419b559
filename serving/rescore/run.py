"""``rescore``: the nightly reassessment of every enterprise with the champion model.

Stages, each resumable:

1. features: point-in-time features of the period's declarations (``features.build``), split by a
   stable hash of ``enterprise_id`` into partition files; ``features/_SUCCESS.json`` last;
2. scoring: every partition not yet done (local engine or Dask) writes its scored rows and
   per-enterprise aggregates, then its done-marker;
3. profiles: the aggregates of all partitions become ``profiles.parquet`` (one row per
   enterprise), replaced atomically;
4. database (rows of that as-of replaced in one transaction) and MLflow run summary (looked up
   by run id first, so a resumed run does not log twice).

The run id is a digest of everything that decides the result (as-of, period, partitions, model,
data), so a killed run started again continues where it stopped, and the same as-of with the same
model and data gives byte-identical Parquet files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.bundle import ModelBundle, manifest_digest
from features.files import write_json_atomic
from features.progress import Progress, no_progress
from policy.tiers import TIER_ORDER, SupervisionPolicy
from serving.rescore.engines import run_dask, run_local, start_local_cluster
from serving.rescore.files import (
    RunLayout,
    previous_profiles,
    read_json,
    write_parquet_atomic,
)
from serving.rescore.partition import partition_column
from serving.rescore.profiles import (
    MEAN_PREFIX,
    WarningsProvider,
    build_profiles,
    credit_in_force,
    no_active_warnings,
)

log = logging.getLogger("guomen.rescore")

ID_COLUMNS = ["declaration_id", "declared_at", "enterprise_id"]
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
MLFLOW_EXPERIMENT = "guomen-rescore"

# Progress callback: (stage, done, total). Stages: "features", "score", "profiles", "publish".


@dataclass
class RescoreResult:
    """What a run produced."""

    as_of: str
    run_id: str
    root: Path
    profiles_path: Path
    declarations: int
    enterprises: int
    resumed_partitions: int
    summary: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    def profiles(self) -> pd.DataFrame:
        return pd.read_parquet(self.profiles_path)


def period_bounds(
    as_of: str | date, period_days: int, timezone: str
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` in UTC: the ``period_days`` local days ending with the as-of day."""
    day = pd.Timestamp(str(as_of)).normalize()
    if day.tzinfo is not None:
        raise ValueError("as_of is a calendar date, not a timestamp with a time zone")
    end = (day + pd.Timedelta(days=1)).tz_localize(timezone).tz_convert("UTC")
    start = (day + pd.Timedelta(days=1 - period_days)).tz_localize(timezone).tz_convert("UTC")
    return start, end


def _bundle_identity(bundle: ModelBundle) -> str:
    if bundle.path is not None and (Path(bundle.path) / "manifest.json").is_file():
        return manifest_digest(Path(bundle.path))
    digest = hashlib.sha256(bundle.booster.model_to_string().encode("utf-8"))
    digest.update(json.dumps(bundle.metadata(), sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def data_fingerprint(frames: Mapping[str, pd.DataFrame | None]) -> str:
    """Content digest of input frames (row hashes of every column, in order)."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        digest.update(name.encode("utf-8"))
        if frame is None:
            continue
        cols = sorted(frame.columns)
        digest.update(json.dumps(cols).encode("utf-8"))
        digest.update(str(len(frame)).encode("utf-8"))
        if len(frame):
            hashed = pd.util.hash_pandas_object(frame[cols], index=False).to_numpy()
            digest.update(hashed.tobytes())
    return digest.hexdigest()


def _truncate(tables: Mapping[str, pd.DataFrame], end: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """What was known at ``end``: later declarations, results, signals and ratings removed."""
    time_col = {
        "declarations": "declared_at",
        "inspections": "inspected_at",
        "risk_signals": "reported_at",
        "credit_ratings": "effective_from",
    }
    out = {}
    for name, frame in tables.items():
        col = time_col.get(name)
        out[name] = frame.loc[frame[col] < end] if col and col in frame.columns else frame
    return out


def _stage_features(
    layout: RunLayout,
    bundle: ModelBundle,
    partitions: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
    tables: Mapping[str, pd.DataFrame] | None,
    attributes: dict[str, str] | None,
    features: pd.DataFrame | None,
    progress: Progress,
    threads: int = 1,
) -> dict[str, Any]:
    done = read_json(layout.features_success)
    if done is not None:
        progress("features", partitions, partitions)
        return done
    if features is None:
        from features.build import build_offline

        assert tables is not None
        features = build_offline(
            _truncate(tables, end),
            attributes,
            entities=bundle.entities,
            # None (a bundle from before code maps): fitted here, as its training did
            categories=bundle.categories or None,
        )
    missing = [c for c in ID_COLUMNS + bundle.feature_names if c not in features.columns]
    if missing:
        raise ValueError(f"the feature frame lacks columns the model needs: {missing[:10]}")
    declared = features["declared_at"]
    frame = features.loc[(declared >= start) & (declared < end), ID_COLUMNS + bundle.feature_names]
    frame = frame.assign(
        declaration_id=frame["declaration_id"].astype("str"),
        enterprise_id=frame["enterprise_id"].astype("str"),
        _part=partition_column(frame["enterprise_id"], partitions),
    )
    if frame["declaration_id"].duplicated().any():
        raise ValueError("declaration_id is not unique in the feature frame")
    frame = frame.sort_values(
        ["_part", "enterprise_id", "declared_at", "declaration_id"], kind="stable"
    )
    parts = frame.pop("_part").to_numpy()
    cuts = np.searchsorted(parts, np.arange(partitions + 1))
    rows = [int(cuts[part + 1] - cuts[part]) for part in range(partitions)]

    def write(part: int) -> None:
        chunk = frame.iloc[cuts[part] : cuts[part + 1]].reset_index(drop=True)
        write_parquet_atomic(chunk, layout.features(part))

    # Parquet encoding and zstd release the GIL: ``threads`` partition files at a time.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done_parts, _ in enumerate(pool.map(write, range(partitions)), start=1):
            progress("features", done_parts, partitions)
    done = {"rows": int(sum(rows)), "partition_rows": rows}
    write_json_atomic(layout.features_success, done, sort_keys=True)
    return done


def _score_summary(layout: RunLayout, partitions: int) -> tuple[dict[str, Any], pd.Series]:
    """Counts and probability quantiles of the scored rows, and their tiers (one read of the two
    small columns per partition, not of the contributions)."""
    frames = [
        pd.read_parquet(layout.scored(p), columns=["probability", "tier"])
        for p in range(partitions)
    ]
    p = np.concatenate([f["probability"].to_numpy() for f in frames]) if frames else np.empty(0)
    tiers = (
        pd.concat([f["tier"] for f in frames], ignore_index=True)
        if frames
        else pd.Series([], dtype="str")
    )
    summary: dict[str, Any] = {"declarations": int(p.size)}
    if p.size:
        summary["probability_mean"] = float(p.mean())
        summary["probability_quantiles"] = {
            f"q{int(q * 100):02d}": float(np.quantile(p, q)) for q in QUANTILES
        }
    return summary, tiers


def _log_mlflow(tracking_uri: str, run: dict[str, Any], summary: dict[str, Any]) -> str:
    """Log the run summary once per run id; a resumed or repeated run finds the earlier one."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(MLFLOW_EXPERIMENT)
    found = client.search_runs(
        [exp_id], filter_string=f"tags.run_id = '{run['run_id']}'", max_results=10
    )
    for r in found:
        if r.info.status == "FINISHED":
            return str(r.info.run_id)
    metrics = {
        "declarations": float(summary["declarations"]),
        "enterprises": float(summary["enterprises"]),
        "enterprises_with_declarations": float(summary["enterprises_with_declarations"]),
    }
    if "probability_mean" in summary:
        metrics["probability_mean"] = summary["probability_mean"]
        for k, v in summary["probability_quantiles"].items():
            metrics[f"probability_{k}"] = v
    for k, v in summary.get("tier_shares", {}).items():
        metrics[f"share_{k}"] = v
    for k, v in summary.get("enterprise_risk_tiers", {}).items():
        metrics[f"enterprises_{k}"] = float(v)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"rescore-{run['as_of']}") as active:
        mlflow.set_tags({"run_id": run["run_id"], "as_of": run["as_of"], "kind": "rescore"})
        mlflow.log_params(
            {
                k: run[k]
                for k in (
                    "as_of",
                    "model_name",
                    "model_version",
                    "period_days",
                    "partitions",
                    "engine",
                    "explainer",
                )
                if k in run
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.log_dict(summary, "summary.json")
        return str(active.info.run_id)


def rescore(
    as_of: str | date,
    *,
    bundle: ModelBundle,
    out_dir: Path,
    model_version: str | None = None,
    bundle_digest: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    attributes: dict[str, str] | None = None,
    features: pd.DataFrame | None = None,
    feature_dir: Path | None = None,
    credit_ratings: pd.DataFrame | None = None,
    enterprises: pd.DataFrame | None = None,
    period_days: int = 365,
    partitions: int = 16,
    engine: str = "local",
    scheduler: str | None = None,
    client: Any = None,
    threads: int = 1,
    n_workers: int = 2,
    timezone: str = "Asia/Shanghai",
    database: Any = None,
    mlflow_tracking_uri: str | None = None,
    warnings: WarningsProvider = no_active_warnings,
    data_id: str | None = None,
    progress: Progress | None = None,
) -> RescoreResult:
    """Rescore every enterprise as of the end of the local day ``as_of``.

    Parameters
    ----------
    as_of
        Calendar date (``YYYY-MM-DD``); the period is the ``period_days`` local days ending with it.
    bundle
        The loaded champion bundle (``features.bundle.load_bundle``).
    out_dir
        Output root; the run writes ``<out_dir>/rescore/<as_of>/``.
    model_version
        Registered version of the bundle (default ``bundle.model_version``).
    bundle_digest
        Manifest digest pinned by the registry; Dask workers verify the bundle against it.
    tables
        Contract tables (``Store.tables()``); features are built with ``features.build``.
    attributes
        Extra model attributes (``Store.attributes``).
    features
        Alternatively, a prebuilt ``build_offline`` frame (then pass ``credit_ratings`` and
        ``enterprises`` for the credit tier and the register).
    feature_dir
        Or a folder of partitioned features (``features.partitioned``), streamed partition by
        partition (``serving.rescore.streamed``; pass ``credit_ratings`` and ``enterprises``).
    period_days, partitions
        Length of the period; number of enterprise-hash partitions.
    engine, scheduler, client, threads, n_workers
        ``"local"`` (``threads`` threads) or ``"dask"`` (an existing ``client``, else a scheduler
        address, else a new ``LocalCluster`` of ``n_workers`` single-threaded processes).
    timezone
        Deployment time zone (the as-of day is a local day).
    database
        SQLAlchemy ``Engine`` or URL for ``enterprise_profiles``; None skips the database.
    mlflow_tracking_uri
        Where to log the run summary; None skips MLflow.
    warnings
        Active-warnings hook (default: none until the warnings engine exists).
    data_id
        Fingerprint of the input data (e.g. from the store manifest); computed from the frames
        when None.
    progress
        ``(stage, done, total)`` callback.
    """
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask', got {engine!r}")
    if sum(x is not None for x in (tables, features, feature_dir)) != 1:
        raise ValueError("pass exactly one of tables, features and feature_dir")
    if period_days < 1 or partitions < 1:
        raise ValueError("period_days and partitions must be at least 1")
    report: Progress = progress or no_progress
    as_of = pd.Timestamp(str(as_of)).date().isoformat()
    start, end = period_bounds(as_of, period_days, timezone)
    version = str(model_version or bundle.model_version or "unregistered")
    if tables is not None:
        credit_ratings = tables.get("credit_ratings")
        enterprises = tables.get("enterprises")
    if data_id is None:
        if tables is not None:
            data_id = data_fingerprint(_truncate(tables, end))
        elif feature_dir is not None:
            data_id = _feature_dir_fingerprint(Path(feature_dir))
        else:
            data_id = data_fingerprint({"features": features})
    identity = {
        "as_of": as_of,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "period_days": period_days,
        "partitions": partitions,
        "model_name": bundle.model_name,
        "model_version": version,
        "bundle": _bundle_identity(bundle),
        "data": data_id,
        "attributes": attributes or {},
    }
    run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
    run = {**identity, "run_id": run_id}
    layout = RunLayout.for_run(Path(out_dir), as_of)
    resumed = layout.prepare(run)
    if resumed:
        log.info("resuming run %s in %s", run_id, layout.root)

    if feature_dir is not None:
        if read_json(layout.features_success) is None:
            from serving.rescore.streamed import stage_features_streamed

            stage_features_streamed(
                layout, bundle, partitions, start, end, Path(feature_dir), report
            )
        else:
            report("features", partitions, partitions)
    else:
        _stage_features(
            layout, bundle, partitions, start, end, tables, attributes, features, report, threads
        )

    todo = [p for p in range(partitions) if not layout.is_done(p)]
    already = partitions - len(todo)
    report("score", already, partitions)
    finished = [already]

    def on_partition(part: int, marker: dict[str, Any]) -> None:
        finished[0] += 1
        report("score", finished[0], partitions)

    explainer = "none"
    if engine == "local":
        explainer = run_local(bundle, layout, todo, threads=threads, on_partition=on_partition)
    else:
        explainer = _run_on_dask(
            bundle, layout, todo, bundle_digest, client, scheduler, n_workers, on_partition
        )

    report("profiles", 0, 1)
    aggregates = pd.concat(
        [pd.read_parquet(layout.aggregates(p)) for p in range(partitions)], ignore_index=True
    )
    policy = SupervisionPolicy.from_dict(bundle.policy)
    profiles = build_profiles(
        aggregates,
        feature_names=bundle.feature_names,
        feature_specs=_specs(bundle, attributes),
        policy=policy,
        as_of=as_of,
        cutoff=end,
        run_id=run_id,
        model_name=bundle.model_name,
        model_version=version,
        credit=credit_in_force(credit_ratings, end),
        enterprises=enterprises,
        previous=previous_profiles(Path(out_dir), as_of),
        warnings=warnings,
    )
    write_parquet_atomic(profiles, layout.profiles)
    report("profiles", 1, 1)

    summary, tiers = _score_summary(layout, partitions)
    with_decl = profiles["declarations"] > 0
    summary.update(
        {
            "enterprises": int(len(profiles)),
            "enterprises_with_declarations": int(with_decl.sum()),
            "tier_shares": {
                t: float((tiers == t).mean()) if len(tiers) else 0.0 for t in TIER_ORDER
            },
            "enterprise_risk_tiers": {
                t: int((profiles["risk_tier"] == t).sum()) for t in TIER_ORDER
            },
        }
    )
    report("publish", 0, 1)
    run_record = {
        **run,
        "engine": engine,
        "explainer": explainer,
        "declarations": summary["declarations"],
        "enterprises": summary["enterprises"],
        "summary": summary,
    }
    mlflow_run_id = None
    if mlflow_tracking_uri:
        mlflow_run_id = _log_mlflow(mlflow_tracking_uri, run_record, summary)
        run_record["mlflow_run_id"] = mlflow_run_id
    if database is not None:
        from serving.db import make_engine
        from serving.rescore.db import write_profiles

        db_engine = make_engine(database) if isinstance(database, str) else database
        write_profiles(db_engine, profiles, run_record)
    write_json_atomic(
        layout.summary,
        {k: v for k, v in run_record.items() if k not in ("engine", "explainer")}
        | {"explainer": explainer},
        sort_keys=True,
    )
    report("publish", 1, 1)
    return RescoreResult(
        as_of=as_of,
        run_id=run_id,
        root=layout.root,
        profiles_path=layout.profiles,
        declarations=summary["declarations"],
        enterprises=summary["enterprises"],
        resumed_partitions=already,
        summary=summary,
        mlflow_run_id=mlflow_run_id,
    )


def _feature_dir_fingerprint(directory: Path) -> str:
    """Digest of a partitioned feature folder: its manifest (feature set, partitions, rows)."""
    return hashlib.sha256((directory / "manifest.json").read_bytes()).hexdigest()


def _specs(bundle: ModelBundle, attributes: dict[str, str] | None) -> list[dict[str, Any]]:
    """Feature specs with descriptions: from the bundle, else from the feature registry."""
    specs = [s for s in bundle.feature_specs if s.get("description_en")]
    if specs:
        return specs
    try:
        from features.registry import feature_specs

        return [s.to_dict() for s in feature_specs(attributes or bundle.attributes or None)]
    except (ImportError, ValueError):
        return []


def _run_on_dask(
    bundle: ModelBundle,
    layout: RunLayout,
    todo: list[int],
    bundle_digest: str | None,
    client: Any,
    scheduler: str | None,
    n_workers: int,
    on_partition: Callable[[int, dict[str, Any]], None],
) -> str:
    from distributed import Client

    if client is not None:
        return run_dask(client, bundle, layout, todo, bundle_digest, 1, on_partition)
    if scheduler:
        with Client(scheduler) as own:
            return run_dask(own, bundle, layout, todo, bundle_digest, 1, on_partition)
    with start_local_cluster(n_workers=n_workers) as cluster, Client(cluster) as own:
        return run_dask(own, bundle, layout, todo, bundle_digest, 1, on_partition)


__all__ = ["MEAN_PREFIX", "RescoreResult", "period_bounds", "rescore"]
