"""The warning configuration: a typed model whose one source of defaults is the YAML file.

``policy/warning_config.yaml`` holds every default with its reasons; a user's YAML file (the
CLI's ``--config``) overrides any part of it. :class:`WarningConfig` types and checks the merged
result; the rest of the package reads it as the plain mapping ``WarningConfig.model_dump()``
returns (``cfg["likelihood"]["fdr"]``), so a configuration is easy to store and compare.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

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

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "warning_config.yaml"


class _Section(BaseModel):
    # a misspelt key is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid")


class CusumConfig(_Section):
    kinds: list[str]
    rho: float
    h: float
    weeks: int
    min_base_days: float


class EarlyNoticeConfig(_Section):
    """Report-driven Ⅳ 通报 on sparse, independent reports (docs/warnings.md)."""

    kinds: list[str]
    min_reports: int
    min_sources: int
    case_channels: list[str]
    serious_share: float
    fdr: float
    review_days: int
    confirm_fdr: float

    @model_validator(mode="after")
    def _check_share(self) -> EarlyNoticeConfig:
        if not 0.0 < self.serious_share < 1.0:
            raise ValueError("serious_share must be in (0, 1)")
        if not 0.0 < self.confirm_fdr < 1.0:
            raise ValueError("confirm_fdr must be in (0, 1)")
        return self


class LikelihoodConfig(_Section):
    prior_strength: float
    credible: float
    min_inspected: int
    lift_thresholds: list[float]
    signal_bump_count: int
    signal_fdr: float
    signal_surge_serious: int
    score_bump_ratio: float
    mix_strata: list[str]
    stratum_prior: float
    fdr: float
    cusum: CusumConfig

    @field_validator("credible")
    @classmethod
    def _credible(cls, v: float) -> float:
        if not 0.5 < v < 1.0:
            raise ValueError("likelihood.credible must be in (0.5, 1)")
        return v

    @field_validator("lift_thresholds")
    @classmethod
    def _lifts(cls, v: list[float]) -> list[float]:
        if len(v) != 4 or any(a >= b for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("likelihood.lift_thresholds must be 4 increasing numbers")
        return v


class CorroborationConfig(_Section):
    kinds: list[str]
    results_alone_per_year: float
    min_severity: int
    min_serious_signals: int

    @model_validator(mode="before")
    @classmethod
    def _replaced(cls, data: Any) -> Any:
        # a configuration file written before the tail rule names the count it replaced
        if isinstance(data, dict) and "min_bad" in data:
            raise ValueError(
                "corroboration.min_bad was replaced by corroboration.results_alone_per_year "
                "(chance warnings a year, per subject kind, from results alone; "
                "docs/warnings.md, Corroboration)"
            )
        return data

    @field_validator("results_alone_per_year")
    @classmethod
    def _budget(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("corroboration.results_alone_per_year must be > 0")
        return v


class CreditConfig(_Section):
    kinds: list[str]
    trusted_base_n: int


class ProposalsConfig(_Section):
    warmup_days: float
    warmup_kinds: list[str]
    cooldown_days: int
    max_per_run: int


class SeverityConfig(_Section):
    hazard_weights: dict[str, float]
    thresholds: list[float]
    harm_channels: list[str]

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(a >= b for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("severity.thresholds must be 3 increasing numbers")
        return v


class ScopeConfig(_Section):
    wide_ports: int
    wide_enterprises: int
    wide_declarations: int
    narrow_declarations: int


class UrgencyConfig(_Section):
    rising_ratio: float
    rising_min_bad: int


class LiftConfig(_Section):
    period_days: int
    threshold_factor: float
    min_inspected: int


class WarningConfig(_Section):
    """Every setting of the warnings (documented key by key in ``policy/warning_config.yaml``)."""

    window_days: int
    baseline_days: int
    urgency_days: int
    likelihood: LikelihoodConfig
    early_notice: EarlyNoticeConfig
    corroboration: CorroborationConfig
    credit: CreditConfig
    proposals: ProposalsConfig
    severity: SeverityConfig
    matrix: list[list[int]]
    scope: ScopeConfig
    urgency: UrgencyConfig
    max_adjust: int
    publication: dict[int, str]
    measures: dict[int, list[dict[str, Any]]]
    lift: LiftConfig

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, v: list[list[int]]) -> list[list[int]]:
        if len(v) != 4 or any(len(row) != 4 for row in v):
            raise ValueError("matrix must be 4 x 4 (severity 4..1 by likelihood 1..4)")
        if any(x not in (0, 1, 2, 3, 4) for row in v for x in row):
            raise ValueError("matrix values must be 0 (none) or a level 1..4")
        return v

    @model_validator(mode="after")
    def _levels(self) -> WarningConfig:
        for level in LEVELS:
            if self.publication.get(level) not in PUBLICATION_PURPOSES:
                raise ValueError(f"publication for level {level} must be one of 通报/通告/公告")
            for m in self.measures.get(level, []):
                if m.get("type") not in MEASURE_TYPES:
                    raise ValueError(f"unknown measure type {m.get('type')!r} at level {level}")
                if m["type"] == "tightened_inspection":
                    if m.get("mode") not in ("mandatory", "raised"):
                        raise ValueError("tightened_inspection needs mode mandatory or raised")
                    if not 0.0 < float(m.get("rate", 1.0)) <= 1.0:
                        raise ValueError("tightened_inspection rate must be in (0, 1]")
        return self


def _read_yaml(file: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{file}: the warning configuration must be a mapping")
    return loaded


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check a complete configuration through :class:`WarningConfig`; level keys become ints.

    Raises
    ------
    ValueError
        When a key is unknown or missing, or the matrix, thresholds, publication types or
        measures are malformed (the message names the setting).
    """
    try:
        return WarningConfig.model_validate(cfg).model_dump()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise ValueError(f"warning configuration {where}: {msg}" if where else msg) from None


# The defaults as written in the YAML file (unvalidated mapping; load_warning_config checks it).
DEFAULT_CONFIG: dict[str, Any] = _read_yaml(DEFAULT_CONFIG_PATH)


def load_warning_config(path: Path | str | None = None) -> dict[str, Any]:
    """Load the warning configuration: the defaults overridden by a YAML file.

    Parameters
    ----------
    path
        A YAML file whose keys override the defaults (every key optional); ``None``: the
        defaults of ``policy/warning_config.yaml``.
    """
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        file = Path(path)
        if not file.exists():
            raise FileNotFoundError(file)
        cfg = _merge(cfg, _read_yaml(file))
    return validate_config(cfg)
