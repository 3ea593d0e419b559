"""Graded risk warnings: subjects, assessment, levels Ⅰ–Ⅳ, publication, measures, lifecycle.

A warning is about a *subject* (an enterprise, an overseas party, an HS4 product, an origin
country, or HS4 x origin). Its *assessment* combines recent inspection results, risk signals of
every channel and, when given, the model's scores of the subject's declarations:

- likelihood: the recent nonconformity rate against the rate *expected* for the inspections
  in the window (indirect standardisation: each inspection's stratum, selection x credit
  rating, at its baseline-period rate, times the subject's own standardised ratio), through the
  lower credible bound of a Beta posterior centred on that expected rate (three bad out of
  three is weak evidence, not a red warning);
- severity: the share of critical and major results, weighted by the hazard type;
- scope: volume, ports and enterprises affected;
- urgency: the trend inside the window.

A configurable matrix (``policy/warning_config.yaml``) maps severity x likelihood to a level,
then scope and urgency adjust it by a step. Each level has a publication type (通报/通告/公告)
and a toolbox of measures; tightened inspection is exposed to the scoring API as
:class:`InspectionMeasure` objects. The lifecycle is a small state machine
(:func:`next_state`); persistence lives in ``serving/warnings_store.py``.

Nothing here reads settings or the environment; all inputs are explicit.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.special import betaincinv, pdtrc

from features.contract import DEFAULT_CREDIT_RATING
from features.credit import rating_in_force
from policy.monitoring import monitoring_draw

SUBJECT_KINDS: tuple[str, ...] = ("enterprise", "overseas_party", "hs4", "origin", "hs4_origin")
SUBJECT_LABELS_ZH = {
    "enterprise": "企业",
    "overseas_party": "境外企业",
    "hs4": "商品(HS4)",
    "origin": "原产国",
    "hs4_origin": "商品×原产国",
}
# level -> (numeral, Chinese name, colour)
LEVELS: dict[int, tuple[str, str, str]] = {
    1: ("Ⅰ", "特别严重", "red"),
    2: ("Ⅱ", "严重", "orange"),
    3: ("Ⅲ", "较重", "yellow"),
    4: ("Ⅳ", "一般", "blue"),
}
PUBLICATION_PURPOSES = {
    "通报": "to ports, for targeting (内部通报)",
    "通告": "to producers and traders, for risk reduction",
    "公告": "public: compulsory measures and consumer warnings",
}
MEASURE_TYPES: dict[str, str] = {
    "tightened_inspection": "加严检验 tightened inspection",
    "restriction": "限制进出口 restriction of import/export",
    "suspension": "暂停进出口 suspension of import/export",
    "traceability": "追溯调查 traceability investigation",
    "recall": "召回 recall",
    "lower_credit": "降低信用等级 lowering of credit",
    "return_destroy": "退运或销毁 return or destruction",
}
STATUSES: tuple[str, ...] = ("proposed", "approved", "rejected", "active", "lifted")
OPEN_STATUSES: tuple[str, ...] = ("proposed", "approved", "active")
ACTIONS: tuple[str, ...] = ("approve", "reject", "activate", "escalate", "de-escalate", "lift")
_CRITICAL_SIGNAL = ("high", "serious")

DEFAULT_CONFIG: dict[str, Any] = {
    "window_days": 28,
    "baseline_days": 365,
    "urgency_days": 7,
    "likelihood": {
        "prior_strength": 20,
        "credible": 0.95,
        "min_inspected": 5,
        "lift_thresholds": [1.5, 2.5, 4.0, 6.0],
        "signal_bump_count": 2,
        "signal_surge_min": 4,
        "signal_surge_ratio": 4.0,
        "signal_surge_p": 0.001,
        "signal_surge_serious": 0,
        "signals_alone_kinds": ["hs4_origin"],
        "score_bump_ratio": 2.0,
        # indirect standardisation: the expected nonconformity of each inspected declaration
        # from its stratum's baseline-period rate; strata are inspection selection x the
        # enterprise's credit rating in force when it declared. [] turns it off.
        "mix_strata": ["selection", "credit_rating"],
        "stratum_prior": 20,
        # multiplicity: every week hundreds of subjects are assessed, so a rate excess must
        # also survive the Benjamini-Hochberg procedure at this false discovery rate among the
        # subjects of its kind with enough results (Poisson tail of the window's nonconforming
        # count under its mix-adjusted expected count). 0 turns it off.
        "fdr": 0.05,
        # sequential change detection: a one-sided Poisson CUSUM of weekly observed against
        # mix-adjusted expected nonconforming, tuned to a lift of rho; h = 4.0 gives an
        # in-control average run length of at least 268 weeks (about 5 years) per subject
        # for any weekly expected count (simulated, docs/warnings.md). kinds [] turns it off.
        "cusum": {
            "kinds": ["hs4", "origin", "hs4_origin"],
            "rho": 2.0,
            "h": 4.0,
            "weeks": 13,
            "min_base_days": 91,
        },
    },
    # a rate excess alone (few results) is not enough: it needs volume, signals or severity
    "corroboration": {
        "kinds": ["enterprise", "overseas_party", "hs4", "origin", "hs4_origin"],
        "min_bad": 6,
        "min_severity": 3,
        "min_serious_signals": 1,
    },
    # traders without a trusted own baseline: chronic risk is credit supervision, not an outbreak
    "credit": {"kinds": ["enterprise", "overseas_party"], "trusted_base_n": 20},
    "proposals": {
        "warmup_days": 270,
        "warmup_kinds": ["hs4", "origin", "hs4_origin"],
        "cooldown_days": 84,
        "max_per_run": 8,
    },
    "severity": {
        "hazard_weights": {
            "safety": 1.0,
            "health": 1.0,
            "environment": 0.8,
            "fraud_labeling": 0.5,
            "other": 0.6,
        },
        "thresholds": [0.15, 0.35, 0.6],
        "harm_channels": ["injury_report", "foodborne_illness"],
    },
    "matrix": [[3, 2, 1, 1], [4, 3, 2, 1], [4, 4, 3, 2], [0, 4, 4, 3]],
    "scope": {
        "wide_ports": 3,
        "wide_enterprises": 5,
        "wide_declarations": 150,
        "narrow_declarations": 15,
    },
    "urgency": {"rising_ratio": 1.5, "rising_min_bad": 2},
    "max_adjust": 1,
    "publication": {1: "公告", 2: "通告", 3: "通报", 4: "通报"},
    "measures": {
        1: [
            {"type": "tightened_inspection", "mode": "mandatory", "rate": 1.0},
            {"type": "suspension", "direction": "import"},
            {"type": "traceability"},
            {"type": "recall"},
            {"type": "return_destroy"},
            {"type": "lower_credit", "applies_to": ["enterprise"]},
        ],
        2: [
            {"type": "tightened_inspection", "mode": "mandatory", "rate": 1.0},
            {"type": "restriction", "direction": "import"},
            {"type": "traceability"},
            {"type": "lower_credit", "applies_to": ["enterprise"]},
        ],
        3: [
            {"type": "tightened_inspection", "mode": "raised", "rate": 0.3},
            {"type": "traceability"},
        ],
        4: [{"type": "tightened_inspection", "mode": "raised", "rate": 0.1}],
    },
    "lift": {"period_days": 28, "threshold_factor": 1.5, "min_inspected": 10},
}

DEFAULT_CONFIG_PATH = Path(__file__).with_name("warning_config.yaml")


class InvalidTransition(Exception):
    """A lifecycle action that the warning's current state does not allow (HTTP 409)."""


# --------------------------------------------------------------------------------------------
# configuration


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check a merged configuration and normalise level keys to ints.

    Raises
    ------
    ValueError
        When the matrix, thresholds, publication types or measures are malformed.
    """
    matrix = cfg["matrix"]
    if len(matrix) != 4 or any(len(row) != 4 for row in matrix):
        raise ValueError("matrix must be 4 x 4 (severity 4..1 by likelihood 1..4)")
    if any(v not in (0, 1, 2, 3, 4) for row in matrix for v in row):
        raise ValueError("matrix values must be 0 (none) or a level 1..4")
    lifts = cfg["likelihood"]["lift_thresholds"]
    if len(lifts) != 4 or any(a >= b for a, b in zip(lifts, lifts[1:], strict=False)):
        raise ValueError("likelihood.lift_thresholds must be 4 increasing numbers")
    sev = cfg["severity"]["thresholds"]
    if len(sev) != 3 or any(a >= b for a, b in zip(sev, sev[1:], strict=False)):
        raise ValueError("severity.thresholds must be 3 increasing numbers")
    if not 0.5 < float(cfg["likelihood"]["credible"]) < 1.0:
        raise ValueError("likelihood.credible must be in (0.5, 1)")
    cfg["publication"] = {int(k): v for k, v in cfg["publication"].items()}
    cfg["measures"] = {int(k): list(v) for k, v in cfg["measures"].items()}
    for level in LEVELS:
        if cfg["publication"].get(level) not in PUBLICATION_PURPOSES:
            raise ValueError(f"publication for level {level} must be one of 通报/通告/公告")
        for m in cfg["measures"].get(level, []):
            if m.get("type") not in MEASURE_TYPES:
                raise ValueError(f"unknown measure type {m.get('type')!r} at level {level}")
            if m["type"] == "tightened_inspection":
                if m.get("mode") not in ("mandatory", "raised"):
                    raise ValueError("tightened_inspection needs mode mandatory or raised")
                if not 0.0 < float(m.get("rate", 1.0)) <= 1.0:
                    raise ValueError("tightened_inspection rate must be in (0, 1]")
    return cfg


def load_warning_config(path: Path | str | None = None) -> dict[str, Any]:
    """Load the warning configuration: the embedded defaults overridden by a YAML file.

    Parameters
    ----------
    path
        A YAML file; ``None`` reads ``policy/warning_config.yaml`` when it exists.
    """
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    file = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    if file.exists():
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{file}: the warning configuration must be a mapping")
        cfg = _merge(cfg, loaded)
    elif path is not None:
        raise FileNotFoundError(file)
    return validate_config(cfg)


# --------------------------------------------------------------------------------------------
# subjects and inspection measures


@dataclass(frozen=True)
class Subject:
    """What a warning is about. ``key`` holds one value, two for ``hs4_origin`` (hs4, origin)."""

    kind: str
    key: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in SUBJECT_KINDS:
            raise ValueError(f"unknown subject kind {self.kind!r}")
        want = 2 if self.kind == "hs4_origin" else 1
        if len(self.key) != want or not all(isinstance(k, str) and k for k in self.key):
            raise ValueError(f"subject {self.kind} needs {want} non-empty key part(s)")

    @property
    def key_str(self) -> str:
        return "/".join(self.key)

    @property
    def label(self) -> str:
        return f"{SUBJECT_LABELS_ZH[self.kind]} {self.key_str}"

    @classmethod
    def parse(cls, kind: str, key_str: str) -> Subject:
        return cls(kind, tuple(key_str.split("/")))

    def matches(self, declaration: dict[str, Any]) -> bool:
        """True when a declaration (contract fields) falls under this subject."""

        def field_(name: str) -> str:
            v = declaration.get(name)
            return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

        if self.kind == "enterprise":
            return field_("enterprise_id") == self.key[0]
        if self.kind == "overseas_party":
            return field_("overseas_party_id") == self.key[0]
        if self.kind == "hs4":
            return field_("hs_code")[:4] == self.key[0]
        if self.kind == "origin":
            return field_("origin_country") == self.key[0]
        return field_("hs_code")[:4] == self.key[0] and field_("origin_country") == self.key[1]

    def mask(self, declarations: pd.DataFrame) -> np.ndarray:
        """Vectorised :meth:`matches` over a declarations frame."""
        col = {
            "enterprise": "enterprise_id",
            "overseas_party": "overseas_party_id",
            "origin": "origin_country",
        }
        if self.kind in col:
            return (declarations[col[self.kind]] == self.key[0]).fillna(False).to_numpy(bool)
        hs4 = declarations["hs_code"].str.slice(0, 4) == self.key[0]
        if self.kind == "hs4":
            return hs4.fillna(False).to_numpy(bool)
        both = hs4 & (declarations["origin_country"] == self.key[1])
        return both.fillna(False).to_numpy(bool)


@dataclass(frozen=True)
class InspectionMeasure:
    """A tightened-inspection measure of an active warning, for the scoring API's decision.

    ``mode`` is ``"mandatory"`` (inspect every matching declaration) or ``"raised"`` (inspect a
    ``rate`` share of them, drawn per warning and declaration by a keyed hash).
    """

    warning_id: str
    subject: Subject
    mode: str
    rate: float
    level: int

    def matches(self, declaration: dict[str, Any]) -> bool:
        return self.subject.matches(declaration)

    def selects(self, declaration_id: str, secret: bytes | str) -> bool:
        """Whether this measure sends the declaration to inspection (reproducible draw)."""
        if self.mode == "mandatory":
            return True
        return monitoring_draw(f"{self.warning_id}\x1f{declaration_id}", secret) < self.rate


def measures_for_level(
    level: int, subject_kind: str, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The toolbox measures of a level that apply to a subject kind (copies)."""
    out = []
    for m in config["measures"].get(level, []):
        applies = m.get("applies_to")
        if applies and subject_kind not in applies:
            continue
        item = {k: v for k, v in m.items() if k != "applies_to"}
        item["label"] = MEASURE_TYPES[m["type"]]
        out.append(item)
    return out


def inspection_measures(warnings: list[dict[str, Any]]) -> list[InspectionMeasure]:
    """Inspection measures of the warnings in force (status ``active``), most severe first.

    Parameters
    ----------
    warnings
        Warning records as stored (keys ``id``, ``status``, ``level``, ``subject_kind``,
        ``subject_key``, ``measures``).
    """
    out: list[InspectionMeasure] = []
    for w in warnings:
        if w["status"] != "active":
            continue
        subject = Subject.parse(w["subject_kind"], w["subject_key"])
        for m in w["measures"]:
            if m.get("type") == "tightened_inspection":
                out.append(
                    InspectionMeasure(
                        warning_id=w["id"],
                        subject=subject,
                        mode=m["mode"],
                        rate=float(m.get("rate", 1.0)),
                        level=int(w["level"]),
                    )
                )
    # mandatory before raised, then by level (Ⅰ first): the decision takes the first match
    out.sort(key=lambda m: (m.mode != "mandatory", m.level, -m.rate))
    return out


# --------------------------------------------------------------------------------------------
# assessment


@dataclass
class Assessment:
    """The evidence behind a warning and the level it leads to (``level`` 0: no warning)."""

    subject: Subject
    as_of: str
    window_start: str
    inspected: int
    nonconforming: int
    rate: float
    baseline: float
    lower_bound: float
    lift: float
    likelihood: int
    critical: int
    major: int
    minor: int
    hazard: str | None
    severity_score: float
    severity: int
    declarations: int
    value_usd: float
    ports: int
    enterprises: int
    recent_rate: float
    earlier_rate: float
    rising: bool
    signals: int
    signals_expected: float
    surge: bool
    serious_signals: int
    signal_channels: dict[str, int]
    mean_score: float | None
    score_ratio: float | None
    matrix_level: int
    scope_adjust: int
    urgency_adjust: int
    level: int
    category: str = "outbreak"
    baseline_inspected: int = 0
    # the rate expected for this window's inspections (baseline adjusted for their mix) and
    # observed / expected nonconforming; equal to baseline and rate / baseline without a mix
    expected_rate: float = 0.0
    observed_expected: float = 0.0
    # the Poisson CUSUM at as_of and its estimated lift (observed / expected since it last
    # left zero); 0 when the subject kind is not monitored
    cusum: float = 0.0
    cusum_lift: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["subject"] = {"kind": self.subject.kind, "key": self.subject.key_str}
        return d


def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def beta_lower_bound(k: np.ndarray, n: np.ndarray, baseline: np.ndarray, cfg: dict) -> np.ndarray:
    """Lower credible bound of the nonconformity rate: Beta(m*b + k, m*(1-b) + n - k) quantile.

    The prior is centred on the baseline ``b`` with strength ``m`` pseudo-inspections, so a few
    results move the bound little and many move it a lot.
    """
    m = float(cfg["likelihood"]["prior_strength"])
    q = 1.0 - float(cfg["likelihood"]["credible"])
    b = np.clip(np.asarray(baseline, dtype=np.float64), 1e-4, 1 - 1e-4)
    a_post = m * b + np.asarray(k, dtype=np.float64)
    b_post = m * (1 - b) + np.asarray(n, dtype=np.float64) - np.asarray(k, dtype=np.float64)
    return np.asarray(betaincinv(a_post, b_post, q), dtype=np.float64)


# The columns window_expectation adds.
WINDOW_EXPECTATION = ("baseline", "smr_base", "expected", "lower", "lift")


def window_expectation(stats: pd.DataFrame, global_rate: float, cfg: dict[str, Any]) -> None:
    """Add ``baseline``, ``expected``, ``lower`` and ``lift`` (and the subject's baseline
    standardised ratio ``smr_base``) to per-subject window statistics.

    ``baseline`` is the subject's own baseline rate, shrunk to the all-subject rate when its
    history is thin. ``expected`` is the window's expected rate: its inspections' stratum
    rates times the subject's own standardised ratio over the baseline (observed / expected
    there, shrunk to 1 with ``prior_strength`` pseudo-inspections at the baseline's mean
    expected rate); with a single stratum at the global rate it is exactly ``baseline``.
    """
    m = float(cfg["likelihood"]["prior_strength"])
    stats["baseline"] = (stats["k_base"] + m * global_rate) / (stats["n_base"] + m)
    e_mean = (stats["e_base"] / stats["n_base"]).where(stats["n_base"] > 0, global_rate)
    smr_base = (stats["k_base"] + m * e_mean) / (stats["e_base"] + m * e_mean)
    mix = (stats["e"] / stats["n"]).where(stats["n"] > 0, global_rate)
    stats["smr_base"] = smr_base
    stats["expected"] = (smr_base * mix).clip(1e-4, 1 - 1e-4)
    stats["lower"] = beta_lower_bound(
        stats["k"].to_numpy(), stats["n"].to_numpy(), stats["expected"].to_numpy(), cfg
    )
    stats["lift"] = stats["lower"] / stats["expected"]


def benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at FDR ``q``."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0 or q <= 0:
        return np.zeros(m, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    keep = np.zeros(m, dtype=bool)
    if passed.any():
        keep[order[: int(np.flatnonzero(passed).max()) + 1]] = True
    return keep


def likelihood_class(lift: float, cfg: dict[str, Any]) -> int:
    """0 (no excess) .. 4 from the lift of the lower bound over the baseline."""
    return int(sum(lift >= t for t in cfg["likelihood"]["lift_thresholds"]))


def severity_class(score: float, cfg: dict[str, Any]) -> int:
    """1 .. 4 from the weighted share of critical and major results."""
    return 1 + int(sum(score >= t for t in cfg["severity"]["thresholds"]))


def matrix_level(severity: int, likelihood: int, cfg: dict[str, Any]) -> int:
    """The level the matrix gives (0: no warning)."""
    if likelihood <= 0 or severity <= 0:
        return 0
    return int(cfg["matrix"][4 - severity][likelihood - 1])


def _subject_keys(frame: pd.DataFrame, kind: str) -> pd.Series:
    """One key string per row for a subject kind (NA where the row has no such subject)."""
    if kind == "enterprise":
        return frame["enterprise_id"].astype("str")
    if kind == "overseas_party":
        return frame["overseas_party_id"].astype("str")
    if kind == "origin":
        return frame["origin_country"].astype("str")
    hs4 = frame["hs_code"].astype("str").str.slice(0, 4)
    if kind == "hs4":
        return hs4
    return hs4 + "/" + frame["origin_country"].astype("str")


def _signal_keys(signals: pd.DataFrame, kind: str) -> pd.Series:
    """Subject key of each signal; HS codes shorter than 4 digits do not name an HS4."""
    hs = signals["hs_code"].astype("str")
    hs4 = hs.where(hs.str.len() >= 4).str.slice(0, 4)
    if kind == "enterprise":
        return signals["enterprise_id"].astype("str")
    if kind == "overseas_party":
        return signals["overseas_party_id"].astype("str")
    if kind == "origin":
        return signals["origin_country"].astype("str")
    if kind == "hs4":
        return hs4
    return hs4 + "/" + signals["origin_country"].astype("str")


def _dominant_hazard(frame: pd.DataFrame) -> pd.Series:
    bad = frame[frame["bad"] & frame["hazard_type"].notna()]
    if bad.empty:
        return pd.Series(dtype="str")
    counts = bad.groupby(["key", "hazard_type"]).size().reset_index(name="n")
    counts = counts.sort_values(["key", "n", "hazard_type"], ascending=[True, False, True])
    return counts.drop_duplicates("key").set_index("key")["hazard_type"]


# (declarations, inspections, joined): the join is reused while both frames are the same objects
_JOIN_CACHE: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = []


def _rating_at_declaration(joined: pd.DataFrame, ratings: pd.DataFrame | None) -> pd.Series:
    """Credit rating in force when each inspected declaration was declared (else regular).

    The rating is known before the inspection, so using it never looks into the future.
    """
    if "declared_at" not in joined:
        return pd.Series(DEFAULT_CREDIT_RATING, index=joined.index, dtype="str")
    found = rating_in_force(joined["enterprise_id"], joined["declared_at"], ratings)
    return pd.Series(found, index=joined.index, dtype="str")


def _expected_rates(
    base: pd.DataFrame, rows: pd.DataFrame, strata: list[str], prior: float, global_rate: float
) -> np.ndarray:
    """Each row's expected nonconformity: its stratum's rate over the baseline period.

    Strata rates are shrunk towards ``global_rate`` with ``prior`` pseudo-inspections; a stratum
    unseen in the baseline gets ``global_rate``. Without strata every row gets ``global_rate``.
    """
    if not strata or base.empty or rows.empty:
        return np.full(len(rows), global_rate, dtype=np.float64)
    keys = [base[c].astype("str").fillna("") for c in strata]
    g = base["bad"].groupby(keys)
    rates = (g.sum() + prior * global_rate) / (g.size() + prior)
    rates.index.names = strata
    idx = pd.MultiIndex.from_arrays(
        [rows[c].astype("str").fillna("").to_numpy() for c in strata], names=strata
    )
    return np.asarray(rates.reindex(idx).fillna(global_rate).to_numpy(), dtype=np.float64)


def poisson_cusum(
    observed: np.ndarray, expected: np.ndarray, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Poisson CUSUM over periods (columns, oldest first), one row per subject.

    ``S_t = max(0, S_{t-1} + x_t ln(rho) - (rho - 1) e_t)``: the log-likelihood ratio of a lift
    ``rho`` against no change, restarted at zero whenever the evidence runs out (Lucas 1985).

    Returns
    -------
    (cusum, lift)
        The statistic after the last period and the estimated lift: observed / expected over
        the periods since the statistic last was zero (the change-point estimate); 0 if none.
    """
    rows = observed.shape[0]
    s = np.zeros(rows)
    ck = np.zeros(rows)
    ce = np.zeros(rows)
    lr, drift = float(np.log(rho)), float(rho - 1.0)
    for j in range(observed.shape[1]):
        s = s + observed[:, j] * lr - drift * expected[:, j]
        ck = ck + observed[:, j]
        ce = ce + expected[:, j]
        reset = s <= 0
        s[reset] = 0.0
        ck[reset] = 0.0
        ce[reset] = 0.0
    lift = np.divide(ck, ce, out=np.zeros(rows), where=ce > 0)
    return s, lift


def _cusum_stats(
    period: pd.DataFrame,
    kind: str,
    smr: pd.Series,
    t: pd.Timestamp,
    cc: dict[str, Any],
) -> pd.DataFrame:
    """Weekly observed and mix-adjusted expected nonconforming of each subject over the last
    ``cc['weeks']`` weeks (week 0 ends at ``t``), through :func:`poisson_cusum`.

    ``period`` carries ``p_exp`` (the stratum rates of the window likelihood's baseline);
    a subject's expected is ``p_exp`` times ``smr``, its own standardised ratio over that
    baseline, exactly as for the window likelihood. Subjects not in ``smr`` are left out.
    """
    weeks = int(cc["weeks"])
    keys = _subject_keys(period, kind)
    p = period.assign(key=keys).dropna(subset=["key"])
    p = p[p["key"].isin(smr.index)]
    if p.empty:
        return pd.DataFrame({"cusum": pd.Series(dtype="float64"), "cusum_lift": 0.0})
    age = ((t - p["inspected_at"]).dt.total_seconds() // (7 * 86400)).astype(int)
    col = (weeks - 1 - age.clip(0, weeks - 1)).to_numpy()
    g = p.assign(col=col).groupby(["key", "col"])
    k = g["bad"].sum().unstack(fill_value=0).reindex(columns=range(weeks), fill_value=0)
    e = g["p_exp"].sum().unstack(fill_value=0).reindex(columns=range(weeks), fill_value=0.0)
    e = e.mul(smr.reindex(e.index).fillna(1.0), axis=0)
    s, lift = poisson_cusum(k.to_numpy(np.float64), e.to_numpy(np.float64), float(cc["rho"]))
    return pd.DataFrame({"cusum": s, "cusum_lift": lift}, index=k.index)


def _joined_inspections(tables: dict[str, pd.DataFrame], cols: list[str]) -> pd.DataFrame:
    """Inspections joined to their declarations' subject columns, with a ``bad`` flag.

    Repeated assessments over the same tables (a replay, the API's cached store) join once.
    """
    decl, insp = tables["declarations"], tables.get("inspections")
    for d, i, j in _JOIN_CACHE:
        if d is decl and i is insp:
            return j
    keep = ["declaration_id", "inspected_at", "selection", "result", "severity", "hazard_type"]
    if insp is None or insp.empty:
        joined = pd.DataFrame(columns=[*cols, *keep[1:]])
        joined["inspected_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    else:
        have = [c for c in keep if c in insp.columns]
        joined = insp[have].merge(decl[cols], on="declaration_id", how="inner")
    joined["bad"] = (joined["result"] == "nonconforming").fillna(False).astype(bool)
    joined["selection"] = joined.get("selection", pd.Series(index=joined.index, dtype="str"))
    joined["credit_rating"] = _rating_at_declaration(joined, tables.get("credit_ratings"))
    _JOIN_CACHE[:] = [(decl, insp, joined)] if insp is not None else []
    return joined


def assess(
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    scores: pd.DataFrame | None = None,
    kinds: tuple[str, ...] = SUBJECT_KINDS,
    subjects: list[Subject] | None = None,
) -> list[Assessment]:
    """Assess every subject with enough evidence at ``as_of``.

    Parameters
    ----------
    tables
        Contract tables with canonical dtypes (``features.store.Store(root).tables()``);
        ``declarations`` is required, ``inspections`` and ``risk_signals`` may be empty.
    as_of
        Assessment time; only results known by then (``inspected_at <= as_of``) and signals
        reported by then count.
    config
        From :func:`load_warning_config`; the defaults when ``None``.
    scores
        Optional frame with ``declaration_id`` and ``probability`` (the model's scores).
    kinds
        Subject kinds to assess.
    subjects
        When given, assess exactly these subjects (also those without enough evidence).

    Returns
    -------
    list[Assessment]
        Subjects with a level of at least Ⅳ (or every requested subject), most severe first.
    """
    cfg = config or load_warning_config()
    t = _ts(as_of)
    w_start = t - pd.Timedelta(days=int(cfg["window_days"]))
    b_start = w_start - pd.Timedelta(days=int(cfg["baseline_days"]))
    u_start = t - pd.Timedelta(days=int(cfg["urgency_days"]))
    lk = cfg["likelihood"]

    decl = tables["declarations"]
    cols = [
        "declaration_id",
        "declared_at",
        "enterprise_id",
        "overseas_party_id",
        "hs_code",
        "origin_country",
        "port_code",
    ]
    decl_w = decl.loc[(decl["declared_at"] > w_start) & (decl["declared_at"] <= t), cols].copy()
    value = decl.get("declared_value_usd")
    if value is not None:
        decl_w["value_usd"] = value.loc[decl_w.index].astype("float64")
    else:
        decl_w["value_usd"] = np.nan

    joined = _joined_inspections(tables, cols)
    insp_all = joined.loc[(joined["inspected_at"] > b_start) & (joined["inspected_at"] <= t)]
    in_window = (insp_all["inspected_at"] > w_start).to_numpy(bool)
    recent = insp_all.loc[in_window].copy()
    base = insp_all.loc[~in_window]
    global_rate = float(base["bad"].mean()) if len(base) else float(recent["bad"].mean() or 0.0)
    if not np.isfinite(global_rate) or global_rate <= 0:
        global_rate = 0.05  # no history at all: a neutral prior, stated in the docs
    # indirect standardisation: what each inspection would show at its stratum's usual rate
    # (why it was selected, whose it was), so a change of the inspected mix is not an excess
    strata = [c for c in lk.get("mix_strata", []) if c in insp_all.columns]
    prior_s = float(lk.get("stratum_prior", 20))
    recent["p_exp"] = _expected_rates(base, recent, strata, prior_s, global_rate)
    base = base.assign(p_exp=_expected_rates(base, base, strata, prior_s, global_rate))
    cc = lk.get("cusum") or {}
    cusum_kinds = set(cc.get("kinds") or [])
    c_period = recent
    if cusum_kinds:
        # the CUSUM's weeks before the window are baseline rows with the same expected; it is
        # recomputed from zero at each as_of, so it alarms no more often than a CUSUM run
        # since the start of the data. (A separate baseline ending where the CUSUM's weeks
        # begin was tried: staler expected counts, far more false alarms on the demo data.)
        c_start = t - pd.Timedelta(days=7 * int(cc["weeks"]))
        first = joined["inspected_at"].min() if len(joined) else c_start
        if (c_start - first).total_seconds() / 86400 < float(cc.get("min_base_days", 0)):
            cusum_kinds = set()  # too little history for an expected count to trust
        else:
            c_period = pd.concat([base.loc[base["inspected_at"] > c_start], recent])

    sig = tables.get("risk_signals")
    sig_base = None
    if sig is not None and not sig.empty:
        sig_base = sig.loc[(sig["reported_at"] > b_start) & (sig["reported_at"] <= w_start)]
        sig = sig.loc[(sig["reported_at"] > w_start) & (sig["reported_at"] <= t)].copy()
    # expected signals in a window from the baseline count: a surge is many more than that
    sig_scale = 0.0
    if sig_base is not None:
        # the baseline may be shorter than baseline_days where the data starts later
        first_sig = tables["risk_signals"]["reported_at"].min()
        span = min(float(cfg["baseline_days"]), (w_start - first_sig).total_seconds() / 86400)
        sig_scale = float(cfg["window_days"]) / max(span, float(cfg["window_days"]))
    score_map: pd.Series | None = None
    overall_score = None
    if scores is not None and len(scores):
        score_map = scores.set_index("declaration_id")["probability"].astype("float64")
        in_w = score_map.reindex(decl_w["declaration_id"]).dropna()
        overall_score = float(in_w.mean()) if len(in_w) else None

    wanted = {s.kind for s in subjects} if subjects else set(kinds)
    results: list[Assessment] = []
    for kind in SUBJECT_KINDS:
        if kind not in wanted:
            continue
        recent["key"] = _subject_keys(recent, kind)
        base_keys = _subject_keys(base, kind)
        r = recent.dropna(subset=["key"])
        g = r.groupby("key")
        stats = pd.DataFrame({"n": g.size(), "k": g["bad"].sum(), "e": g["p_exp"].sum()})
        bad = r[r["bad"]]
        for sev in ("critical", "major", "minor"):
            stats[sev] = bad[bad["severity"] == sev].groupby("key").size()
        late = r[r["inspected_at"] > u_start]
        stats["n_late"] = late.groupby("key").size()
        stats["k_late"] = late.groupby("key")["bad"].sum()
        stats["hazard"] = _dominant_hazard(r)
        bg = base.assign(key=base_keys).dropna(subset=["key"]).groupby("key")
        stats["n_base"] = bg.size()
        stats["k_base"] = bg["bad"].sum()
        stats["e_base"] = bg["p_exp"].sum()

        sig_stats = pd.DataFrame()
        if sig is not None and not sig.empty:
            s = sig.assign(key=_signal_keys(sig, kind)).dropna(subset=["key"])
            if kind == "hs4_origin":
                s = s[~s["key"].str.contains("<NA>|nan", regex=True)]
            if len(s):
                serious = s["severity"].isin(_CRITICAL_SIGNAL).fillna(False)
                harm = s["channel"].isin(cfg["severity"]["harm_channels"]) & (
                    s["severity"] == "serious"
                ).fillna(False)
                sig_stats = pd.DataFrame(
                    {
                        "signals": s.groupby("key").size(),
                        "serious_signals": s[serious].groupby("key").size(),
                        "harm_signals": s[harm].groupby("key").size(),
                    }
                )
                chan = s.groupby(["key", "channel"]).size()
                if sig_base is not None and len(sig_base):
                    sb = sig_base.assign(key=_signal_keys(sig_base, kind)).dropna(subset=["key"])
                    sig_stats["signals_base"] = sb.groupby("key").size()
                expected = sig_stats.get("signals_base", 0.0)
                expected = pd.Series(expected, index=sig_stats.index).fillna(0.0) * sig_scale
                sig_stats["signals_expected"] = expected
                # a surge: many more reports than usual (count, ratio and a Poisson tail
                # probability under the subject's own signal rate, so a subject that is often
                # reported on needs many more reports), optionally some high or serious
                mu = expected.clip(lower=0.25)
                n_sig = sig_stats["signals"].astype("float64")
                tail = pd.Series(pdtrc(n_sig - 1.0, mu), index=sig_stats.index)  # P(X >= n)
                sig_stats["surge"] = (
                    (n_sig >= lk["signal_surge_min"])
                    & (n_sig >= lk["signal_surge_ratio"] * mu)
                    & (tail <= float(lk["signal_surge_p"]))
                    & (sig_stats["serious_signals"].fillna(0) >= lk["signal_surge_serious"])
                )
        counts = ["n", "k", "e", "n_base", "k_base", "e_base"]
        stats[counts] = stats[counts].astype("float64").fillna(0.0)
        window_expectation(stats, global_rate, cfg)
        stats["fdr_ok"] = True
        fdr = float(lk.get("fdr") or 0.0)
        if fdr > 0 and len(stats):
            # over every subject of this kind with enough results, whichever are reported
            tested = stats["n"] >= lk["min_inspected"]
            mean = (stats.loc[tested, "n"] * stats.loc[tested, "expected"]).to_numpy()
            k_bad = stats.loc[tested, "k"].to_numpy()
            # P(X >= k) under Poisson(mean); no bad result is no excess at all (p = 1)
            p_excess = np.where(k_bad > 0, pdtrc(np.maximum(k_bad - 1.0, 0.0), mean), 1.0)
            ok = pd.Series(False, index=stats.index)
            ok[tested[tested].index] = benjamini_hochberg(p_excess, fdr)
            stats["fdr_ok"] = ok
            stats["fdr_tested"] = int(tested.sum())
        if subjects:
            keys = [sub.key_str for sub in subjects if sub.kind == kind]
            stats = stats.reindex(stats.index.union(pd.Index(keys)))
            stats = stats.loc[keys]
        elif len(sig_stats) and kind in lk["signals_alone_kinds"]:
            alone = sig_stats.index[sig_stats["surge"]]
            stats = stats.reindex(stats.index.union(alone))
        sig_cols = ["signals", "serious_signals", "harm_signals", "signals_expected"]
        if not len(sig_stats):
            sig_stats = pd.DataFrame(columns=[*sig_cols, "surge"], dtype="float64")
        stats = stats.join(sig_stats[[*sig_cols, "surge"]], how="left")
        stats["surge"] = stats["surge"].astype("boolean").fillna(False).astype(bool)
        num = [
            "n",
            "k",
            "critical",
            "major",
            "minor",
            "n_late",
            "k_late",
            "n_base",
            "k_base",
            "e",
            "e_base",
            "signals",
            "serious_signals",
            "harm_signals",
            "signals_expected",
        ]
        stats[num] = stats[num].astype("float64").fillna(0.0)
        stats["fdr_ok"] = stats["fdr_ok"].astype("boolean").fillna(False).astype(bool)
        # subjects asked for, or raised on signals alone, may have no result in the window
        no_results = stats["expected"].isna()
        if no_results.any():
            part = stats.loc[no_results].copy()
            window_expectation(part, global_rate, cfg)
            stats.loc[no_results, list(WINDOW_EXPECTATION)] = part[list(WINDOW_EXPECTATION)]
        smr_base = stats["smr_base"]
        stats["cusum"] = 0.0
        stats["cusum_lift"] = 0.0
        if kind in cusum_kinds and len(stats):
            cs = _cusum_stats(c_period, kind, smr_base, t, cc)
            stats["cusum"] = cs["cusum"].reindex(stats.index).fillna(0.0)
            stats["cusum_lift"] = cs["cusum_lift"].reindex(stats.index).fillna(0.0)
        if not subjects:
            enough = stats["n"] >= lk["min_inspected"]
            candidates = enough & (stats["lift"] >= lk["lift_thresholds"][0]) & stats["fdr_ok"]
            if kind in cusum_kinds:
                candidates |= enough & (stats["cusum"] >= float(cc["h"]))
            if kind in lk["signals_alone_kinds"]:
                candidates |= stats["surge"]
            stats = stats[candidates]
        if stats.empty:
            continue

        # scope of the candidates only (cheap): declarations in the window of each subject
        dk = _subject_keys(decl_w, kind)
        sel = dk.isin(stats.index)
        dsub = decl_w.loc[sel.fillna(False).to_numpy(bool)].assign(key=dk[sel.fillna(False)])
        dg = dsub.groupby("key")
        scope = pd.DataFrame(
            {
                "declarations": dg.size(),
                "value_usd": dg["value_usd"].sum(),
                "ports": dg["port_code"].nunique(),
                "enterprises": dg["enterprise_id"].nunique(),
            }
        )
        stats = stats.join(scope, how="left")
        if score_map is not None:
            sc = score_map.reindex(dsub["declaration_id"]).to_numpy()
            mean_sc = pd.Series(sc, index=dsub["key"].to_numpy()).groupby(level=0).mean()
            stats["mean_score"] = mean_sc
        for key, row in stats.iterrows():
            chans: dict[str, int] = {}
            if len(sig_stats) and row["signals"] > 0:
                try:
                    sub = chan.xs(str(key), level="key")
                    chans = {str(c): int(v) for c, v in sub.items()}
                except KeyError:
                    chans = {}
            results.append(_grade(Subject.parse(kind, str(key)), row, cfg, overall_score, chans))
        if "key" in recent:
            recent = recent.drop(columns="key")

    for a in results:
        a.as_of = t.isoformat()
        a.window_start = w_start.isoformat()
    if not subjects:
        results = [a for a in results if a.level > 0]
    results.sort(key=lambda a: (a.level or 9, -a.lift, a.subject.kind, a.subject.key_str))
    return results


def _num(row: pd.Series, name: str, cast: type = int) -> Any:
    v = row.get(name)
    return cast(0) if v is None or pd.isna(v) else cast(v)


def _grade(
    subject: Subject,
    row: pd.Series,
    cfg: dict[str, Any],
    overall_score: float | None,
    channels: dict[str, int],
) -> Assessment:
    lk = cfg["likelihood"]
    n, k = int(row["n"]), int(row["k"])
    notes: list[str] = []
    lift = float(row["lift"]) if n > 0 else 0.0
    like = likelihood_class(lift, cfg) if n >= lk["min_inspected"] else 0
    if like > 0 and not bool(row.get("fdr_ok", True)):
        notes.append(
            f"rate excess not significant among {_num(row, 'fdr_tested')} {subject.kind} "
            f"subjects (Benjamini-Hochberg, FDR {float(lk['fdr']):g})"
        )
        like = 0
    # The lower bound is deliberately cautious; corroborating evidence (a CUSUM, signals, the
    # model's scores) may lift the class towards what the results themselves show, the class
    # of the posterior-mean lift, but never past it: with many results the bound is close to
    # the estimate, and stacking bumps on it would grade the same excess more severe every week.
    m = float(lk["prior_strength"])
    expected_rate = max(float(row["expected"]), 1e-9)
    mean_lift = (m * expected_rate + k) / (m + n) / expected_rate if n > 0 else 0.0
    evidence_cap = max(like, likelihood_class(mean_lift, cfg))
    cusum, cusum_lift = float(row.get("cusum", 0.0)), float(row.get("cusum_lift", 0.0))
    cc = lk.get("cusum") or {}
    if (
        like == 0
        and n >= lk["min_inspected"]
        and subject.kind in (cc.get("kinds") or [])
        and cusum >= float(cc["h"])
    ):
        # a sustained excess the window's lower bound cannot yet confirm: the CUSUM crossed
        # its threshold; the class follows its estimated lift (at least 1)
        like = max(1, min(likelihood_class(cusum_lift, cfg), evidence_cap))
        notes.append(f"CUSUM {cusum:.1f} >= {float(cc['h']):.1f} (lift {cusum_lift:.2f})")
    serious = int(row["serious_signals"])
    n_sig, expected = int(row["signals"]), float(row["signals_expected"])
    surge = bool(row["surge"])
    alone = False
    if like == 0 and surge and subject.kind in lk["signals_alone_kinds"]:
        like, alone = 1, True
        notes.append(f"signal surge ({n_sig} vs {expected:.1f} expected): likelihood 1")
    elif like > 0 and (surge or serious >= lk["signal_bump_count"]):
        why = (
            f"signal surge ({n_sig} vs {expected:.1f} expected)"
            if surge
            else (f"{serious} high/serious signals")
        )
        if like < evidence_cap:
            like += 1
            notes.append(f"{why}: likelihood +1")
        else:
            notes.append(f"{why}: likelihood already at the results' estimate")
    mean_score = row.get("mean_score")
    mean_score = None if mean_score is None or pd.isna(mean_score) else float(mean_score)
    score_ratio = None
    if mean_score is not None and overall_score:
        score_ratio = mean_score / overall_score
        if like > 0 and score_ratio >= lk["score_bump_ratio"]:
            if like < evidence_cap:
                like += 1
                notes.append(f"model scores {score_ratio:.1f}x the mean: likelihood +1")
            else:
                notes.append(
                    f"model scores {score_ratio:.1f}x the mean: likelihood already at the "
                    "results' estimate"
                )

    crit, major, minor = int(row["critical"]), int(row["major"]), int(row["minor"])
    hazard = row.get("hazard")
    hazard = None if hazard is None or pd.isna(hazard) else str(hazard)
    weight = float(cfg["severity"]["hazard_weights"].get(hazard or "other", 0.6))
    sev_score = (crit + 0.5 * major) / k * weight if k > 0 else 0.0
    sev = severity_class(sev_score, cfg)
    # two or more high/serious signals set a floor of class 2 under severity (a surge of
    # reports is not a mere minor matter even before results come in)
    sig_sev = 2 if (serious >= lk["signal_bump_count"] or surge) else 1
    if sig_sev > sev:
        notes.append(f"{serious} high/serious signals: severity {sig_sev}")
        sev = sig_sev
    if int(row["harm_signals"]) > 0:
        sev = min(4, sev + 1)
        notes.append("serious injury/illness signals: severity +1")

    co = cfg["corroboration"]
    if like > 0 and not alone and subject.kind in co["kinds"]:
        # a credible rate excess must come with volume, signals or severity: a handful of
        # minor results on a thin subject is noise far more often than an outbreak
        corroborated = (
            k >= int(co["min_bad"])
            or sev >= int(co["min_severity"])
            or surge
            or serious >= int(co["min_serious_signals"])
        )
        if not corroborated:
            notes.append(
                f"rate excess not corroborated ({k} bad, severity {sev}, no signals): no warning"
            )
            like = 0
    base_level = matrix_level(sev, like, cfg)
    sc = cfg["scope"]
    decls, ports, ents = (_num(row, c) for c in ("declarations", "ports", "enterprises"))
    scope_adj = 0
    if (
        ports >= sc["wide_ports"]
        or ents >= sc["wide_enterprises"]
        or decls >= sc["wide_declarations"]
    ):
        scope_adj = 1
    elif ents <= 1 and ports <= 1 and decls < sc["narrow_declarations"]:
        scope_adj = -1
    n_late, k_late = float(row["n_late"]), float(row["k_late"])
    n_early, k_early = n - n_late, k - k_late
    recent_rate = k_late / n_late if n_late else 0.0
    earlier_rate = k_early / n_early if n_early else 0.0
    ur = cfg["urgency"]
    rising = bool(
        k_late >= ur["rising_min_bad"]
        and recent_rate >= ur["rising_ratio"] * max(earlier_rate, float(row["baseline"]))
    )
    urg_adj = 1 if rising else 0
    level = base_level
    if alone:
        # an early warning on reports alone stays at the matrix level until results confirm it
        scope_adj = urg_adj = 0
    if base_level:
        adjust = max(-cfg["max_adjust"], min(cfg["max_adjust"], scope_adj + urg_adj))
        level = int(min(4, max(1, base_level - adjust)))
    category = "outbreak"
    if subject.kind in cfg["credit"]["kinds"] and row["n_base"] < cfg["credit"]["trusted_base_n"]:
        # no trusted own history: the excess may be the trader's chronic risk, which credit
        # management (rating, raised inspection rate) answers rather than an outbreak warning
        category = "credit_supervision"
    return Assessment(
        subject=subject,
        as_of="",
        window_start="",
        inspected=n,
        nonconforming=k,
        rate=k / n if n else 0.0,
        baseline=float(row["baseline"]),
        lower_bound=float(row["lower"]),
        lift=lift,
        likelihood=like,
        critical=crit,
        major=major,
        minor=minor,
        hazard=hazard,
        severity_score=float(sev_score),
        severity=sev,
        declarations=decls,
        value_usd=float(_num(row, "value_usd", float)),
        ports=ports,
        enterprises=ents,
        recent_rate=float(recent_rate),
        earlier_rate=float(earlier_rate),
        rising=rising,
        signals=n_sig,
        signals_expected=expected,
        surge=surge,
        serious_signals=serious,
        signal_channels=channels,
        mean_score=mean_score,
        score_ratio=score_ratio,
        matrix_level=base_level,
        scope_adjust=scope_adj,
        urgency_adjust=urg_adj,
        level=level,
        category=category,
        baseline_inspected=int(row["n_base"]),
        expected_rate=float(row["expected"]),
        observed_expected=float(k / (n * float(row["expected"]))) if n else 0.0,
        cusum=cusum,
        cusum_lift=cusum_lift,
        notes=notes,
    )


# --------------------------------------------------------------------------------------------
# proposals


def _suppress_nested(
    assessments: list[Assessment], tables: dict[str, pd.DataFrame], config: dict[str, Any]
) -> list[Assessment]:
    """Drop broader or trader subjects already explained by a product x origin warning.

    An outbreak in HS4 x origin also lifts its HS4, its origin and the importers of that
    product; one warning on the narrowest product subject serves the committee better. A
    broader subject stays when it is more severe than every narrow one inside it; an enterprise
    or overseas party stays unless half or more of its recent bad results fall inside one.
    """
    narrow = [a for a in assessments if a.subject.kind == "hs4_origin"]
    if not narrow:
        return assessments
    keep: list[Assessment] = []
    insp = tables.get("inspections")
    decl = tables["declarations"]
    for a in assessments:
        kind = a.subject.kind
        if kind == "hs4":
            inside = [x for x in narrow if x.subject.key[0] == a.subject.key[0]]
            if inside and a.level >= min(x.level for x in inside):
                continue
        elif kind == "origin":
            inside = [x for x in narrow if x.subject.key[1] == a.subject.key[0]]
            if inside and a.level >= min(x.level for x in inside):
                continue
        elif kind in ("enterprise", "overseas_party") and insp is not None and len(insp):
            t = _ts(a.as_of)
            w_start = t - pd.Timedelta(days=int(config["window_days"]))
            recent = insp[
                (insp["inspected_at"] > w_start)
                & (insp["inspected_at"] <= t)
                & (insp["result"] == "nonconforming")
            ]
            d = decl[decl["declaration_id"].isin(recent["declaration_id"])]
            d = d[a.subject.mask(d)]
            if len(d):
                covered = np.zeros(len(d), dtype=bool)
                for x in narrow:
                    covered |= x.subject.mask(d)
                if covered.mean() >= 0.5:
                    continue
        keep.append(a)
    return keep


def warning_id_for(subject: Subject, as_of: Any) -> str:
    """A stable id: the same subject proposed on the same day gets the same id."""
    t = _ts(as_of)
    digest = hashlib.sha256(f"{subject.kind}|{subject.key_str}".encode()).hexdigest()[:8]
    return f"W{t.strftime('%Y%m%d')}-{digest}"


def build_warning(
    assessment: Assessment, config: dict[str, Any], proposed_by: str = "system"
) -> dict[str, Any]:
    """A warning record (not yet stored) from an assessment: level, publication type, scope,
    matters covered and measures."""
    a = assessment
    level = a.level
    numeral, name_zh, colour = LEVELS[level]
    pub = config["publication"][level]
    hazard = a.hazard or "unspecified"
    matters = (
        f"{a.subject.label}: {a.nonconforming}/{a.inspected} nonconforming in the last "
        f"{config['window_days']} days (baseline {a.baseline:.1%}); dominant hazard {hazard}; "
        f"{a.critical} critical, {a.major} major"
    )
    if a.signals:
        matters += f"; {a.signals} risk signals"
    if a.category == "credit_supervision":
        matters += "; no trusted own history: referred for credit supervision"
    return {
        "id": warning_id_for(a.subject, a.as_of),
        "subject_kind": a.subject.kind,
        "subject_key": a.subject.key_str,
        "subject_label": a.subject.label,
        "level": level,
        "level_name": f"{numeral}级 {name_zh}",
        "colour": colour,
        "status": "proposed",
        "publication_type": pub,
        "publication_purpose": PUBLICATION_PURPOSES[pub],
        "title": f"关于{a.subject.label}的{numeral}级（{name_zh}）风险预警",
        "matters": matters,
        "hazard": a.hazard,
        "scope": {
            "declarations": a.declarations,
            "value_usd": round(a.value_usd, 2),
            "ports": a.ports,
            "enterprises": a.enterprises,
            "window_start": a.window_start,
            "as_of": a.as_of,
        },
        "measures": measures_for_level(level, a.subject.kind, config),
        "assessment": a.to_dict(),
        "as_of": a.as_of,
        "category": a.category,
        "proposed_by": proposed_by,
    }


def _history_days(tables: dict[str, pd.DataFrame], window_start: pd.Timestamp) -> float:
    """Days of inspection results before the window (how much baseline there is at all)."""
    insp = tables.get("inspections")
    if insp is None or insp.empty:
        return 0.0
    first = insp["inspected_at"].min()
    return max(0.0, (window_start - first).total_seconds() / 86400)


def _rank_key(a: Assessment) -> tuple:
    # most severe first, then product subjects before traders, then the strongest evidence
    return (
        a.level,
        a.category != "outbreak",
        -a.lift,
        -a.signals,
        a.subject.kind,
        a.subject.key_str,
    )


def propose(
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    scores: pd.DataFrame | None = None,
    open_subjects: set[tuple[str, str]] | None = None,
    recently_closed: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Warning proposals at ``as_of``: assess, suppress nested duplicates, skip open subjects
    and subjects in their cool-down, rank and cap.

    Parameters
    ----------
    open_subjects
        ``(subject_kind, subject_key)`` pairs that already have an open warning (proposed,
        approved or active); they are not proposed again.
    recently_closed
        ``(subject_kind, subject_key)`` -> ``{"level": int, "closed_at": time}`` of warnings
        lifted or rejected lately. Within ``proposals.cooldown_days`` of ``closed_at`` such a
        subject is proposed again only at a strictly more severe level than it had.

    Notes
    -----
    During the warm-up (less than ``proposals.warmup_days`` of results before the window) only
    the ``proposals.warmup_kinds`` are proposed: trader baselines are too short to tell a
    change from chronic risk. At most ``proposals.max_per_run`` proposals are returned, most
    severe first.
    """
    cfg = config or load_warning_config()
    pc = cfg["proposals"]
    t = _ts(as_of)
    found = _suppress_nested(assess(tables, as_of, cfg, scores=scores), tables, cfg)
    w_start = t - pd.Timedelta(days=int(cfg["window_days"]))
    if _history_days(tables, w_start) < float(pc["warmup_days"]):
        found = [a for a in found if a.subject.kind in pc["warmup_kinds"]]
    skip = open_subjects or set()
    closed = recently_closed or {}
    cool = pd.Timedelta(days=int(pc["cooldown_days"]))
    keep: list[Assessment] = []
    for a in found:
        key = (a.subject.kind, a.subject.key_str)
        if key in skip:
            continue
        prev = closed.get(key)
        recent = prev is not None and t - _ts(prev["closed_at"]) < cool
        if recent and prev is not None and a.level >= int(prev["level"]):
            continue  # not clearly stronger than the warning just closed
        keep.append(a)
    keep.sort(key=_rank_key)
    cap = pc.get("max_per_run")
    if cap:
        keep = keep[: int(cap)]
    return [build_warning(a, cfg) for a in keep]


# --------------------------------------------------------------------------------------------
# lifecycle


@dataclass(frozen=True)
class EffectEvaluation:
    """Nonconformity of matching declarations inspected under the measure, against a threshold."""

    period_start: str
    period_end: str
    inspected: int
    nonconforming: int
    rate: float | None
    threshold: float
    min_inspected: int
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _inspected_under_measure(
    subject: Subject, tables: dict[str, pd.DataFrame], start: pd.Timestamp, end: pd.Timestamp
) -> tuple[int, int]:
    """Inspected and nonconforming among the subject's declarations in [start, end]."""
    decl = tables["declarations"]
    d = decl[(decl["declared_at"] >= start) & (decl["declared_at"] <= end)]
    d = d[subject.mask(d)]
    insp = tables.get("inspections")
    if insp is None or not len(insp) or not len(d):
        return 0, 0
    i = insp[insp["declaration_id"].isin(d["declaration_id"]) & (insp["inspected_at"] <= end)]
    return len(i), int((i["result"] == "nonconforming").sum())


def evaluate_effect(
    warning: dict[str, Any],
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    threshold: float | None = None,
    period_days: int | None = None,
) -> EffectEvaluation:
    """Effect of an active warning: matching declarations declared since it became active
    (at most ``period_days`` back from ``as_of``) and inspected by ``as_of``.

    It passes when at least ``lift.min_inspected`` were inspected and their nonconformity rate
    is at most ``threshold`` (default: ``lift.threshold_factor`` x the assessment's baseline).
    A thinly traded subject may not see ``min_inspected`` inspections in ``period_days``; the
    period then reaches back to the activation, so every inspection under the measure counts
    and the warning can still be lifted on evidence.
    """
    cfg = config or load_warning_config()
    lift = cfg["lift"]
    end = _ts(as_of)
    days = int(period_days or lift["period_days"])
    start = end - pd.Timedelta(days=days)
    if warning.get("activated_at"):
        start = max(start, _ts(warning["activated_at"]))
    if threshold is None:
        baseline = float(warning.get("assessment", {}).get("baseline", 0.05))
        threshold = float(lift["threshold_factor"]) * baseline
    subject = Subject.parse(warning["subject_kind"], warning["subject_key"])
    min_n = int(lift["min_inspected"])
    n, k = _inspected_under_measure(subject, tables, start, end)
    activated = warning.get("activated_at")
    if n < min_n and activated and _ts(activated) < start:
        start = _ts(activated)
        n, k = _inspected_under_measure(subject, tables, start, end)
    rate = k / n if n else None
    return EffectEvaluation(
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        inspected=n,
        nonconforming=k,
        rate=rate,
        threshold=float(threshold),
        min_inspected=min_n,
        passed=bool(rate is not None and n >= min_n and rate <= threshold),
    )


def next_state(
    status: str,
    level: int,
    action: str,
    reason: str | None = None,
    evaluation: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """The state after a lifecycle action, or :class:`InvalidTransition`.

    proposed -approve-> approved -activate-> active; proposed -reject-> rejected;
    active -escalate-> active at a more severe level (Ⅳ→Ⅲ→Ⅱ→Ⅰ); active -de-escalate-> active
    at a less severe level; active -lift-> lifted, only with a passing effect evaluation or a
    recorded reason. Rejected and lifted are final.
    """
    if action not in ACTIONS:
        raise InvalidTransition(f"unknown action {action!r}")
    if action in ("approve", "reject"):
        if status != "proposed":
            raise InvalidTransition(f"cannot {action} a warning that is {status}")
        return ("approved" if action == "approve" else "rejected"), level
    if action == "activate":
        if status != "approved":
            raise InvalidTransition(f"cannot activate a warning that is {status}")
        return "active", level
    if status != "active":
        raise InvalidTransition(f"cannot {action} a warning that is {status}")
    if action == "escalate":
        if level <= 1:
            raise InvalidTransition("level Ⅰ is the most severe; cannot escalate")
        return "active", level - 1
    if action == "de-escalate":
        if level >= 4:
            raise InvalidTransition("level Ⅳ is the least severe; lift it instead")
        return "active", level + 1
    # lift
    passed = bool(evaluation and evaluation.get("passed"))
    if not passed and not (reason and reason.strip()):
        raise InvalidTransition(
            "an active warning is lifted only after a passing effect evaluation "
            "or with a recorded reason"
        )
    return "lifted", level
