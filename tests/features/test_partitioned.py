"""Partitioned (out-of-core) feature build: the same features as the in-memory build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import BEHAVIOUR_SUMS, build_offline
from features.categorical import fit_code_maps
from features.history import BEHAVIOUR_SUM_NAMES
from features.partitioned import (
    FrameSource,
    StoreSource,
    build_partitioned,
    read_manifest,
)
from tests.features.pit_synth import make_tables

ATTRS = {"office_group": "categorical", "tax_rate": "numeric"}


def read_partitions(directory: Path) -> pd.DataFrame:
    files = sorted((directory / "features").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def mismatches(full: pd.DataFrame, parts: pd.DataFrame) -> dict[str, int]:
    """Columns where the partitions differ from the in-memory build cast to float32."""
    assert len(parts) == len(full) and parts["declaration_id"].is_unique
    parts = parts.set_index("declaration_id").loc[full["declaration_id"]].reset_index()
    bad = {}
    for c in full.columns[3:]:
        assert parts[c].dtype == np.float32, c
        a = full[c].to_numpy().astype(np.float32)
        b = parts[c].to_numpy()
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if not same.all():
            bad[c] = int((~same).sum())
    return bad


def late_results(tables: dict[str, pd.DataFrame], share: float, seed: int) -> None:
    """Push some results more than a year after their declaration (older than the context)."""
    insp = tables["inspections"]
    rng = np.random.default_rng(seed)
    late = rng.random(len(insp)) < share
    insp.loc[late, "inspected_at"] = insp.loc[late, "inspected_at"] + pd.Timedelta(days=400)


@pytest.mark.parametrize(("seed", "months"), [(0, 1), (1, 3)])
def test_partitions_equal_in_memory_build(tmp_path: Path, seed: int, months: int) -> None:
    tables = make_tables(4000, seed=seed, days=900, attributes=True)
    late_results(tables, 0.1, seed)
    full = build_offline(tables, ATTRS)
    out = build_partitioned(FrameSource(tables), tmp_path / "f", ATTRS, partition_months=months)
    assert out.rows == len(full)
    assert len(out.partitions) == pytest.approx(30 / months, abs=1)
    assert mismatches(full, read_partitions(tmp_path / "f")) == {}
    manifest = read_manifest(tmp_path / "f")
    assert manifest["feature_names"] == list(full.columns[3:])
    assert manifest["categories"] == fit_code_maps(tables["declarations"], ATTRS)
    labels = pd.concat(
        [pd.read_parquet(f) for f in sorted((tmp_path / "f" / "labels").glob("*.parquet"))]
    )
    assert int(labels["inspected"].sum()) == tables["inspections"]["declaration_id"].nunique()


def test_carried_history_is_what_makes_them_equal(tmp_path: Path, monkeypatch) -> None:
    """Without the carried results the all-history features go wrong: the comparison bites."""
    import features.history as history

    add = history.History.add

    def forget_results(self, name, keys, **kw):  # type: ignore[no-untyped-def]
        if kw.get("inspected_at") is None:
            add(self, name, keys, **kw)

    monkeypatch.setattr(history.History, "add", forget_results)
    tables = make_tables(3000, seed=2, days=900, attributes=True)
    full = build_offline(tables, ATTRS)
    build_partitioned(FrameSource(tables), tmp_path / "f", ATTRS)
    bad = mismatches(full, read_partitions(tmp_path / "f"))
    assert "ent_insp_cnt_all" in bad and "ent_nc_rate_eb_all" in bad


def test_store_partitions_equal_in_memory_build(tmp_path: Path) -> None:
    """A real demo store, read month by month, with a chosen entity set."""
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from features.store import Store

    write_demo_data(tmp_path / "src", n_declarations=12_000, seed=5)
    ingest(tmp_path / "src", tmp_path / "store")
    store = Store(tmp_path / "store")
    entities = ["ent", "hs6_x_org", "port_x_trd"]
    full = build_offline(store.tables(), store.attributes, entities=entities)
    build_partitioned(
        StoreSource(tmp_path / "store"), tmp_path / "f", store.attributes, entities=entities
    )
    assert mismatches(full, read_partitions(tmp_path / "f")) == {}


def test_behaviour_sum_names_agree() -> None:
    assert BEHAVIOUR_SUM_NAMES == BEHAVIOUR_SUMS


def test_bad_partition_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="partition_months"):
        build_partitioned(FrameSource(make_tables(50)), tmp_path / "f", partition_months=0)


def test_partitions_on_a_dask_cluster_equal_the_local_build(tmp_path: Path) -> None:
    """Each partition computed by a worker of a real LocalCluster (two processes), or by two
    threads here: the same frames as the build computed one partition at a time."""
    from distributed import Client, LocalCluster

    tables = make_tables(3000, seed=4, days=800, attributes=True)
    late_results(tables, 0.1, 4)
    local = build_partitioned(FrameSource(tables), tmp_path / "local", ATTRS, partition_months=2)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        remote = build_partitioned(
            FrameSource(tables), tmp_path / "dask", ATTRS, partition_months=2, client=client
        )
    threaded = build_partitioned(
        FrameSource(tables), tmp_path / "threads", ATTRS, partition_months=2, threads=2
    )
    assert remote.partitions == local.partitions == threaded.partitions
    for kind in ("features", "labels"):
        for path in sorted((tmp_path / "local" / kind).glob("*.parquet")):
            a = pd.read_parquet(path)
            for other in ("dask", "threads"):
                pd.testing.assert_frame_equal(
                    a, pd.read_parquet(tmp_path / other / kind / path.name)
                )
    full = build_offline(tables, ATTRS)
    assert mismatches(full, read_partitions(tmp_path / "dask")) == {}


def test_features_build_on_a_scheduler_through_the_cli(tmp_path: Path) -> None:
    """`guomen features build --partition-months 2 --scheduler ADDRESS` against a real
    LocalCluster's scheduler: the store is read by the workers, the folder equals the local one."""
    from distributed import LocalCluster
    from typer.testing import CliRunner

    from demo.generate import write_demo_data
    from features.ingest import ingest
    from guomen.cli import app

    write_demo_data(tmp_path / "src", n_declarations=6_000, seed=8)
    ingest(tmp_path / "src", tmp_path / "store")
    base = ["features", "build", "--store", str(tmp_path / "store"), "--partition-months", "2"]
    runner = CliRunner()
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "local")])
    assert res.exit_code == 0, res.output
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        res = runner.invoke(
            app, [*base, "--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address]
        )
    assert res.exit_code == 0, res.output
    assert "partitions ->" in res.output
    names = sorted(p.name for p in (tmp_path / "local" / "features").glob("*.parquet"))
    assert names and names == sorted(p.name for p in (tmp_path / "dask" / "features").glob("*"))
    for name in names:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "local" / "features" / name),
            pd.read_parquet(tmp_path / "dask" / "features" / name),
        )
    res = runner.invoke(app, [*base[:4], "--out", str(tmp_path / "x"), "--scheduler", "tcp://x:1"])
    assert res.exit_code != 0 and "--partition-months" in res.output


def test_live_memory_does_not_grow_per_partition(tmp_path: Path) -> None:
    """Once the 12-month context is full, what the build keeps between partitions grows only
    with what it must carry (20-byte unit values per declaration, new keys): nothing of a
    partition's frame, events or results is retained (a leak of one would add megabytes)."""
    import gc
    import tracemalloc

    tables = make_tables(20000, seed=3, days=900, attributes=True)
    traced: list[int] = []

    def progress(_: str) -> None:
        gc.collect()
        traced.append(tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        build_partitioned(FrameSource(tables), tmp_path / "f", ATTRS, partition_months=1,
                          progress=progress)  # fmt: skip
    finally:
        tracemalloc.stop()
    assert len(traced) >= 28
    t = pd.to_datetime(tables["declarations"]["declared_at"], utc=True)
    per_month = len(t) / t.dt.tz_localize(None).dt.to_period("M").nunique()
    full, last = traced[14], traced[-1]
    added = per_month * (len(traced) - 1 - 14)
    assert last - full < 100 * added + 256 * 1024, (full, last, added)


def test_free_heap_is_given_back_on_glibc() -> None:
    import platform

    from features.partitioned import release_free_heap

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert release_free_heap() is expected
