"""Generator worlds: the default stays byte-identical, every other world plants its mechanism."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo import worlds as wd
from demo.foreign import COLUMNS, write_foreign_flat
from demo.generate import write_demo_data
from features.contract import TABLES
from features.ingest import ingest
from features.store import Store

N = 40_000
N_FLAT = 30_000
# worlds whose grain is a pair: measured as the pair's interaction beyond each side's own effect
INTERACTIONS = ("overseas_hs4", "port_chapter")

# sha256 of the files written by the generators before worlds existed (commit cc7ee9e):
# write_demo_data(out, 3000, seed=5) and write_foreign_flat(out/flat/foreign_flat.csv, 2000, 5).
BEFORE_WORLDS = {
    "credit_ratings.parquet": "7ec7f3d727f23e36e83ab666775b32b74ae921131286f6e5bbef099bbd943c81",
    "declarations.parquet": "9cc718caf6cbe58278c51a41395ffccef83a0f32d1a2e11ee97aa4e9312746d5",
    "enterprises.parquet": "a34b921822cc4b80302145ebd106c12671ec80e5c57dd6d6a4c3ea303f7fca2b",
    "flat/foreign_flat.csv": "bfb638d0aacb2e047f511b70e91c6f5cba31c920ab12ccba516926a93ffc9d0e",
    "ground_truth/declaration_truth.parquet": (
        "ea1b43eda0189a771a83065e203ac3fbaefee8e87f0ab9504337fe24418abdee"
    ),
    "ground_truth/outbreaks.json": (
        "07e734060c0e9e9774cc4600c7e385f26edd494cb4377bcab5184a5bcf0edae5"
    ),
    "inspections.parquet": "82fc3848277d934fdec98bff7e226e41dc17599880f8c291e89e386290fbd022",
    "risk_signals.parquet": "ba28d2df06dbd83ed4bb9b50717854ba3d82b59718202120659397dc2c0a3abe",
}


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_default_world_is_byte_identical_to_before_worlds(tmp_path):
    write_demo_data(tmp_path, 3000, seed=5, world="default", signal_intensity=1.0)
    write_foreign_flat(tmp_path / "flat" / "foreign_flat.csv", 2000, seed=5, world="default")
    assert _digest(tmp_path) == BEFORE_WORLDS


def test_flat_truth_file_does_not_change_the_csv(tmp_path):
    write_foreign_flat(tmp_path / "a" / "f.csv", 2000, seed=5)
    write_foreign_flat(tmp_path / "b" / "f.csv", 2000, seed=5, truth=True)
    assert (tmp_path / "a" / "f.csv").read_bytes() == (tmp_path / "b" / "f.csv").read_bytes()
    truth = pd.read_parquet(tmp_path / "b" / "ground_truth" / "foreign_truth.parquet")
    comps = truth.filter(like="logit_")
    np.testing.assert_allclose(comps.sum(axis=1), truth["logit"], atol=1e-9)
    np.testing.assert_allclose(truth["p_true"], 1 / (1 + np.exp(-truth["logit"])))


def test_flat_truth_conditions_on_the_price_fraud_leaves_behind(tmp_path):
    """Fraud lowers the declared price, so P(fraud | risk, price) is the oracle: calibrated
    against the labels, and it ranks them better than the risk before the price."""
    from sklearn.metrics import roc_auc_score

    write_foreign_flat(tmp_path / "f.csv", 30_000, seed=9, world="attribute", truth=True)
    fraud = pd.read_csv(tmp_path / "f.csv")["Fraud"].to_numpy()
    truth = pd.read_parquet(tmp_path / "ground_truth" / "foreign_truth.parquet")
    before = 1 / (1 + np.exp(-(truth.logit - truth.logit_price_evidence)))
    assert abs(truth.p_true.mean() - fraud.mean()) < 0.01
    top = truth.p_true > 0.5
    assert abs(truth.p_true[top].mean() - fraud[top].mean()) < 0.05
    assert roc_auc_score(fraud, truth.p_true) > roc_auc_score(fraud, before) + 0.05
    assert (truth.critical_p_true <= truth.p_true).all()


def test_unknown_world_and_bad_intensity_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown world 'hs8'.*hs6_origin"):
        write_demo_data(tmp_path, 1000, seed=1, world="hs8")
    with pytest.raises(ValueError, match="signal intensity"):
        write_demo_data(tmp_path, 1000, seed=1, signal_intensity=0)
    with pytest.raises(ValueError, match="unknown world"):
        write_foreign_flat(tmp_path / "f.csv", 1000, seed=1, world="nope")


@pytest.fixture(scope="module")
def demo_worlds(tmp_path_factory):
    """Every world at N declarations, same seed: declarations and ground truth."""
    out = {}
    for name in wd.WORLD_NAMES:
        folder = tmp_path_factory.mktemp(name)
        write_demo_data(folder, N, seed=21, world=name)
        decl = pd.read_parquet(folder / "declarations.parquet")
        truth = pd.read_parquet(folder / "ground_truth" / "declaration_truth.parquet")
        outbreaks = json.loads((folder / "ground_truth" / "outbreaks.json").read_text())
        out[name] = (folder, decl, truth, outbreaks)
    return out


def _spread(logit: pd.Series, key: pd.Series, parent: pd.Series | None, min_rows: int = 30):
    """Volume-weighted sd of the cells' mean true log-odds (noise removed), within the parent.

    Visible columns define the cells, so a world whose mechanism does not follow the columns a
    model can see fails here.
    """
    frame = pd.DataFrame({"x": logit.to_numpy(), "k": key.to_numpy()})
    frame["p"] = "" if parent is None else parent.to_numpy()
    cells = frame.groupby(["p", "k"])["x"].agg(["mean", "size"])
    cells = cells[cells["size"] >= min_rows].reset_index()
    cells["dev"] = cells["mean"] - cells.groupby("p")["mean"].transform(
        lambda m: np.average(m, weights=cells.loc[m.index, "size"])
    )
    return float(np.sqrt(np.average(cells["dev"] ** 2, weights=cells["size"])))


def _interaction(logit: pd.Series, a: pd.Series, b: pd.Series, min_rows: int = 30) -> float:
    """Volume-weighted sd of the a x b cells' mean log-odds after removing a's and b's means."""
    frame = pd.DataFrame({"x": logit.to_numpy(), "a": a.to_numpy(), "b": b.to_numpy()})
    frame["x"] -= frame.groupby("a")["x"].transform("mean")
    frame["x"] -= frame.groupby("b")["x"].transform("mean")
    cells = frame.groupby(["a", "b"])["x"].agg(["mean", "size"])
    cells = cells[cells["size"] >= min_rows]
    return float(np.sqrt(np.average(cells["mean"] ** 2, weights=cells["size"])))


def _keys(decl):
    return {
        "hs6_origin": (
            decl.hs_code.str[:8] + decl.origin_country,
            decl.hs_code.str[:4] + decl.origin_country,
        ),  # fmt: skip
        "declarant": (decl.declarant_id.fillna("-"), None),
        "overseas_hs4": (decl.hs_code.str[:4], decl.overseas_party_id.fillna("-")),
        "port_chapter": (decl.hs_code.str[:2], decl.port_code),
        "weak_enterprise": (decl.enterprise_id, None),
    }


@pytest.mark.parametrize(
    "world", ["hs6_origin", "declarant", "overseas_hs4", "port_chapter", "weak_enterprise"]
)
def test_each_world_plants_its_mechanism_at_its_grain(demo_worlds, world):
    _, d_default, t_default, _ = demo_worlds["default"]
    _, d_world, t_world, _ = demo_worlds[world]
    key, parent = _keys(d_world)[world]
    key0, parent0 = _keys(d_default)[world]
    stat = _interaction if world in INTERACTIONS else _spread
    s_world = stat(t_world.logit - t_world.logit_noise, key, parent)
    s_default = stat(t_default.logit - t_default.logit_noise, key0, parent0)
    if world == "weak_enterprise":
        assert s_world < 0.6 * s_default, (s_world, s_default)
    else:
        assert s_world > 1.5 * s_default and s_world > 0.35, (s_world, s_default)
        comp = t_world[f"logit_{world}"]
        assert comp.std() > 0.2  # at N; about 0.6 at the 200k benchmark size
    # no column reveals the mechanism: exactly the contract's columns, as in the default world
    assert list(d_world.columns) == list(d_default.columns) == TABLES["declarations"].names


def test_attribute_world_adds_a_risky_column_declared_by_the_mapping(demo_worlds):
    _, decl, truth, _ = demo_worlds["attribute"]
    _, decl0, _, _ = demo_worlds["default"]
    assert wd.ATTRIBUTE_COLUMN not in decl0.columns
    assert list(decl.columns) == TABLES["declarations"].names + [wd.ATTRIBUTE_COLUMN]
    assert set(decl[wd.ATTRIBUTE_COLUMN]) <= set(wd.PACKAGE_TYPES)
    rate = (truth.logit - truth.logit_noise).groupby(decl[wd.ATTRIBUTE_COLUMN].to_numpy()).mean()
    assert rate.max() - rate.min() > 0.8


def test_attribute_world_ingests_through_the_documented_mapping(tmp_path):
    src, store = tmp_path / "src", tmp_path / "store"
    write_demo_data(src, 3000, seed=2, world="attribute")
    mapping = Path(__file__).parents[2] / "docs" / "examples" / "demo_attribute_mapping.yaml"
    report = ingest(src, store, mapping_file=mapping)
    assert report.tables["declarations"].quarantined == 0
    st = Store(store)
    assert st.attributes == {wd.ATTRIBUTE_COLUMN: "categorical"}
    decl = st.tables()["declarations"]
    native = pd.read_parquet(src / "declarations.parquet")
    assert decl[wd.ATTRIBUTE_COLUMN].tolist() == native[wd.ATTRIBUTE_COLUMN].tolist()
    # timestamps survive the mapping's text round trip
    assert (decl.declared_at.to_numpy() == native.declared_at.dt.tz_convert("UTC").to_numpy()).all()


def test_every_world_keeps_the_trade_and_the_planted_outbreaks(demo_worlds):
    _, d0, t0, ob0 = demo_worlds["default"]
    for name in wd.WORLD_NAMES:
        _, d, t, ob = demo_worlds[name]
        # same trade: the same enterprises declare the same products at the same times
        assert d.enterprise_id.equals(d0.enterprise_id) and d.declared_at.equals(d0.declared_at)
        assert d.hs_code.str[:6].equals(d0.hs_code.str[:6])
        assert len(ob) == len(ob0) == 8
        assert [o["start"] for o in ob] == [o["start"] for o in ob0]
        assert all(o["declarations_inside"] > 0 for o in ob)
        assert np.nanmedian([o["rate_multiplier"] for o in ob]) > 2
        comps = t.filter(like="logit_")
        np.testing.assert_allclose(comps.sum(axis=1), t.logit, atol=1e-9)
        assert abs(t.p_true.mean() - 0.032) < 0.002


def test_signal_intensity_scales_reports_including_outbreak_reports(tmp_path):
    counts, ob_reports = {}, {}
    for k in wd.SIGNAL_INTENSITIES:
        folder = tmp_path / str(k)
        write_demo_data(folder, 30_000, seed=4, world="declarant", signal_intensity=k)
        sig = pd.read_parquet(folder / "risk_signals.parquet")
        counts[k] = len(sig)
        ob_reports[k] = sig.channel.isin(["foreign_alert", "public_opinion"]).sum()
        decl = pd.read_parquet(folder / "declarations.parquet")
        assert len(decl) == 30_000
    assert 0.35 < counts[0.5] / counts[1.0] < 0.65
    assert 1.6 < counts[2.0] / counts[1.0] < 2.4
    assert ob_reports[2.0] > 1.5 * ob_reports[1.0] > 1.5 * 1.5 * ob_reports[0.5] * 0.9


@pytest.fixture(scope="module")
def flat_worlds(tmp_path_factory):
    out = {}
    for name in wd.WORLD_NAMES:
        folder = tmp_path_factory.mktemp(f"flat_{name}")
        write_foreign_flat(folder / "foreign_flat.csv", N_FLAT, seed=8, world=name, truth=True)
        frame = pd.read_csv(folder / "foreign_flat.csv", dtype=str)
        truth = pd.read_parquet(folder / "ground_truth" / "foreign_truth.parquet")
        out[name] = (frame, truth)
    return out


def _flat_keys(f):
    return {
        "hs6_origin": (
            f["HS6 Code"] + f["Country of Origin"],
            f["HS6 Code"].str[:4] + f["Country of Origin"],
        ),  # fmt: skip
        "declarant": (f["Declarant ID"], None),
        "overseas_hs4": (f["HS6 Code"].str[:4], f["Seller ID"]),
        "port_chapter": (f["HS6 Code"].str[:2], f["Office ID"]),
        "attribute": (f["Import Use"], None),
        "weak_enterprise": (f["Importer ID"], None),
    }


@pytest.mark.parametrize("world", [w for w in wd.WORLD_NAMES if w != "default"])
def test_each_flat_world_plants_its_mechanism(flat_worlds, world):
    f0, t0 = flat_worlds["default"]
    f, t = flat_worlds[world]
    assert list(f.columns) == list(COLUMNS)
    key, parent = _flat_keys(f)[world]
    key0, parent0 = _flat_keys(f0)[world]
    stat = _interaction if world in INTERACTIONS else _spread
    s_world = stat(t.logit, key, parent, min_rows=20)
    s_default = stat(t0.logit, key0, parent0, min_rows=20)
    if world == "weak_enterprise":
        assert s_world < 0.6 * s_default, (s_world, s_default)
    else:
        assert s_world > 1.5 * s_default and s_world > 0.3, (s_world, s_default)
    assert f["Fraud"].astype(int).mean() > 0.05


def test_cli_writes_a_world_and_the_flat_layout(tmp_path):
    guomen = [str(Path(sys.executable).parent / "guomen")]  # the installed command
    run = subprocess.run(
        [*guomen, "demo-data", "--out", str(tmp_path / "w"), "--declarations", "2000",
         "--world", "port_chapter", "--signal-intensity", "2"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    truth = pd.read_parquet(tmp_path / "w" / "ground_truth" / "declaration_truth.parquet")
    assert "logit_port_chapter" in truth.columns
    run = subprocess.run(
        [*guomen, "demo-data", "--out", str(tmp_path / "f"), "--declarations", "2000",
         "--world", "declarant", "--layout", "flat"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "f" / "ground_truth" / "foreign_truth.parquet").is_file()
    bad = subprocess.run(
        [*guomen, "demo-data", "--out", str(tmp_path / "x"), "--world", "hs8"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "--world must be one of" in bad.stderr
