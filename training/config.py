"""Training configuration: one typed object, loaded from YAML over the shipped defaults.

The defaults live in ``training/default_config.yaml``; a user file only needs the keys it
changes (nested mappings are merged key by key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_CONFIG_FILE = Path(__file__).with_name("default_config.yaml")

Correction = Literal["none", "random_upweight", "ipw"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Time split: test is the last ``test_months``, validation the ``validation_months`` before."""

    test_months: int = Field(default=4, ge=1)
    validation_months: int = Field(default=3, ge=1)


class LightGBMConfig(_Strict):
    """Booster hyperparameters. Trees x leaves bounds the per-request SHAP cost."""

    num_leaves: int = Field(default=31, ge=2)
    max_depth: int = -1
    learning_rate: float = Field(default=0.05, gt=0)
    num_boost_round: int = Field(default=300, ge=1)
    early_stopping_rounds: int = Field(default=30, ge=1)
    min_data_in_leaf: int = Field(default=100, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)
    lambda_l2: float = Field(default=1.0, ge=0)
    max_bin: int = Field(default=255, ge=2)
    num_threads: int = Field(default=1, ge=1)
    # Native categorical splits (code maps of HS2/HS4/origin/port/attributes, hundreds of levels)
    # overfit a few thousand positives: at most this many levels on one side of a split, and
    # each level's statistics smoothed towards the parent's.
    max_cat_threshold: int = Field(default=4, ge=1)
    cat_smooth: float = Field(default=50.0, ge=0)
    min_data_per_group: int = Field(default=200, ge=1)

    def params(self, seed: int) -> dict[str, Any]:
        """LightGBM parameters, deterministic for ``seed``."""
        return {
            "objective": "binary",
            "metric": ["binary_logloss", "auc"],
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "max_cat_threshold": self.max_cat_threshold,
            "cat_smooth": self.cat_smooth,
            "min_data_per_group": self.min_data_per_group,
            "num_threads": self.num_threads,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }


class SelectionConfig(_Strict):
    """Selection-bias corrections tried in training; the one kept is chosen on validation."""

    candidates: tuple[Correction, ...] = ("none", "random_upweight", "ipw")
    random_weight: float = Field(default=5.0, gt=0, description="weight of random-sample rows")
    ipw_clip: float = Field(default=20.0, gt=1, description="largest inverse-propensity weight")
    # A correction replaces "none" only when its calibrated per-row log loss over all labelled
    # validation rows is lower by more than this many standard errors of the paired difference
    # (and not higher on the validation random sample, a few hundred rows).
    replace_none_z: float = Field(default=2.0, ge=0)

    @field_validator("candidates")
    @classmethod
    def _has_none(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "none" not in value:
            raise ValueError("selection.candidates must include 'none' (the reference)")
        return value


class SeverityWeightConfig(_Strict):
    """Training weights of nonconforming rows by severity (other rows weigh 1).

    Critical nonconformities are rare (~6% of positives) but matter most; weighting them up
    shifts the ranking towards them. Platt calibration on unweighted validation labels restores
    the probabilities.
    """

    critical: float = Field(default=1.0, gt=0)
    major: float = Field(default=1.0, gt=0)


class FeatureSelectionConfig(_Strict):
    """Which history keys the model carries, chosen on the validation period (``training.select``).

    Every key column, every pair and the listed ``triples`` are screened; the ranking by gain is
    cut at the prefix with the best validation log loss, within ``max_entities`` (parents
    needed for smoothing included: online latency grows with the number of keys).
    """

    select: bool = True
    max_entities: int = Field(default=12, ge=1)
    triples: tuple[tuple[str, ...], ...] = ()
    # Prefix lengths of the gain ranking tried on validation (cut at max_entities).
    prefixes: tuple[int, ...] = (4, 8, 12)
    # A longer prefix must lower validation log loss by more than this share to be preferred.
    min_gain: float = Field(default=0.001, ge=0)
    # A prefix replaces today's default set only when its validation log loss is lower by more
    # than this many standard errors of the paired per-row difference (validation has a few
    # thousand labelled rows: smaller differences are noise).
    replace_default_z: float = Field(default=2.0, ge=0)
    # After the prefix (or default set) is chosen, this many of the best-ranked keys outside it
    # are tried one at a time in place of its lowest-gain key; a swap stays only when the
    # validation log loss falls by more than replace_default_z standard errors (paired).
    swaps: int = Field(default=4, ge=0)
    # Candidate keys built per screening pass, at least (bounds the memory of the screening frame).
    chunk: int = Field(default=16, ge=1)
    # A pass takes more keys while its screening columns stay within this many float64 cells
    # (every pass rebuilds the declaration's own columns and the candidates' default-set
    # parents, so fewer passes are cheaper: 48 contract pairs at 200k rows in one pass).
    screen_cells: int = Field(default=60_000_000, ge=1)
    # Candidates (besides the default set) whose own smoothed rate ranks validation best and
    # go on to the ranking model.
    screen_top: int = Field(default=24, ge=1)
    # Labelled train rows the screening and prefix fits use at most (a seeded sample).
    max_rows: int = Field(default=60_000, ge=1000)


class CapacityConfig(_Strict):
    """The validation grid over model capacity (``training.train.capacity_grid``).

    ``min_leaf_shares`` scale ``min_data_in_leaf`` to the labelled train rows; the number of
    trees comes from early stopping, capped so that trees x leaves x depth^2 (the exact TreeSHAP
    cost per row) stays within ``shap_cost_budget``.
    """

    grid: bool = True
    leaves: tuple[int, ...] = (15, 31, 63)
    min_leaf_shares: tuple[float, ...] = (0.0005, 0.002)
    min_leaf_floor: int = Field(default=20, ge=1)
    feature_fractions: tuple[float, ...] = (0.5, 0.8)
    shap_cost_budget: int = Field(default=300 * 31 * 64, ge=1000)
    # The configured lightgbm.* point stays unless the grid's best lowers the validation log
    # loss by more than this many standard errors of the paired per-row difference.
    replace_default_z: float = Field(default=2.0, ge=0)


class PolicyConfig(_Strict):
    """Inspection budget and random monitoring share (fractions of all declarations)."""

    budget: float = Field(default=0.05, gt=0, lt=1)
    monitoring_share: float = Field(default=0.01, ge=0, lt=1)


class EvaluationConfig(_Strict):
    """Budgets reported, ECE bins, SHAP sample size."""

    budgets: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.20)
    ece_bins: int = Field(default=10, ge=2)
    shap_sample: int = Field(default=2000, ge=10)


class GateConfig(_Strict):
    """Promotion tolerances (absolute): the challenger may be worse by at most this much.

    ``subset`` is where the gate measures: ``all_inspected`` (default: enough labels to be
    stable; both models face the same selection bias on the same period) or ``random_sample``
    (unbiased but noisy: a few dozen positives at a 5% budget).
    """

    subset: Literal["all_inspected", "random_sample"] = "all_inspected"

    precision_tolerance: float = Field(default=0.01, ge=0)
    critical_recall_tolerance: float = Field(default=0.02, ge=0)
    ece_tolerance: float = Field(default=0.005, ge=0)


class TrainConfig(_Strict):
    """Everything ``guomen train`` needs besides paths."""

    seed: int = 7
    split: SplitConfig = SplitConfig()
    lightgbm: LightGBMConfig = LightGBMConfig()
    selection: SelectionConfig = SelectionConfig()
    severity_weights: SeverityWeightConfig = SeverityWeightConfig()
    features: FeatureSelectionConfig = FeatureSelectionConfig()
    capacity: CapacityConfig = CapacityConfig()
    policy: PolicyConfig = PolicyConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    gate: GateConfig = GateConfig()

    def flat(self) -> dict[str, Any]:
        """Flat ``section.key -> value`` mapping (for MLflow params)."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                out[prefix] = value

        walk("", self.model_dump())
        return out


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read the defaults, then ``path`` (YAML) and ``overrides`` over them.

    Parameters
    ----------
    path
        Optional YAML file with only the keys to change.
    overrides
        Optional nested mapping applied last (tests and benchmarks use it).

    Returns
    -------
    TrainConfig
        Validated configuration; unknown keys are an error.
    """
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text(encoding="utf-8")) or {}
    if path is not None:
        user = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(user, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        data = _merge(data, user)
    if overrides:
        data = _merge(data, overrides)
    return TrainConfig.model_validate(data)
