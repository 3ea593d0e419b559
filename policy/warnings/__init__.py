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

Modules: :mod:`.config` (typed configuration, defaults from the YAML file), :mod:`.subjects`
(subject kinds and their columns), :mod:`.signal_matching` (which subjects a risk signal is
about), :mod:`.statistics` (Beta bound, Benjamini-Hochberg, CUSUM), :mod:`.assessment`,
:mod:`.measures`, :mod:`.proposal`, :mod:`.lifecycle`.

Nothing here reads settings or the environment; all inputs are explicit.
"""

from policy.warnings.assessment import (
    Assessment,
    NoticeTest,
    _grade,
    as_utc,
    assess,
    likelihood_class,
    matrix_level,
    notice_tests,
    severity_class,
)
from policy.warnings.config import (
    DEFAULT_CONFIG,
    DEFAULT_CONFIG_PATH,
    LEVELS,
    MEASURE_TYPES,
    PUBLICATION_PURPOSES,
    WarningConfig,
    load_warning_config,
    validate_config,
)
from policy.warnings.lifecycle import (
    ACTIONS,
    OPEN_STATUSES,
    REVIEW_ACTIONS,
    STATUSES,
    EffectEvaluation,
    InvalidTransition,
    evaluate_effect,
    fresh_evidence,
    inspected_under_measure,
    is_report_driven,
    next_state,
    review_notice,
    review_until,
)
from policy.warnings.measures import InspectionMeasure, inspection_measures, measures_for_level
from policy.warnings.proposal import (
    build_warning,
    propose,
    retitle,
    warning_id_for,
    warning_title,
)
from policy.warnings.signal_matching import report_voices, signal_matches
from policy.warnings.statistics import (
    WINDOW_EXPECTATION,
    benjamini_hochberg,
    beta_lower_bound,
    gamma_prior_moments,
    negative_binomial_tail,
    poisson_cusum,
    window_expectation,
)
from policy.warnings.subjects import (
    SUBJECT_COLUMNS,
    SUBJECT_KINDS,
    SUBJECT_LABELS_ZH,
    Subject,
    subject_keys,
)

__all__ = [
    "ACTIONS",
    "DEFAULT_CONFIG",
    "DEFAULT_CONFIG_PATH",
    "LEVELS",
    "MEASURE_TYPES",
    "OPEN_STATUSES",
    "PUBLICATION_PURPOSES",
    "REVIEW_ACTIONS",
    "STATUSES",
    "SUBJECT_COLUMNS",
    "SUBJECT_KINDS",
    "SUBJECT_LABELS_ZH",
    "WINDOW_EXPECTATION",
    "Assessment",
    "NoticeTest",
    "EffectEvaluation",
    "InspectionMeasure",
    "InvalidTransition",
    "Subject",
    "WarningConfig",
    "_grade",
    "as_utc",
    "assess",
    "benjamini_hochberg",
    "beta_lower_bound",
    "build_warning",
    "evaluate_effect",
    "gamma_prior_moments",
    "inspected_under_measure",
    "inspection_measures",
    "is_report_driven",
    "likelihood_class",
    "load_warning_config",
    "matrix_level",
    "measures_for_level",
    "negative_binomial_tail",
    "notice_tests",
    "next_state",
    "poisson_cusum",
    "propose",
    "fresh_evidence",
    "review_notice",
    "review_until",
    "severity_class",
    "report_voices",
    "signal_matches",
    "subject_keys",
    "validate_config",
    "warning_id_for",
    "warning_title",
    "retitle",
    "window_expectation",
]
