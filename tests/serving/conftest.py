"""Fixtures for the scoring API tests: a small world, two registered models, a running server.

Once per session: synthetic contract tables (enterprises with different nonconformity rates, one
severely discredited), offline features (``features.build``), two small LightGBM bundles
registered in a fresh MLflow SQLite store exactly as the registry conventions say (run artifact
``bundle/``, version tags ``riskmodel.registry.MANIFEST_TAG`` and ``BUNDLE_DIR_TAG``), and the online snapshot
(``features.snapshot``) saved to disk. Aliases: ``champion`` -> v1; each reload test moves an
alias of its own.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.bundle import Calibration, ModelBundle, manifest_digest, save_bundle
from features.contract import TRADE_MODES
from guomen.settings import Settings
from policy.tiers import derive_policy
from riskmodel.registry import BUNDLE_DIR_TAG, MANIFEST_TAG
from tests.live import LiveServer
from tests.serving.serving_world import AS_OF, DAYS, T0, TEST_SECRETS, declaration, make_keys

MODEL = "guomen-risk-test"
DISCREDITED = "E0001"
RISKY = "E0002"


def make_tables(n: int = 3000, seed: int = 3) -> dict[str, pd.DataFrame]:
    """Contract tables in canonical dtypes; enterprise E0002 is often nonconforming."""
    rng = np.random.default_rng(seed)
    n_ent = 60
    ent = rng.integers(0, n_ent, n)
    ent_risk = rng.beta(1, 8, n_ent)
    ent_risk[int(RISKY[1:])] = 0.7
    secs = np.sort(rng.integers(0, DAYS * 86400, n))
    declared = T0 + pd.to_timedelta(secs, unit="s")
    hs = rng.integers(0, 12, n)
    usd = np.round(rng.lognormal(9, 1.2, n), 2)
    decl = pd.DataFrame(
        {
            "declaration_id": pd.Series([f"H{i:06d}" for i in range(n)], dtype="str"),
            "declared_at": pd.Series(declared).astype("datetime64[ns, UTC]"),
            "direction": pd.Series(["import"] * n, dtype="str"),
            "port_code": pd.Series([f"P{p}" for p in rng.integers(0, 4, n)], dtype="str"),
            "trade_mode": pd.Series(rng.choice(TRADE_MODES[:3], n), dtype="str"),
            "hs_code": pd.Series([f"03{h:02d}8900" for h in hs], dtype="str"),
            "origin_country": pd.Series(rng.choice(["VN", "TH", "CL", "NO"], n), dtype="str"),
            "enterprise_id": pd.Series([f"E{e:04d}" for e in ent], dtype="str"),
            "declarant_id": pd.Series([f"B{b}" for b in rng.integers(0, 9, n)], dtype="str"),
            "overseas_party_id": pd.Series([f"O{o}" for o in rng.integers(0, 40, n)], dtype="str"),
            "destination_country": pd.Series([None] * n, dtype="str"),
            "transport_mode": pd.Series(rng.choice(["sea", "air"], n), dtype="str"),
            "goods_description": pd.Series(["fish"] * n, dtype="str"),
            "quantity": rng.integers(1, 100, n).astype("float64"),
            "quantity_unit": pd.Series(["box"] * n, dtype="str"),
            "net_weight_kg": np.round(rng.lognormal(7, 1, n), 1),
            "declared_value": usd,
            "currency": pd.Series(["USD"] * n, dtype="str"),
            "declared_value_usd": usd.astype("float64"),
            "legal_inspection": rng.random(n) < 0.5,
            "third_party_certificate": rng.random(n) < 0.1,
        }
    )
    ii = np.flatnonzero(rng.random(n) < 0.45)
    nc = rng.random(len(ii)) < ent_risk[ent[ii]]
    lag = pd.to_timedelta(rng.integers(3600, 10 * 86400, len(ii)), unit="s")
    insp = pd.DataFrame(
        {
            "declaration_id": decl["declaration_id"].iloc[ii].reset_index(drop=True),
            "inspected_at": (decl["declared_at"].iloc[ii].reset_index(drop=True) + lag).astype(
                "datetime64[ns, UTC]"
            ),
            "selection": pd.Series(rng.choice(["random", "targeted"], len(ii)), dtype="str"),
            "result": pd.Series(np.where(nc, "nonconforming", "conforming"), dtype="str"),
            "hazard_type": pd.Series(np.where(nc, "health", None), dtype="str"),
            "severity": pd.Series(np.where(nc, "major", None), dtype="str"),
            "disposal": pd.Series([None] * len(ii), dtype="str"),
        }
    )
    ents = [f"E{e:04d}" for e in range(n_ent)]
    enterprises = pd.DataFrame(
        {
            "enterprise_id": pd.Series(ents, dtype="str"),
            "name": pd.Series(ents, dtype="str"),
            "registered_at": pd.Series([T0 - pd.Timedelta(days=400)] * n_ent).astype(
                "datetime64[ns, UTC]"
            ),
            "enterprise_type": pd.Series(["trader"] * n_ent, dtype="str"),
            "region": pd.Series(["east"] * n_ent, dtype="str"),
        }
    )
    credit = pd.DataFrame(
        {
            "enterprise_id": pd.Series([DISCREDITED], dtype="str"),
            "effective_from": pd.Series([T0 + pd.Timedelta(days=10)]).astype("datetime64[ns, UTC]"),
            "rating": pd.Series(["severely_discredited"], dtype="str"),
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": pd.Series(["S1"], dtype="str"),
            "reported_at": pd.Series([T0 + pd.Timedelta(days=DAYS - 20)]).astype(
                "datetime64[ns, UTC]"
            ),
            "channel": pd.Series(["foreign_alert"], dtype="str"),
            "enterprise_id": pd.Series([None], dtype="str"),
            "overseas_party_id": pd.Series([None], dtype="str"),
            "hs_code": pd.Series(["0301"], dtype="str"),
            "origin_country": pd.Series(["VN"], dtype="str"),
            "severity": pd.Series(["high"], dtype="str"),
            "hazard_type": pd.Series(["health"], dtype="str"),
            "source": pd.Series(["RASFF"], dtype="str"),
            "description": pd.Series(["test"], dtype="str"),
        }
    )
    return {
        "declarations": decl,
        "inspections": insp,
        "enterprises": enterprises,
        "credit_ratings": credit,
        "risk_signals": signals,
    }


def train_bundle(features: pd.DataFrame, labels: pd.DataFrame, rounds: int, seed: int, a: float,
                 b: float, categories: dict[str, list[str]] | None = None) -> ModelBundle:  # fmt: skip
    """A small LightGBM bundle over every offline feature."""
    from features.registry import feature_specs

    specs = feature_specs()
    names = [s.name for s in specs]
    merged = features.merge(labels[["declaration_id", "nonconforming"]], on="declaration_id")
    inspected = merged[merged["nonconforming"].notna()]
    X = inspected[names].to_numpy(dtype=np.float64)
    y = inspected["nonconforming"].to_numpy(dtype=np.float64)
    params = {
        "objective": "binary",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "min_data_in_leaf": 10,
        "seed": seed,
        "verbose": -1,
        "num_threads": 1,
    }
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=rounds)
    cal = Calibration(a=a, b=b)
    p_all = cal.probability(booster.predict(features[names].to_numpy(np.float64), raw_score=True))
    policy = derive_policy(p_all, budget=0.15, monitoring_share=0.05)
    # metrics in the bundle's real shape (training.pipeline): the model and a baseline, by budget
    from training.baselines import random_scores
    from training.evaluate import evaluate_scores, evaluation_frame

    frame = evaluation_frame(features, labels)
    test = evaluate_scores(p_all, frame, probabilities=True)
    rnd = evaluate_scores(random_scores(len(frame), seed), frame, probabilities=False)
    metrics = {
        "test": test,
        "baselines": {"random": {"budgets": rnd["budgets"], "random_sample": rnd["random_sample"]}},
        "split": {"train_start": str(features["declared_at"].min()),
                  "test_start": str(features["declared_at"].quantile(0.8))},
    }  # fmt: skip
    return ModelBundle(
        booster=booster,
        calibration=cal,
        feature_names=names,
        feature_specs=[s.to_dict() for s in specs],
        policy=policy.to_dict(),
        metrics=json.loads(json.dumps(metrics, default=float)),
        fingerprint=f"test-{seed}",
        created_at=datetime.now(UTC).isoformat(),
        categories=dict(categories or {}),
    )


def register(uri: str, bundle_dir: Path, digest: str | None = None) -> str:
    """Log ``bundle_dir`` as run artifact ``bundle/`` and register a version pinned to it."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(bundle_dir), "bundle")
    with contextlib.suppress(Exception):  # the name exists after the first version
        client.create_registered_model(MODEL)
    mv = client.create_model_version(
        MODEL,
        f"runs:/{run.info.run_id}/bundle",
        run_id=run.info.run_id,
        tags={
            MANIFEST_TAG: digest or manifest_digest(bundle_dir),
            BUNDLE_DIR_TAG: str(bundle_dir),
        },
    )
    return str(mv.version)


def set_alias(uri: str, alias: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        MODEL, alias, version
    )


@dataclass
class World:
    root: Path
    uri: str
    snapshot_dir: Path
    tables: dict[str, pd.DataFrame]
    versions: dict[str, str] = field(default_factory=dict)
    bundles: dict[str, Path] = field(default_factory=dict)
    discredited: str = DISCREDITED
    risky: str = RISKY
    model_name: str = MODEL

    def set_alias(self, alias: str, version: str) -> None:
        set_alias(self.uri, alias, version)

    @staticmethod
    def make_keys(settings: Settings) -> dict[str, str]:
        return make_keys(settings)

    @staticmethod
    def live_server(app: Any) -> LiveServer:
        return LiveServer(app)

    def settings(self, db: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "home": self.root,
            "database_url": f"sqlite:///{db}",
            "mlflow_tracking_uri": self.uri,
            "model_name": MODEL,
            "model_alias": "champion",
            "snapshot_dir": self.snapshot_dir,
            "models_dir": self.root / "models",
            **TEST_SECRETS,
            "reload_poll_seconds": 3600.0,
            "key_cache_seconds": 0.0,
        }
        values.update(overrides)
        return Settings(**values)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from features.build import build_labels, build_offline
    from features.snapshot import Snapshot

    root = tmp_path_factory.mktemp("serving-world")
    from features.categorical import fit_code_maps

    tables = make_tables()
    maps = fit_code_maps(tables["declarations"])  # what build_offline fits by default
    features = build_offline(tables, categories=maps)
    labels = build_labels(tables)
    uri = f"sqlite:///{root}/mlflow.db"
    w = World(root=root, uri=uri, snapshot_dir=root / "snapshot", tables=tables)
    for name, rounds, seed, a, b in (("v1", 40, 1, 0.9, -0.2), ("v2", 60, 2, 1.1, 0.1)):
        path = save_bundle(
            train_bundle(features, labels, rounds, seed, a, b, categories=maps), root / name
        )
        w.bundles[name] = path
        w.versions[name] = register(uri, path)
    # A version whose pinned digest does not match its bundle (tampered or mixed up).
    w.versions["bad"] = register(uri, w.bundles["v2"], digest="0" * 64)
    set_alias(uri, "champion", w.versions["v1"])
    Snapshot.build(tables, AS_OF.to_pydatetime()).save(w.snapshot_dir)
    return w


@pytest.fixture(scope="session")
def decl():
    """The request-body factory :func:`declaration`."""
    return declaration


@pytest.fixture()
def api(world: World, tmp_path: Path) -> Iterator[tuple[Any, dict[str, str], Settings]]:
    """A TestClient over a fresh app (own audit DB), keys for every role, and its settings."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    settings = world.settings(tmp_path / "api.db", max_batch=5)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield client, keys, settings
