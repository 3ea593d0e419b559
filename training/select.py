"""Which history keys the model carries, chosen by the data on the validation period.

Risk lives at whatever grain an office's trade has it, so the keys are not hand-picked:

1. **Candidates**: every key column of ``features.registry.KEY_COLUMNS`` (and each categorical
   attribute of the mapping), every pair of them (one HS level at most) and the configured
   triples, besides today's default set.
2. **Screening**: the candidates' strongest features (``screening=True``: recent declarations,
   results known, smoothed rates, days since the last nonconformity) are built point in time in
   chunks (bounded memory), for the labelled train and validation rows only. A key's smoothed
   rate is itself a prediction at its grain: the ``features.screen_top`` candidates whose rate
   ranks the validation rows best (AUC) go on, with the default set, to one LightGBM fitted on
   the train rows (early stopping on validation), which ranks the keys by the total gain of
   their features (so a key redundant with a better one ranks low).
3. **Forward selection on validation**: nested prefixes of that ranking (smoothing parents
   added, at most ``features.max_entities`` keys) are each fitted on train and scored by the
   validation log loss; the shortest prefix within ``min_gain`` of the best is kept. Today's
   default set (when within the budget) stays unless that prefix's validation log loss is lower
   by more than ``replace_default_z`` standard errors of the paired per-row difference: with a
   few thousand labelled validation rows, smaller differences are noise.

The result lists every key with its gain share, rank and why it was kept or dropped; training
writes it to the report, and the bundle carries the kept keys so serving builds exactly those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.progress import Progress
from features.registry import (
    candidate_entities,
    default_entities,
    feature_specs,
    resolve_entities,
)
from training.config import TrainConfig
from training.evaluate import paired_z, row_logloss, significantly_lower
from training.train import TRAIN, VALIDATION, TrainingData, categorical_names

# Screening columns of one candidate key (features.registry's screening family; an upper bound).
SCREEN_COLUMNS_PER_KEY = 6
# Folds of the default set's out-of-fold probabilities that the score statistic is taken against.
SCORE_FOLDS = 3


@dataclass
class EntitySelection:
    """The chosen history keys and how they were chosen."""

    entities: list[str]
    table: list[dict[str, Any]] = field(default_factory=list)  # one row per candidate key
    prefixes: list[dict[str, Any]] = field(default_factory=list)  # validation log loss per k
    baseline_logloss: float = float("nan")  # the default set, same screening model
    swaps: list[dict[str, Any]] = field(default_factory=list)  # keys tried in place of others

    def as_dict(self) -> dict[str, Any]:
        return {
            "entities": self.entities,
            "keys": self.table,
            "prefixes": self.prefixes,
            "default_set_logloss": self.baseline_logloss,
            "swaps": self.swaps,
        }


def _entity_of(
    attributes: dict[str, str] | None, entities: list[str], screening: bool
) -> dict[str, str]:
    """History feature -> its key (the declaration's own columns, credit and unit-value
    features belong to no key: every set has them)."""
    kept = set(resolve_entities(entities, attributes))
    return {
        s.name: s.entity
        for s in feature_specs(attributes, entities, screening)
        if s.entity in kept and s.window not in ("now", "at", "static", "month")
    }


def _screen_params(config: TrainConfig) -> dict[str, Any]:
    """A cheaper LightGBM for ranking and comparing key sets (hundreds of columns)."""
    return config.lightgbm.params(config.seed) | {
        "metric": "binary_logloss",
        "num_leaves": 15,
        "learning_rate": 0.1,
        "feature_fraction": 0.5,
        "bagging_fraction": 0.7,
        "max_bin": 63,
    }


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """AUC of ``score`` (NaN scored as the mean: an unknown key tells nothing)."""
    from sklearn.metrics import roc_auc_score

    s = np.where(np.isfinite(score), score, np.nanmean(score) if np.isfinite(score).any() else 0)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def swap_in(
    incumbent: list[str],
    new: str,
    gain: dict[str, float],
    attributes: dict[str, str] | None,
    budget: int,
) -> list[str] | None:
    """``incumbent`` with ``new`` added and, while the resolved set (parents included) exceeds
    ``budget``, the incumbent's key of lowest ``gain`` removed among those whose removal
    shrinks it (a parent another key still needs is not removable). None when no such set
    fits."""
    trial = [*incumbent, new]
    while len(resolve_entities(trial, attributes)) > budget:
        size = len(resolve_entities(trial, attributes))
        removable = [
            e
            for e in trial
            if e != new and len(resolve_entities([k for k in trial if k != e], attributes)) < size
        ]
        if not removable:
            return None
        trial.remove(min(removable, key=lambda e: (gain.get(e, 0.0), e)))
    return trial


def _logit(rate: np.ndarray) -> np.ndarray:
    r = np.clip(rate, 1e-4, 1 - 1e-4)
    return np.log(r / (1 - r))


def score_z(y: np.ndarray, p: np.ndarray, x: np.ndarray) -> float:
    """Score (Lagrange multiplier) statistic for adding ``x`` linearly to a logistic model whose
    probabilities on these rows are ``p``: ``sum((y - p) * xc) / sqrt(sum(p (1 - p) xc^2))``
    with ``xc`` centred in the model's weights; a missing ``x`` takes that mean (no
    information). About N(0, 1) when ``x`` adds nothing; NaN when ``x`` is constant."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    x = np.asarray(x, dtype=np.float64)
    v = p * (1 - p)
    ok = np.isfinite(x)
    if ok.sum() < 2:
        return float("nan")
    filled = np.where(ok, x, np.average(x[ok], weights=v[ok]))
    xc = filled - np.average(filled, weights=v)
    den = float(np.sqrt(np.sum(v * xc * xc)))
    if den <= 1e-12:
        return float("nan")
    return float(np.sum((y - p) * xc) / den)


def _fit_logloss(
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    X_va: np.ndarray,
    y_va: np.ndarray,
    names: list[str],
    config: TrainConfig,
) -> tuple[lgb.Booster, float]:
    params = _screen_params(config)
    cats = [n for n in names if n in categorical_names(names)]
    dtrain = lgb.Dataset(X_tr, label=y_tr, feature_name=names, categorical_feature=cats or "auto")
    dvalid = lgb.Dataset(X_va, label=y_va, reference=dtrain)
    evals: dict[str, Any] = {}
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=150,
        valid_sets=[dvalid],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(config.lightgbm.early_stopping_rounds, verbose=False),
            lgb.record_evaluation(evals),
        ],
    )
    return booster, float(min(evals["validation"]["binary_logloss"]))


def out_of_fold_probability(
    X_tr: np.ndarray,
    y_tr: np.ndarray,
    X_va: np.ndarray,
    y_va: np.ndarray,
    names: list[str],
    config: TrainConfig,
    folds: int,
) -> np.ndarray:
    """Probabilities of the train rows, each from a model fitted on the other folds (early
    stopping on validation). In-sample residuals shrink wherever the model already fits its
    train rows (an enterprise's own history), so a score against them favours keys that repeat
    what the model overfits; out-of-fold residuals are what a new key can really explain."""
    fold = np.random.default_rng(config.seed).permutation(len(y_tr)) % folds
    p = np.empty(len(y_tr), dtype=np.float64)
    for k in range(folds):
        held = fold == k
        booster, _ = _fit_logloss(X_tr[~held], y_tr[~held], X_va, y_va, names, config)
        p[held] = booster.predict(X_tr[held], num_iteration=booster.best_iteration or None)
    return p


def select_entities(
    data: TrainingData,
    tables: dict[str, pd.DataFrame],
    attributes: dict[str, str] | None,
    categories: dict[str, list[str]],
    config: TrainConfig,
    progress: Progress | None = None,
) -> EntitySelection:
    """Screen every candidate key and keep a prefix of the gain ranking chosen on validation.

    Parameters
    ----------
    data
        ``training.train.prepare`` output on the default feature set (split, labels, rows).
    tables, attributes, categories
        What the candidate features are built from (the same code maps as the model's).
    config
        ``features.*`` and ``lightgbm.*`` are used.
    """
    from features.build import build_offline

    fc = config.features
    defaults = list(default_entities(attributes))
    pool = [
        e
        for e in candidate_entities(attributes, tuple(tuple(t) for t in fc.triples))
        if e not in defaults
    ]
    tr, va = data.rows(TRAIN), data.rows(VALIDATION)
    if tr.sum() > fc.max_rows:  # a seeded sample of the train rows bounds the screening cost
        keep = np.random.default_rng(config.seed).choice(
            np.flatnonzero(tr), fc.max_rows, replace=False
        )
        tr = np.zeros_like(tr)
        tr[keep] = True
    need = tr | va
    ids = data.frame.loc[need, "declaration_id"].astype("str").to_numpy()
    y = data.labels["y"].to_numpy()[need]
    is_tr = tr[need]
    # Features of the default set (full family) and the declaration's own columns.
    default_owner = _entity_of(attributes, defaults, False)
    always = [n for n in data.feature_names if n not in default_owner]
    columns: dict[str, np.ndarray] = {
        n: data.frame.loc[need, n].to_numpy(dtype=np.float64) for n in data.feature_names
    }
    owner = dict(default_owner)
    n_rows = len(tables["declarations"])
    per_pass = max(fc.chunk, fc.screen_cells // max(1, n_rows * SCREEN_COLUMNS_PER_KEY))
    for start in range(0, len(pool), per_pass):
        chunk = pool[start : start + per_pass]
        if progress:
            progress(f"screen keys {start + 1}-{start + len(chunk)} of {len(pool)}")
        frame = build_offline(
            tables, attributes, entities=chunk, categories=categories, screening=True
        )
        pos = pd.Index(frame["declaration_id"].astype("str")).get_indexer(ids)
        chunk_owner = _entity_of(attributes, chunk, True)
        for name, ent in chunk_owner.items():
            if ent in defaults or name in columns:
                continue
            columns[name] = frame[name].to_numpy(dtype=np.float64)[pos]
            owner[name] = ent
        del frame
    # Prefilter: what a candidate adds to the default set. The default set's models (fitted on
    # train, out of fold) leave residuals on the train rows; the score statistic of a
    # candidate's smoothed rate (logit) against them says how much a model would gain by
    # adding it. A key's own rate alone would rank the enterprise's crosses first (they repeat
    # the enterprise's history) and miss a fine grain whose cells are seen rarely (product
    # line x origin).
    # Validation stays for the decisions below. The own rate's validation AUC is reported too.
    va_rows = ~is_tr
    base_cols = [n for n in data.feature_names if n in columns]
    Xb = np.column_stack([columns[n] for n in base_cols])
    if progress:
        progress("score candidates against the default set")
    p_base = out_of_fold_probability(
        Xb[is_tr], y[is_tr], Xb[va_rows], y[va_rows], base_cols, config, SCORE_FOLDS
    )
    del Xb
    rate_windows = ("365d", "all")
    univariate = {
        e: max(
            _auc(columns[f"{e}_nc_rate_eb_{w}"][va_rows], y[va_rows])
            for w in rate_windows
            if f"{e}_nc_rate_eb_{w}" in columns
        )
        for e in pool
    }
    added_value = {
        e: max(
            abs(
                np.nan_to_num(
                    score_z(y[is_tr], p_base, _logit(columns[f"{e}_nc_rate_eb_{w}"][is_tr])),
                    nan=0.0,
                )
            )
            for w in rate_windows
            if f"{e}_nc_rate_eb_{w}" in columns
        )
        for e in pool
    }
    screened = sorted(pool, key=lambda e: (-added_value[e], e))[: fc.screen_top]
    kept_pool = set(screened) | set(defaults)
    for name in [n for n, e in owner.items() if e not in kept_pool]:
        del owner[name], columns[name]
    names = [*always, *[n for n in columns if n in owner]]
    X = np.column_stack([columns[n] for n in names])
    if progress:
        progress("rank keys")
    screen, _ = _fit_logloss(X[is_tr], y[is_tr], X[~is_tr], y[~is_tr], names, config)
    gain = screen.feature_importance(importance_type="gain")
    by_entity: dict[str, float] = {}
    for n, g in zip(names, gain, strict=True):
        if n in owner:
            by_entity[owner[n]] = by_entity.get(owner[n], 0.0) + float(g)
    total = sum(by_entity.values()) or 1.0
    ranking = sorted(by_entity, key=lambda e: (-by_entity[e], e))

    def features_of(entities: list[str]) -> list[str]:
        kept = set(resolve_entities(entities, attributes))
        return [*always, *[n for n in names if n in owner and owner[n] in kept]]

    row_losses: dict[tuple[str, ...], np.ndarray] = {}

    def fit(entities: list[str]) -> float:
        cols = features_of(entities)
        idx = [names.index(c) for c in cols]
        Xs = X[:, idx]
        booster, loss = _fit_logloss(Xs[is_tr], y[is_tr], Xs[~is_tr], y[~is_tr], cols, config)
        p_va = np.asarray(booster.predict(Xs[~is_tr], num_iteration=booster.best_iteration or None))
        row_losses[tuple(entities)] = row_logloss(p_va, y[~is_tr])
        return loss

    # Nested prefixes of the ranking within the key budget (parents count).
    prefixes: list[dict[str, Any]] = []
    chosen_prefix: list[str] = []
    for k in sorted({min(k, len(ranking)) for k in fc.prefixes}):
        prefix: list[str] = []
        for e in ranking:
            if len(prefix) >= k:
                break
            if len(resolve_entities([*prefix, e], attributes)) <= fc.max_entities:
                prefix.append(e)
        if prefix == chosen_prefix or (prefixes and prefix == prefixes[-1]["entities"]):
            continue
        if progress:
            progress(f"validate top {len(prefix)} keys")
        prefixes.append({"k": len(prefix), "entities": prefix, "logloss": fit(prefix)})
        chosen_prefix = prefix
    if progress:
        progress("validate the default keys")
    default_logloss = fit(defaults)
    best = min(p["logloss"] for p in prefixes)
    pick = next(p for p in prefixes if p["logloss"] <= best * (1 + fc.min_gain))
    # Today's default set is a candidate too (within the budget): a ranking prefix replaces it
    # only when it does better on validation.
    # It stays unless the prefix is better by more than validation noise (a paired test).
    defaults_fit = len(resolve_entities(defaults, attributes)) <= fc.max_entities
    replaces_default = significantly_lower(
        row_losses[tuple(pick["entities"])], row_losses[tuple(defaults)], fc.replace_default_z
    )
    if defaults_fit and not replaces_default:
        pick = {"k": len(defaults), "entities": defaults, "logloss": default_logloss}
    # Swaps: the best-ranked keys outside the incumbent are tried one at a time, each in place
    # of the incumbent's lowest-gain key (within the budget); a swap stays only when it lowers
    # the validation log loss beyond noise (the same paired test against the incumbent).
    swaps: list[dict[str, Any]] = []
    incumbent = list(pick["entities"])
    incumbent_before_swaps = list(incumbent)
    # in the order of what they add to the default set (the score on train rows)
    outside = [e for e in ranking if e not in resolve_entities(incumbent, attributes)]
    outside.sort(key=lambda e: (-added_value.get(e, 0.0), ranking.index(e)))
    for e in outside[: fc.swaps]:
        trial = swap_in(incumbent, e, by_entity, attributes, fc.max_entities)
        if trial is None:
            continue
        if progress:
            progress(f"validate a swap: {e}")
        loss = fit(trial)
        z = paired_z(row_losses[tuple(trial)], row_losses[tuple(incumbent)])
        accepted = bool(z > fc.replace_default_z)
        dropped = [d for d in incumbent if d not in trial]
        swaps.append(
            {"added": e, "dropped": dropped, "logloss": loss, "paired_z": z, "kept": accepted}
        )
        if accepted:
            incumbent = trial
            pick = {"k": len(trial), "entities": trial, "logloss": loss}
    chosen = list(resolve_entities(pick["entities"], attributes))
    base = list(incumbent_before_swaps)
    base_is_default = base == defaults
    table = []
    for rank, e in enumerate(ranking, 1):
        kept = e in chosen
        swapped = next((w for w in swaps if w["kept"] and w["added"] == e), None)
        swapped_out = next((w for w in swaps if w["kept"] and e in w["dropped"]), None)
        if swapped is not None and kept:
            why = (
                f"rank {rank}; swapped in for {', '.join(swapped['dropped']) or 'nothing'}: "
                f"validation log loss lower by {swapped['paired_z']:.1f} standard errors"
            )
        elif swapped_out is not None and not kept:
            why = f"rank {rank}; swapped out for {swapped_out['added']} (lowest gain)"
        elif base_is_default and kept and e in base:
            why = (
                f"rank {rank}; the default set stays: no prefix had a validation log loss lower "
                f"by more than {fc.replace_default_z:g} standard errors"
            )
        elif kept and e in base:
            why = f"rank {rank} in the gain ranking, inside the top {len(base)} kept on validation"
        elif kept:
            why = "parent of a kept cross (its smoothed rate is the prior)"
        elif any(w["added"] == e for w in swaps):
            why = f"rank {rank}: tried as a swap, not better beyond validation noise"
        else:
            why = f"rank {rank}: outside the {len(base)} keys kept on validation"
        table.append(
            {
                "entity": e,
                "rank": rank,
                "gain_share": by_entity[e] / total,
                "validation_auc_own_rate": univariate.get(e),
                "added_value_z": added_value.get(e),
                "default_set": e in defaults,
                "kept": kept,
                "why": why,
            }
        )
    for e in pool:
        if e not in kept_pool:
            table.append(
                {
                    "entity": e,
                    "rank": None,
                    "gain_share": 0.0,
                    "validation_auc_own_rate": univariate[e],
                    "added_value_z": added_value[e],
                    "default_set": False,
                    "kept": e in chosen,
                    "why": (
                        f"adds {added_value[e]:.1f} (score z of its smoothed rate on the default "
                        f"set's out-of-fold train residuals): outside the best "
                        f"{fc.screen_top} screened"
                    ),
                }
            )
    for e in chosen:
        if e not in by_entity and e in kept_pool:
            table.append(
                {
                    "entity": e,
                    "rank": None,
                    "gain_share": 0.0,
                    "default_set": e in defaults,
                    "kept": True,
                    "why": "parent of a kept cross (its smoothed rate is the prior)",
                }
            )
    return EntitySelection(chosen, table, prefixes, default_logloss, swaps)
