"""Ablation (issue 12): would an "observed against expected" key family, or another key set,
close the gap to the "cells latent" reference? Offline only, on the cached 200k worlds.

Every variant adds columns to (or changes the keys of) the default feature set of a world's store
and fits the model with the default training code (``training.train.train_model``: the
selection-bias corrections, Platt calibration), capacity fixed at the grid's choice on these
worlds (31 leaves, 20 rows a leaf, feature fraction 0.5) so that only the features differ; the
ratio is the expected nonconformities found in the top 5 % / 10 % of the test declarations over
the oracle's, as ``bench_worlds.py`` reports it. The default set's fit ("base") is in the same run.

Variants:

- ``base``: the default feature set.
- ``oe_<base>_<a>``: per default key and point in time, failures observed on the key's inspected
  declarations (results known before the declaration) against the failures expected for those
  same declarations, as ``log((observed + a) / (expected + a))`` (a shrunk log ratio with prior
  ratio 1 and strength ``a`` expected failures). The expectation of each inspected declaration:
  ``plain`` the plain baseline (raw columns, no history: ``training.baselines``), ``parent`` the
  declaration's own HS4 x origin smoothed rate (a feature at its declaration time), ``model`` the
  default-set model itself (with all history features). Train rows get their expectation out of
  fold (three folds), later rows from a model fitted on all train rows: a row's expectation never
  comes from a fit on its own label.
- ``lift``: hierarchical shrinkage made explicit: per key with a parent grain, the log of its
  smoothed rate over its prior (the mean of its parents' smoothed rates), 365 days and all.
- ``keys:+a/-b``: the default key set with key ``a`` added and ``b`` removed (e.g. the 13th key
  the 12-key budget keeps out).

This is a measurement, not the feature family: nothing here is in the offline build, the snapshot
or the online row. Run::

    .venv/bin/python benchmarks/bench_key_effects.py --world declarant --variants base,oe_model_2
        [--seeds 7,8] [--work /tmp/guomen-bench-worlds]

Each result is appended to ``benchmarks/results/key_effects.json`` (with date, commit and load)
and ``key_effects.md`` is rebuilt from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_worlds import load_truth  # benchmarks/bench_worlds.py
from provenance import git_commit  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
# The capacity the validation grid chose on the 200k contract worlds (bench_worlds 2026-12-02).
FIXED_CAPACITY = {"min_data_in_leaf": 20, "feature_fraction": 0.5}
OOF_FOLDS = 3


class World:
    """A cached world's store, its default features, labels and split, rows in feature order."""

    def __init__(self, work: Path, layout: str, name: str) -> None:
        from training.config import load_config
        from training.pipeline import load_inputs
        from training.train import TRAIN, VALIDATION, prepare

        seeds = {
            d.name.split("_")[-1]: d
            for d in work.glob(f"{layout}_{name}_*_s*")
            if d.name.startswith(f"{layout}_{name}_") and "1000000" not in d.name
        }
        if len(seeds) != 1:
            raise SystemExit(
                f"expected one cached {layout} {name} world in {work}: run bench_worlds"
            )
        self.dir = next(iter(seeds.values()))
        self.layout, self.name = layout, name
        cfg = load_config()
        self.config = cfg.model_copy(
            update={
                "capacity": cfg.capacity.model_copy(update={"grid": False}),
                "lightgbm": cfg.lightgbm.model_copy(update=FIXED_CAPACITY),
            }
        )
        self.inputs = load_inputs(self.dir / "store")
        self.features = self.inputs.features.reset_index(drop=True)
        self.names = [s.name for s in self.inputs.specs]
        ids = self.features["declaration_id"].astype("str")
        decl = self.inputs.tables["declarations"].reset_index(drop=True)
        self.decl = decl.iloc[
            pd.Index(decl["declaration_id"].astype("str")).get_indexer(pd.Index(ids))
        ].reset_index(drop=True)
        lab = self.inputs.labels.set_index(self.inputs.labels["declaration_id"].astype("str"))
        lab = lab.reindex(ids)
        self.inspected = lab["inspected"].fillna(False).to_numpy(dtype=bool)
        self.nc = np.nan_to_num(lab["nonconforming"].to_numpy(dtype=np.float64))
        self.inspected_ns = pd.to_datetime(lab["inspected_at"], utc=True).astype("int64").to_numpy()
        declared = pd.to_datetime(self.decl["declared_at"], utc=True).astype("int64")
        self.declared_ns: np.ndarray = declared.to_numpy()
        data = prepare(self.features, self.inputs.labels, self.names, *self._split())
        at = pd.Index(ids).get_indexer(pd.Index(data.frame["declaration_id"].astype("str")))
        self.train = np.zeros(len(ids), dtype=bool)
        self.valid = np.zeros(len(ids), dtype=bool)
        self.train[at] = (data.segment == TRAIN) & data.known
        self.valid[at] = (data.segment == VALIDATION) & data.known
        self.train_period = np.zeros(len(ids), dtype=bool)
        self.train_period[at] = data.segment == TRAIN

    def _split(self) -> tuple[int, int]:
        return self.config.split.test_months, self.config.split.validation_months

    def key_values(self, entity: str) -> np.ndarray:
        """The key of every row (fields joined; a row missing a field has no key: None)."""
        from features.registry import entity_definition

        hs = self.decl["hs_code"].astype("str")
        parts = []
        for f in entity_definition(entity, self.inputs.attributes).fields:
            col = hs.str[: int(f[2])] if f in ("hs2", "hs4", "hs6") else self.decl[f]
            parts.append(col.astype("str").where(col.notna()))
        key = parts[0]
        for p in parts[1:]:
            key = key + "|" + p
        return key.to_numpy(dtype=object)

    def known_before(self, key: np.ndarray, values: list[np.ndarray]) -> list[np.ndarray]:
        """:func:`sums_known_before` over this world's rows."""
        return sums_known_before(key, self.inspected, self.inspected_ns, self.declared_ns, values)


def sums_known_before(
    key: np.ndarray,
    inspected: np.ndarray,
    inspected_ns: np.ndarray,
    declared_ns: np.ndarray,
    values: list[np.ndarray],
) -> list[np.ndarray]:
    """Per row: sums of ``values`` over the inspected rows of the same key whose result was
    known strictly before the row's declaration (the features' timing rule); NaN where the row
    has no key (``None``), 0 where nothing was known yet."""
    has = pd.notna(key)
    ev_rows = inspected & has
    events = pd.DataFrame(
        {"k": key[ev_rows], "t": inspected_ns[ev_rows]}
        | {f"v{i}": v[ev_rows] for i, v in enumerate(values)}
    ).sort_values("t", kind="stable")
    cols = [f"c{i}" for i in range(len(values))]
    for i, c in enumerate(cols):
        events[c] = events.groupby("k")[f"v{i}"].cumsum()
    # the last of tied result times carries the tie group's whole sum
    events = events.drop_duplicates(["k", "t"], keep="last")
    queries = pd.DataFrame(
        {"k": key[has], "t": declared_ns[has], "r": np.flatnonzero(has)}
    ).sort_values("t", kind="stable")
    merged = pd.merge_asof(
        queries,
        events[["k", "t", *cols]],
        on="t",
        by="k",
        allow_exact_matches=False,
        direction="backward",
    )
    out = []
    for c in cols:
        full = np.full(len(key), np.nan)
        full[merged["r"].to_numpy()] = merged[c].fillna(0.0).to_numpy()
        out.append(full)
    return out


def expectation(world: World, base: str) -> np.ndarray:
    """Each declaration's expected failure probability from ``base`` (see the module doc)."""
    from training.baselines import plain_lightgbm_scores
    from training.select import _fit_logloss

    w, y = world, world.nc
    if base == "parent":
        e = w.features["hs4_x_org_nc_rate_eb_all"].to_numpy(dtype=np.float64)
        return np.where(np.isfinite(e), e, np.nanmean(e))
    folds = np.random.default_rng(w.config.seed).permutation(len(y)) % OOF_FOLDS
    e = np.full(len(y), np.nan)
    if base == "plain":

        def fit_predict(fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
            p, _ = plain_lightgbm_scores(
                w.decl, w.inputs.attributes, y, fit_rows, w.valid, rows, w.config.seed
            )
            return p

    elif base == "model":
        X = w.features[w.names].to_numpy(dtype=np.float64, na_value=np.nan)

        def fit_predict(fit_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
            booster, _ = _fit_logloss(
                X[fit_rows], y[fit_rows], X[w.valid], y[w.valid], w.names, w.config
            )
            return np.asarray(
                booster.predict(X[rows], num_iteration=booster.best_iteration or None)
            )

    else:
        raise SystemExit(f"unknown expectation {base!r}: plain, parent or model")
    for k in range(OOF_FOLDS):
        held = w.train_period & (folds == k)
        e[held] = fit_predict(w.train & ~held, held)
    rest = ~w.train_period
    e[rest] = fit_predict(w.train, rest)
    return e


def observed_expected(world: World, expected: np.ndarray, a: float, tag: str) -> pd.DataFrame:
    """``<key>_oe_<tag>``: log((observed + a) / (expected + a)) per default key."""
    from features.registry import default_entities

    out = {}
    ones = np.ones(len(expected))
    for entity in default_entities(world.inputs.attributes):
        observed, exp, _ = world.known_before(world.key_values(entity), [world.nc, expected, ones])
        out[f"{entity}_oe_{tag}"] = np.log((observed + a) / (exp + a))
    return pd.DataFrame(out)


def lifts(world: World) -> pd.DataFrame:
    """``<key>_lift_<w>``: log of a key's smoothed rate over its prior (its parents' mean)."""
    from features.registry import default_entities, entity_definition

    f, out = world.features, {}
    for entity in default_entities(world.inputs.attributes):
        parents = entity_definition(entity, world.inputs.attributes).parents
        for win in ("365d", "all"):
            cols = [f"{q}_nc_rate_eb_{win}" for q in parents]
            own = f"{entity}_nc_rate_eb_{win}"
            if not parents or own not in f or any(c not in f for c in cols):
                continue
            prior = sum(f[c].to_numpy(dtype=np.float64) for c in cols) / len(cols)
            out[f"{entity}_lift_{win}"] = np.log(f[own].to_numpy(dtype=np.float64) / prior)
    return pd.DataFrame(out)


def fit_and_score(
    world: World, features: pd.DataFrame, names: list[str], seed: int
) -> dict[str, Any]:
    """Train with the default training code and score the test period against the oracle."""
    from training.evaluate import evaluate_scores
    from training.train import TEST, prepare, train_model

    cfg = world.config.model_copy(update={"seed": seed})
    data = prepare(features, world.inputs.labels, names, *world._split())
    t0 = time.perf_counter()
    fitted = train_model(data, cfg)
    test = data.segment == TEST
    p = fitted.probability(data.matrix(test))
    truth = load_truth(
        world.dir, world.layout, data.frame.loc[test, "declaration_id"].astype("str")
    )
    ev = evaluate_scores(
        p,
        data.labels[test].reset_index(drop=True),
        probabilities=True,
        budgets=(0.05, 0.10),
        truth=truth.reset_index(drop=True),
    )
    gain = dict(zip(names, fitted.booster.feature_importance("gain"), strict=True))
    total = sum(gain.values()) or 1.0
    return {
        "ratio_at_0.05": ev["budgets"]["0.05"]["truth"]["ratio"],
        "ratio_at_0.1": ev["budgets"]["0.1"]["truth"]["ratio"],
        "correction": fitted.correction,
        "trees": fitted.booster.num_trees(),
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "gain_share_new": {
            n: round(g / total, 4)
            for n, g in sorted(gain.items(), key=lambda kv: -kv[1])
            if n not in world.names
        },
    }


def variant_frame(world: World, variant: str, cache: dict) -> tuple[pd.DataFrame, list[str]]:
    """The feature frame and model columns of one variant."""
    from features.build import build_offline
    from features.registry import default_entities, feature_names

    if variant == "base":
        return world.features, world.names
    if variant.startswith("oe_"):
        _, base, a = variant.split("_")
        if base not in cache:
            cache[base] = expectation(world, base)
        extra = observed_expected(world, cache[base], float(a), base)
    elif variant == "lift":
        extra = lifts(world)
    elif variant.startswith("keys:"):
        keys = list(default_entities(world.inputs.attributes))
        for tok in variant[5:].split("/"):
            keys.append(tok[1:]) if tok[0] == "+" else keys.remove(tok[1:])
        frame = build_offline(
            world.inputs.tables,
            world.inputs.attributes,
            entities=keys,
            categories=world.inputs.categories,
        ).reset_index(drop=True)
        return frame, feature_names(world.inputs.attributes, keys)
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return pd.concat([world.features, extra], axis=1), [*world.names, *extra.columns]


def write_report(rows: list[dict[str, Any]], results: Path) -> None:
    """``key_effects.md``: per world and variant, the mean over seeds and the difference to
    ``base`` in the same run's seeds."""
    lines = [
        "### Observed against expected, and key sets: an offline ablation (issue 12)",
        "",
        "`benchmarks/bench_key_effects.py` on the cached 200k contract worlds: ratio to the "
        "oracle's expected precision at 5 % / 10 % of the test declarations, capacity fixed "
        "(31 leaves, 20 a leaf, feature fraction 0.5), default training code otherwise. "
        "Δ: the variant minus `base` on the same seeds. Not the feature family: offline only.",
        "",
        "| world | variant | seeds | ×@5% | Δ@5% | ×@10% | Δ@10% | trees | top new features "
        "(gain share) | when, commit, load |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["world"], r["variant"]), {})[r["seed"]] = r
    for (world, variant), seeds in sorted(
        by.items(), key=lambda kv: (kv[0][0], kv[0][1] != "base", kv[0][1])
    ):
        base = by.get((world, "base"), {})
        common = sorted(s for s in seeds if s in base)
        mean = {
            b: float(np.mean([seeds[s][f"ratio_at_{b}"] for s in seeds])) for b in ("0.05", "0.1")
        }
        delta = {
            b: (
                float(
                    np.mean([seeds[s][f"ratio_at_{b}"] - base[s][f"ratio_at_{b}"] for s in common])
                )
                if common and variant != "base"
                else None
            )
            for b in ("0.05", "0.1")
        }
        d5, d10 = (("" if delta[b] is None else f"{delta[b]:+.3f}") for b in ("0.05", "0.1"))
        last = seeds[max(seeds)]
        top = ", ".join(f"`{n}` {g:.3f}" for n, g in list(last["gain_share_new"].items())[:3])
        lines.append(
            f"| {world} | `{variant}` | {','.join(map(str, sorted(seeds)))} | {mean['0.05']:.3f} | "
            f"{d5} | {mean['0.1']:.3f} | {d10} | "
            f"{np.mean([seeds[s]['trees'] for s in seeds]):.0f} | {top} | "
            f"{last['date'][:16]}, {last['commit']}, {last['loadavg'][0]} |"
        )
    (results / "key_effects.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", required=True, help="a cached world, e.g. declarant")
    ap.add_argument("--layout", default="contract")
    ap.add_argument("--variants", default="base,oe_model_2")
    ap.add_argument("--seeds", default="7")
    ap.add_argument("--work", type=Path, default=Path("/tmp/guomen-bench-worlds"))
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args()
    world = World(args.work, args.layout, args.world)
    store = args.results / "key_effects.json"
    rows = json.loads(store.read_text())["runs"] if store.exists() else []
    cache: dict[str, np.ndarray] = {}
    for variant in args.variants.split(","):
        frame, names = variant_frame(world, variant, cache)
        for seed in (int(s) for s in args.seeds.split(",")):
            r = fit_and_score(world, frame, names, seed)
            row = {
                "world": args.world,
                "layout": args.layout,
                "variant": variant,
                "seed": seed,
                **r,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": git_commit(ROOT) or "unknown",
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            }
            print(json.dumps({k: v for k, v in row.items() if k != "gain_share_new"}), flush=True)
            rows = [
                x
                for x in rows
                if (x["world"], x["layout"], x["variant"], x["seed"])
                != (args.world, args.layout, variant, seed)
            ]
            rows.append(row)
            store.write_text(json.dumps({"runs": rows}, indent=1, default=float) + "\n")
            write_report(rows, args.results)


if __name__ == "__main__":
    main()
