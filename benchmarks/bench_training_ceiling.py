"""How close to the oracle can any model get on the demo data? (issue 4's 0.9 x oracle target)

The demo generator's true nonconformity log-odds are a sum of named components (product,
HS4 x origin, enterprise, overseas party, undervaluation, credit, certificate, novelty,
e-commerce, outbreak, noise). The oracle ranks the test period by the true probability; a model
sees the enterprise's hidden quality only through its history. This benchmark ranks the test
declarations by predictors that know *more* than any model can, and reports each one's
expected nonconformities found at the 5 % budget against the oracle's (the same ratio
``training.evaluate`` reports for the model):

- ``all_but_noise``: every component known exactly except the declaration-level noise;
- ``bayes_enterprise_from_results``: every component known exactly except the noise and the
  enterprise effect, which is inferred by Bayes' rule from the enterprise's own inspection
  results known before the declaration (grid posterior, prior = the population of enterprise
  effects, noise integrated by the probit approximation). This is the best any predictor can do
  from inspection history when everything else is handed to it;
- ``no_enterprise_information``: every component but the noise, enterprise effect at its mean.

Unless ``--skip-feature-ceiling`` (they take a few minutes), it also fits LightGBM regressions
to the true log-odds (noise removed) of *every* train-period declaration, infinite noise-free
labels, on half of the enterprises, and ranks the test declarations of the other half (so no
enterprise's identity can be memorised from its own true risk):

- ``feature_ceiling``: the model's own features (``features.registry``) only: the most any
  model on these features can reach, however it is trained;
- ``feature_ceiling_plus_exact_components``: the same features plus every non-enterprise
  component exactly, so only the enterprise effect has to come from the features.

The Bayes predictor lives in ``benchmarks/ceilings.py``, which generalises it to every generator
world (``bench_worlds.py``).

Reads the store's declarations and inspections and the demo ground truth (which no pipeline
reads). Writes ``benchmarks/results/training_ceiling.json`` and ``.md``.

Usage: ``.venv/bin/python benchmarks/bench_training_ceiling.py --store STORE --truth DIR``
(``DIR`` = the demo folder's ``ground_truth``; ``bench_training.py --work W`` leaves both in
``W/store`` and ``W/src/ground_truth``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from ceilings import _sigmoid, bayes_enterprise_probability, ratio_at  # benchmarks/ceilings.py

RESULTS = Path(__file__).resolve().parent / "results"


def feature_ceiling(
    store: Path, target: np.ndarray, offset: np.ndarray, train: np.ndarray, seed: int
) -> dict[str, np.ndarray]:
    """LightGBM regressions on the true log-odds: features alone, and features plus ``offset``.

    ``train`` marks the rows to fit on; the predictions cover every row.
    """
    import lightgbm as lgb

    from features.build import build_offline
    from features.registry import feature_names
    from features.store import Store

    st = Store(store)
    frame = build_offline(st.tables(), st.attributes)
    X = frame[feature_names(st.attributes)].to_numpy(dtype=np.float64)
    params = {
        "objective": "regression",
        "learning_rate": 0.1,
        "num_leaves": 63,
        "min_data_in_leaf": 200,
        "num_threads": os.cpu_count() or 1,
        "seed": seed,
        "verbose": -1,
    }
    out = {}
    for name, M in (("feature_ceiling", X), ("feature_ceiling_plus_exact_components",
                                               np.column_stack([X, offset]))):  # fmt: skip
        booster = lgb.train(params, lgb.Dataset(M[train], target[train]), num_boost_round=400)
        out[name] = np.asarray(booster.predict(M))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, default=Path("/tmp/guomen-bench-training/store"))
    ap.add_argument(
        "--truth", type=Path, default=Path("/tmp/guomen-bench-training/src/ground_truth")
    )
    ap.add_argument("--budget", type=float, default=0.05)
    ap.add_argument(
        "--skip-feature-ceiling", action="store_true", help="skip the feature ceilings (slow)"
    )
    args = ap.parse_args()

    from demo.generate import NOISE_SD
    from features.build import build_labels
    from features.store import Store
    from training.config import load_config
    from training.split import TEST, time_split

    tables = Store(args.store).tables()
    decl = tables["declarations"].reset_index(drop=True)
    labels = build_labels(tables)
    truth = pd.read_parquet(args.truth / "declaration_truth.parquet")
    truth["declaration_id"] = truth["declaration_id"].astype("str")
    truth = truth.set_index("declaration_id").loc[decl["declaration_id"].astype("str")]
    cfg = load_config()
    split = time_split(decl["declared_at"], cfg.split.test_months, cfg.split.validation_months)
    test = np.flatnonzero(split.segment(decl["declared_at"]) == TEST)

    p = truth["p_true"].to_numpy()
    c = truth["critical_p_true"].to_numpy()
    ent_effect = truth["logit_enterprise"].to_numpy()
    offset = (truth["logit"] - truth["logit_enterprise"] - truth["logit_noise"]).to_numpy()
    ent = pd.factorize(decl["enterprise_id"])[0].astype(np.int64)
    per_ent = pd.Series(ent_effect).groupby(ent).first()
    bayes = bayes_enterprise_probability(
        offset,
        ent,
        decl["declared_at"].astype("int64").to_numpy(),
        labels["inspected"].to_numpy(),
        np.nan_to_num(labels["nonconforming"].to_numpy()),
        labels["inspected_at"].astype("int64").to_numpy(),
        float(per_ent.mean()),
        float(per_ent.std()),
        NOISE_SD,
        test,
    )
    P, C = p[test], c[test]
    cond_crit = C / P  # P(critical | nonconforming), known to every predictor here
    predictors = {
        "oracle_p": P,
        "all_but_noise": _sigmoid(offset[test] + ent_effect[test]),
        "bayes_enterprise_from_results": bayes,
        "bayes_enterprise_from_results_critical_weighted": bayes * cond_crit,
        "no_enterprise_information": _sigmoid(offset[test] + float(per_ent.mean())),
    }
    rows = {k: ratio_at(v, P, C, args.budget) for k, v in predictors.items()}
    if not args.skip_feature_ceiling:
        # enterprises split in halves by a hash of their id: fit on one, rank the other's tests
        half = (pd.util.hash_pandas_object(decl["enterprise_id"].astype("str"), index=False)
                .to_numpy() % 2 == 0)  # fmt: skip
        segment = split.segment(decl["declared_at"])
        truth_logit = (truth["logit"] - truth["logit_noise"]).to_numpy()
        fitted = feature_ceiling(
            args.store, truth_logit, offset, (segment == "train") & half, cfg.seed
        )
        other = test[~half[test]]
        Po, Co = p[other], c[other]
        rows["bayes_enterprise_from_results (other half)"] = ratio_at(
            bayes[~half[test]], Po, Co, args.budget
        )
        for name, score in fitted.items():
            rows[f"{name} (other half)"] = ratio_at(score[other], Po, Co, args.budget)
    model_json = RESULTS / "training.json"
    model = None
    if model_json.exists():
        t = json.loads(model_json.read_text(encoding="utf-8"))["targets"]
        model = {
            "ratio": t["precision_at_5_vs_oracle"],
            "critical_ratio": t["critical_recall_at_5_vs_critical_oracle"],
        }
    out = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version()},
        "declarations": len(decl),
        "test_declarations": len(test),
        "budget": args.budget,
        "noise_sd": NOISE_SD,
        "enterprise_effect_sd": float(per_ent.std()),
        "predictors": rows,
        "model_from_training_json": model,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training_ceiling.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Oracle ceiling on demo data ({out['date']})",
        "",
        f"{len(decl):,} declarations, test period {len(test):,}; budget {args.budget:.0%}. "
        "Ratio = expected nonconformities found / the oracle's (critical: / the critical "
        "oracle's). The rows above the model know more than any model can; the "
        "`(other half)` rows are on the test declarations of half of the enterprises, ranked by "
        "regressions fitted to the true log-odds of the other half's train-period declarations "
        "(see the script's docstring).",
        "",
        "| predictor | precision vs oracle | critical recall vs critical oracle |",
        "|---|---|---|",
    ]
    for k, v in rows.items():
        lines.append(f"| {k} | {v['ratio']:.3f} | {v['critical_ratio']:.3f} |")
    if model:
        lines.append(
            f"| **model** (training.json) | {model['ratio']:.3f} | {model['critical_ratio']:.3f} |"
        )
    (RESULTS / "training_ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
