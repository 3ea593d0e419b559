"""Batch rescoring: profiles, persistence, idempotence, kill-and-resume, Dask, parity.

Data: a small demo register (``demo.generate``) ingested into a store, features from
``features.build``, and a LightGBM model trained here in a second (the real bundle format).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from features.build import build_labels, build_offline
from features.bundle import ModelBundle, load_bundle, manifest_digest, save_bundle
from features.registry import feature_specs
from features.store import Store
from policy.tiers import TIER_ORDER, SupervisionPolicy, derive_policy
from serving.db import make_engine
from serving.rescore import partition_of, period_bounds, rescore
from serving.rescore.db import get_profile, list_profiles
from serving.rescore.files import RunLayout
from serving.rescore.partition import partition_column

AS_OF = "2026-06-30"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from training.calibrate import fit_platt

    base = tmp_path_factory.mktemp("rescore")
    write_demo_data(base / "demo", n_declarations=6000, seed=11)
    ingest(base / "demo", base / "store")
    store = Store(base / "store")
    tables = store.tables()
    from features.categorical import fit_code_maps

    maps = fit_code_maps(tables["declarations"], store.attributes)
    features = build_offline(tables, store.attributes, categories=maps)
    labels = build_labels(tables)
    specs = feature_specs(store.attributes)
    names = [s.name for s in specs]
    X = features[names].to_numpy(np.float64)
    inspected = labels["inspected"].to_numpy()
    y = labels["nonconforming"].to_numpy()[inspected]
    Xi = X[inspected]
    half = len(y) // 2
    booster = lgb.train(
        {
            "objective": "binary",
            "verbose": -1,
            "num_leaves": 7,
            "min_data_in_leaf": 5,
            "num_threads": 1,
            "seed": 1,
        },
        lgb.Dataset(Xi[:half], y[:half]),
        num_boost_round=25,
    )
    cal = fit_platt(booster.predict(Xi[half:], raw_score=True), y[half:])
    policy = derive_policy(cal.probability(booster.predict(X, raw_score=True)))
    bundle = ModelBundle(
        booster=booster,
        calibration=cal,
        feature_names=names,
        feature_specs=[s.to_dict() for s in specs],
        policy=policy.to_dict(),
        model_name="guomen-risk",
        model_version="7",
        categories=maps,
    )
    path = save_bundle(bundle, base / "bundle")
    return {
        "base": base,
        "store": base / "store",
        "tables": tables,
        "attributes": store.attributes,
        "features": features,
        "bundle": load_bundle(path, manifest_digest(path)),
        "bundle_path": path,
    }


def _run(world, out: Path, **kw):
    args = {
        "bundle": world["bundle"],
        "out_dir": out,
        "tables": world["tables"],
        "attributes": world["attributes"],
        "partitions": 6,
    }
    args.update(kw)
    return rescore(kw.pop("as_of", AS_OF), **{k: v for k, v in args.items() if k != "as_of"})


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def reference(world, tmp_path_factory):
    """One uninterrupted local run, the yardstick for the others."""
    out = tmp_path_factory.mktemp("ref")
    db = f"sqlite:///{out}/ref.db"
    result = _run(world, out, database=db)
    return result, out, db


# ----------------------------------------------------------------------- partitioning


def test_partition_is_a_stable_hash():
    # sha256("E001")[:8] as a big-endian integer, modulo 16: fixed forever, any process.
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"E001").digest()[:8], "big") % 16
    assert partition_of("E001", 16) == expected
    ids = pd.Series([f"E{i:04d}" for i in range(2000)], dtype="str")
    parts = partition_column(ids, 8)
    assert [partition_of(i, 8) for i in ids[:50]] == list(parts[:50])
    counts = np.bincount(parts, minlength=8)
    assert counts.min() > 180  # roughly uniform
    # Another interpreter (another hash seed) gives the same partitions.
    code = "from serving.rescore import partition_of; print([partition_of(f'E{i:04d}', 8) for i in range(50)])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout
    assert json.loads(out) == list(parts[:50])


# ----------------------------------------------------------------------- the profiles


def test_profiles_match_an_independent_computation(world, reference):
    result, out, _ = reference
    bundle = world["bundle"]
    prof = result.profiles()
    tables = world["tables"]
    start, end = period_bounds(AS_OF, 365, "Asia/Shanghai")
    decl = tables["declarations"]
    in_period = decl[(decl["declared_at"] >= start) & (decl["declared_at"] < end)]
    assert result.declarations == len(in_period) > 500
    # The whole register is profiled, plus nobody else.
    assert set(prof["enterprise_id"]) == set(tables["enterprises"]["enterprise_id"]) | set(
        in_period["enterprise_id"]
    )
    assert prof["declarations"].sum() == len(in_period)
    assert prof["enterprise_id"].is_unique

    # Recompute three enterprises from scratch: LightGBM pred_contrib, bundle probability.
    feats = world["features"].set_index("declaration_id")
    policy = SupervisionPolicy.from_dict(bundle.policy)
    busy = prof.sort_values("declarations", ascending=False).head(3)
    for _, row in busy.iterrows():
        ids = in_period.loc[in_period["enterprise_id"] == row["enterprise_id"], "declaration_id"]
        X = feats.loc[ids, bundle.feature_names].to_numpy(np.float64)
        p = bundle.probability(X)
        assert row["declarations"] == len(ids)
        assert row["expected_rate"] == pytest.approx(p.mean(), abs=1e-12)
        assert row["max_probability"] == pytest.approx(p.max(), abs=1e-12)
        # A probability can sit exactly on a threshold (thresholds are quantiles of scores);
        # the API's logit (base + sum of contributions) may differ from the booster's margin in
        # the last bit there, so accept either side within 1e-12.
        for t in TIER_ORDER:
            shares = [np.mean(policy.tiers(p + d) == t) for d in (-1e-12, 0.0, 1e-12)]
            assert min(shares) - 1e-12 <= row[f"share_{t}"] <= max(shares) + 1e-12
        assert row["risk_tier"] == policy.tier(p.mean())
        contrib = bundle.booster.predict(X, pred_contrib=True)[:, :-1] * bundle.calibration.a
        mean = contrib.mean(axis=0)
        up = json.loads(row["reasons_up"])
        down = json.loads(row["reasons_down"])
        want_up = [
            bundle.feature_names[i] for i in np.argsort(-mean, kind="stable") if mean[i] > 0
        ][:5]
        want_down = [
            bundle.feature_names[i] for i in np.argsort(mean, kind="stable") if mean[i] < 0
        ][:5]
        assert [r["feature"] for r in up] == want_up
        assert [r["feature"] for r in down] == want_down
        for r in up + down:
            i = bundle.feature_names.index(r["feature"])
            assert r["contribution"] == pytest.approx(mean[i], abs=1e-9)
            assert r["description_en"] and r["description_zh"]


def test_credit_tier_in_force_at_as_of(world, reference):
    prof = reference[0].profiles().set_index("enterprise_id")
    cr = world["tables"]["credit_ratings"]
    _, end = period_bounds(AS_OF, 365, "Asia/Shanghai")
    checked = 0
    for ent in prof.index[:200]:
        rows = cr[(cr["enterprise_id"] == ent) & (cr["effective_from"] <= end)]
        want = rows.sort_values("effective_from")["rating"].iloc[-1] if len(rows) else "regular"
        assert prof.loc[ent, "credit_rating"] == want
        checked += len(rows) > 0
    assert checked > 0


def test_scored_rows_are_additive_and_partitioned(world, reference):
    result, out, _ = reference
    layout = RunLayout(result.root)
    bundle = world["bundle"]
    summary = json.loads(layout.summary.read_text())
    base = None
    for part in range(6):
        scored = pd.read_parquet(layout.scored(part))
        contrib = scored[[c for c in scored.columns if c.startswith("shap__")]].to_numpy()
        marker = json.loads(layout.done(part).read_text())
        assert marker["rows"] == len(scored)
        assert {partition_of(e, 6) for e in scored["enterprise_id"].unique()} <= {part}
        p = scored["probability"].to_numpy()
        logit = np.log(p / (1 - p))
        if base is None:
            base = logit[0] - contrib[0].sum()
        np.testing.assert_allclose(base + contrib.sum(axis=1), logit, atol=1e-9)
    expected = bundle.booster.predict(
        np.full((1, len(bundle.feature_names)), np.nan), pred_contrib=True
    )[0, -1]
    assert base == pytest.approx(bundle.calibration.a * expected + bundle.calibration.b, abs=1e-9)
    assert summary["declarations"] == result.declarations
    q = summary["summary"]["probability_quantiles"]
    assert q["q01"] <= q["q50"] <= q["q99"]


# ----------------------------------------------------------------------- database and API


def test_database_rows_and_readers(reference):
    result, _, db = reference
    engine = make_engine(db)
    listing = list_profiles(engine, limit=10, offset=0)
    assert listing["as_of"] == AS_OF
    assert listing["total"] == result.enterprises
    rates = [i["expected_rate"] for i in listing["items"]]
    assert rates == sorted(rates, reverse=True) and rates[0] is not None
    top = listing["items"][0]
    assert top["risk_rank"] == 1
    again = get_profile(engine, top["enterprise_id"])
    assert again["expected_rate"] == top["expected_rate"]
    assert isinstance(again["reasons_up"], list) and again["warnings"] == []
    assert get_profile(engine, "no-such-enterprise") is None
    page2 = list_profiles(engine, limit=10, offset=10)
    assert page2["items"][0]["risk_rank"] == 11


def test_api_routes_need_the_committee_role(reference, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from serving.auth import KeyStore, create_key
    from serving.db import create_schema
    from serving.routes import enterprises

    _, _, db = reference
    engine = make_engine(db)
    create_schema(engine)
    app = FastAPI()
    app.state.engine = engine
    app.state.keys = KeyStore(engine, 0.0)
    app.include_router(enterprises.router)
    committee = create_key(engine, "committee", name="c")
    inspector = create_key(engine, "inspector", name="i")
    with TestClient(app) as client:
        assert client.get("/v1/enterprises").status_code == 401
        assert client.get("/v1/enterprises", headers={"X-API-Key": inspector[0]}).status_code == 403
        r = client.get("/v1/enterprises?limit=5", headers={"X-API-Key": committee[0]})
        assert r.status_code == 200 and len(r.json()["items"]) == 5
        ent = r.json()["items"][0]["enterprise_id"]
        one = client.get(f"/v1/enterprises/{ent}", headers={"X-API-Key": committee[0]})
        assert one.status_code == 200 and one.json()["risk_rank"] == 1
        assert (
            client.get("/v1/enterprises/nobody", headers={"X-API-Key": committee[0]}).status_code
            == 404
        )
        assert (
            client.get("/v1/enterprises?limit=0", headers={"X-API-Key": committee[0]}).status_code
            == 422
        )


# ----------------------------------------------------------------------- idempotence, history


def test_same_as_of_twice_is_byte_identical_and_replaces_db_rows(world, reference, tmp_path):
    result, out, db = reference
    again = _run(world, tmp_path, database=db)
    assert again.run_id == result.run_id
    assert _files(again.root) == _files(result.root)
    # The second run over the same folder resumes everything and rewrites the same bytes.
    third = _run(world, out, database=db)
    assert third.resumed_partitions == 6
    assert _files(third.root) == _files(result.root)
    with make_engine(db).connect() as conn:
        n = conn.execute(
            sa.text("select count(*) from enterprise_profiles where as_of = :a"), {"a": AS_OF}
        ).scalar()
    assert n == result.enterprises


def test_change_since_previous_run(world, tmp_path):
    first = _run(world, tmp_path, as_of="2026-03-31")
    second = _run(world, tmp_path, as_of=AS_OF)
    a = first.profiles().set_index("enterprise_id")
    b = second.profiles().set_index("enterprise_id")
    both = b.index[b["previous_as_of"].notna()]
    assert len(both) > 10 and (b.loc[both, "previous_as_of"] == "2026-03-31").all()
    np.testing.assert_allclose(
        b.loc[both, "expected_rate_delta"].to_numpy(dtype=float),
        (b.loc[both, "expected_rate"] - a.loc[both, "expected_rate"]).to_numpy(dtype=float),
        equal_nan=True,
    )
    moved = b.loc[both]
    rank = {t: i for i, t in enumerate(TIER_ORDER)}
    for ent, row in moved.iterrows():
        before, now = a.loc[ent, "risk_tier"], row["risk_tier"]
        if isinstance(before, str) and isinstance(now, str):
            want = "same" if before == now else ("up" if rank[now] < rank[before] else "down")
            assert row["risk_tier_change"] == want
    assert (first.profiles()["risk_tier_change"] == "new").all()


def test_warnings_hook_is_used(world, tmp_path):
    target = world["tables"]["declarations"]["enterprise_id"].iloc[-1]

    def provider(ids, as_of):
        assert as_of == period_bounds(AS_OF, 365, "Asia/Shanghai")[1]
        return {target: [{"id": "W1", "level": 2}]}

    prof = _run(world, tmp_path, warnings=provider).profiles().set_index("enterprise_id")
    assert json.loads(prof.loc[target, "warnings"]) == [{"id": "W1", "level": 2}]
    assert (prof.drop(index=target)["warnings"] == "[]").all()


# ----------------------------------------------------------------------- kill and resume

SCRIPT = """
import sys, time
from pathlib import Path
from features.bundle import load_bundle
from features.store import Store
from serving.rescore import rescore
stage, out, store, bundle = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
def slow(s, done, total):
    print(s, done, total, flush=True)
    if s == stage:
        time.sleep(0.4)
st = Store(store)
rescore("AS_OF_DATE", bundle=load_bundle(bundle), out_dir=out, tables=st.tables(),
        attributes=st.attributes, partitions=6, progress=slow)
print("finished", flush=True)
""".replace("AS_OF_DATE", AS_OF)


@pytest.mark.parametrize("stage", ["features", "score"])
def test_killed_run_resumes_to_the_identical_result(world, reference, tmp_path, stage):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(script),
            stage,
            str(out),
            str(world["store"]),
            str(world["bundle_path"]),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    # Kill -9 in the middle of the slowed stage: after its second step, before its end.
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line.strip())
        parts = line.split()
        if parts[0] == stage and int(parts[1]) == 2:
            break
        assert time.monotonic() < deadline
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "finished" not in seen
    layout = RunLayout.for_run(out, AS_OF)
    assert not layout.profiles.exists()
    if stage == "score":
        assert 0 < sum(layout.is_done(p) for p in range(6)) < 6
    else:
        assert not layout.features_success.exists()

    resumed = _run(world, out)
    assert resumed.run_id == reference[0].run_id
    if stage == "score":
        assert 0 < resumed.resumed_partitions < 6
    assert _files(resumed.root) == _files(reference[0].root)
    assert not list(resumed.root.rglob("*.tmp"))


def test_a_corrupted_partition_is_redone(world, reference, tmp_path):
    first = _run(world, tmp_path)
    layout = RunLayout(first.root)
    layout.scored(3).write_bytes(b"truncated")
    assert not layout.is_done(3)
    again = _run(world, tmp_path)
    assert again.resumed_partitions == 5
    assert _files(again.root) == _files(reference[0].root)


# ----------------------------------------------------------------------- Dask


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client

    from serving.rescore.engines import start_local_cluster

    cluster = start_local_cluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_two_threads_give_the_single_thread_result(world, reference, tmp_path, monkeypatch):
    """Local engine, 2 threads: partitions in flight concurrently and rows explained in chunks
    (small chunks so every partition is split) give the same bytes as 1 thread."""
    from serving.rescore import engines

    monkeypatch.setattr(engines, "CHUNK_ROWS", 64)
    seen: list[tuple[str, int, int]] = []
    result = _run(world, tmp_path, threads=2, progress=lambda *a: seen.append(a))
    assert result.run_id == reference[0].run_id
    assert _files(result.root) == _files(reference[0].root)
    assert [d for s, d, _ in seen if s == "score"] == list(range(7))
    assert [d for s, d, _ in seen if s == "features"] == list(range(1, 7))


def test_dask_engine_gives_the_local_result(world, reference, tmp_path, dask_client):
    from serving.rescore.engines import worker_loads

    result = _run(
        world,
        tmp_path,
        engine="dask",
        client=dask_client,
        bundle_digest=manifest_digest(world["bundle_path"]),
    )
    assert result.run_id == reference[0].run_id
    assert _files(result.root) == _files(reference[0].root)
    # Two workers, each loaded the bundle once and runs single-threaded.
    loads = dask_client.run(worker_loads)
    assert len(loads) == 2 and all(n <= 1 for n in loads.values()) and sum(loads.values()) >= 1

    def threads():
        import numba

        return os.environ.get("OMP_NUM_THREADS"), numba.get_num_threads()

    assert set(dask_client.run(threads).values()) == {("1", 1)}


def test_dask_workers_refuse_a_tampered_bundle(world, tmp_path, dask_client):
    from distributed import Client  # noqa: F401

    with pytest.raises(Exception, match="registry"):
        _run(world, tmp_path, engine="dask", client=dask_client, bundle_digest="0" * 64)


# ----------------------------------------------------------------------- parity


def test_parity_local_dask_and_api_math(world, reference, tmp_path, dask_client):
    """One declaration: local engine, Dask engine and the API's Scorer math agree within 1e-9."""
    from riskmodel.explain import calibrate, make_explainer

    local_root = reference[0].root
    dask_run = _run(world, tmp_path, engine="dask", client=dask_client)
    bundle = world["bundle"]
    scored_local = pd.concat(
        pd.read_parquet(p) for p in sorted((local_root / "scored").glob("*.parquet"))
    )
    scored_dask = pd.concat(
        pd.read_parquet(p) for p in sorted((dask_run.root / "scored").glob("*.parquet"))
    )
    ids = scored_local["declaration_id"].iloc[::97].tolist()
    feats = world["features"].set_index("declaration_id").loc[ids, bundle.feature_names]
    explainer, _ = make_explainer(bundle.booster)
    cols = ["shap__" + f for f in bundle.feature_names]
    sl = scored_local.set_index("declaration_id").loc[ids]
    sd = scored_dask.set_index("declaration_id").loc[ids]
    for i, did in enumerate(ids):
        x = feats.iloc[i].to_numpy(np.float64)
        # The API's math (riskmodel.explain.calibrate), one row at a time.
        one = calibrate(explainer.contributions_row(x)[None, :], bundle.calibration)
        api_contrib, api_p = one.contributions[0], float(one.probability[0])
        for frame in (sl, sd):
            assert abs(frame.loc[did, "probability"] - api_p) < 1e-9
            np.testing.assert_allclose(
                frame.loc[did, cols].to_numpy(float), api_contrib, atol=1e-9, rtol=0
            )
        # And LightGBM's own numbers (independent of our TreeSHAP).
        assert abs(sl.loc[did, "probability"] - bundle.probability(x[None, :])[0]) < 1e-9
    assert len(ids) > 10


def test_parity_with_the_api_scorer_online(world, reference):
    """The real ``Scorer`` (online features from a snapshot just before the declaration) gives
    the batch engine's probability and contributions."""
    pytest.importorskip("features.snapshot")
    pytest.importorskip("features.online")
    from features.snapshot import Snapshot
    from riskmodel import ModelRef
    from serving.scoring import LiveSnapshot, Scorer

    bundle = world["bundle"]
    tables = world["tables"]
    scored = pd.concat(
        pd.read_parquet(p) for p in sorted((reference[0].root / "scored").glob("*.parquet"))
    )
    row = scored.sort_values("declared_at").iloc[len(scored) // 2]
    decl = tables["declarations"].set_index("declaration_id").loc[row["declaration_id"]]
    at = row["declared_at"]
    before = {
        "declarations": tables["declarations"][tables["declarations"]["declared_at"] < at],
        "inspections": tables["inspections"][tables["inspections"]["inspected_at"] < at],
        "risk_signals": tables["risk_signals"][tables["risk_signals"]["reported_at"] < at],
        "credit_ratings": tables["credit_ratings"],
        "enterprises": tables["enterprises"],
    }
    snap = Snapshot.build(before, at, world["attributes"])
    ref = ModelRef(name="guomen-risk", version="7", alias="champion", manifest_sha256="x")
    scorer = Scorer(bundle, ref, LiveSnapshot(snap), secret="s")
    declaration = {"declaration_id": row["declaration_id"], **decl.to_dict()}
    res = scorer.score(declaration)
    assert abs(res.probability - row["probability"]) < 1e-9
    cols = ["shap__" + f for f in bundle.feature_names]
    np.testing.assert_allclose(res.contributions, row[cols].to_numpy(float), atol=1e-9, rtol=0)


def test_mlflow_run_summary_logged_once_per_run(world, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = _run(world, tmp_path / "out", mlflow_tracking_uri=uri)
    again = _run(world, tmp_path / "out", mlflow_tracking_uri=uri)
    assert first.mlflow_run_id and again.mlflow_run_id == first.mlflow_run_id
    run = MlflowClient(uri).get_run(first.mlflow_run_id)
    assert run.data.params["model_version"] == "7" and run.data.params["as_of"] == AS_OF
    assert run.data.metrics["declarations"] == first.declarations
    assert run.data.metrics["probability_q50"] == first.summary["probability_quantiles"]["q50"]


def test_committee_page_explanation_equals_rescoring(world, reference, tmp_path):
    """The committee's re-explanation of a store declaration (point-in-time features, the
    serving ``Scorer``'s explainer) equals the rescoring output for it within 1e-9."""
    from fastapi import FastAPI

    from features.snapshot import Snapshot
    from guomen.settings import Settings
    from riskmodel import ModelRef
    from serving.committee.explaining import re_explanation
    from serving.scoring import LiveSnapshot, Scorer

    bundle, tables = world["bundle"], world["tables"]
    app = FastAPI()
    app.state.settings = Settings(store_dir=world["store"])
    snap = Snapshot.build(tables, pd.Timestamp(AS_OF, tz="UTC"), world["attributes"])
    ref = ModelRef(name="guomen-risk", version="7", alias="champion", manifest_sha256="x")
    scorer = Scorer(bundle, ref, LiveSnapshot(snap), secret="s")
    scored = pd.concat(
        pd.read_parquet(p) for p in sorted((reference[0].root / "scored").glob("*.parquet"))
    ).set_index("declaration_id")
    cols = ["shap__" + f for f in bundle.feature_names]
    ids = scored.index[:: max(1, len(scored) // 25)].tolist()
    for did in ids:
        page = re_explanation(app, scorer, tables, did)
        assert page is not None
        assert abs(page["probability"] - scored.loc[did, "probability"]) < 1e-9
        np.testing.assert_allclose(
            page["contributions"], scored.loc[did, cols].to_numpy(float), atol=1e-9, rtol=0
        )
        assert page["tier"] == scored.loc[did, "tier"]
    assert len(ids) > 10
    # built once, on disk next to the store, and not rebuilt for the next page view
    cache = world["store"].parent / "explain-cache"
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")]
    assert re_explanation(app, scorer, tables, "no-such-declaration") is None


def test_reasons_are_the_top_contributions_with_ties_by_feature_position() -> None:
    """The vectorised top-reason choice equals the per-row reference: the largest positive
    (negative) mean contributions, at most TOP_REASONS, ties broken by feature position."""
    from serving.rescore.profiles import TOP_REASONS, _reasons

    rng = np.random.default_rng(5)
    means = np.round(rng.normal(0, 1, (300, 12)), 1)  # rounding makes ties
    means[0] = 0.0
    means[1, :] = 0.3
    names = [f"f{i}" for i in range(12)]
    up, down = _reasons(means, names, {})
    idx = np.arange(12)
    for row, u, d in zip(means, up, down, strict=True):
        want_up = [i for i in np.lexsort((idx, -row)) if row[i] > 0][:TOP_REASONS]
        want_down = [i for i in np.lexsort((idx, row)) if row[i] < 0][:TOP_REASONS]
        assert [x["feature"] for x in json.loads(u)] == [names[i] for i in want_up]
        assert [x["feature"] for x in json.loads(d)] == [names[i] for i in want_down]
