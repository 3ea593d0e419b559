"""Assessment of subjects at a date: likelihood, severity, scope, urgency and the level.

For every subject kind the inspections of the recent window are compared with the rate
expected for them (indirect standardisation over the baseline period, :mod:`.statistics`),
the subject's risk signals are counted (:mod:`.signal_matching`) and :func:`_grade` turns the
evidence into classes and, through the configured matrix, a level (0: no warning).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contract import DEFAULT_CREDIT_RATING
from features.credit import rating_in_force
from policy.warnings.config import load_warning_config
from policy.warnings.signal_matching import (
    SERIOUS_SIGNAL_SEVERITIES,
    report_voices,
    signal_matches,
)
from policy.warnings.statistics import (
    WINDOW_EXPECTATION,
    benjamini_hochberg,
    gamma_prior_moments,
    negative_binomial_tail,
    poisson_cusum,
    window_expectation,
)
from policy.warnings.subjects import DEFAULT_KINDS, SUBJECT_KINDS, Subject, subject_keys


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
    # signals naming the subject, each counted with its weight (a signal naming n products
    # counts 1/n for each), so the count is fractional when sets are involved
    signals: float
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
    # the tail probability of the window's report count under the subject's gamma-Poisson
    # predictive, the independent channels/sources among them, and whether the warning rests
    # on reports alone (an early notice awaiting results)
    signal_p: float = 1.0
    # the early notice's p-value: the smaller of the all-reports and the high/serious tails,
    # each divided by its share of the level (early_notice.serious_share)
    notice_p: float = 1.0
    signal_sources: int = 0
    report_driven: bool = False
    # the window's reports alone pass the early-notice test (whatever the results say): on a
    # subject already under a warning this is fresh evidence for the committee
    reports_make_notice: bool = False
    # the tail probability of the window's nonconforming count under the subject's
    # gamma-Poisson predictive (1: fewer than min_inspected results), and the level at or
    # below which results alone corroborate an excess
    excess_p: float = 1.0
    results_alone_alpha: float = 0.0
    notes: list[str] = field(default_factory=list)
    # how the subject's signals were mapped to it (mapping_rule of a feed, "hs_code" when the
    # signal came with its code) -> their weight
    signal_rules: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["subject"] = {"kind": self.subject.kind, "key": self.subject.key_str}
        return d


# the declaration columns every assessment joins to inspections (one join, cached)
_JOIN_COLUMNS = ["declaration_id", "declared_at", "enterprise_id", "overseas_party_id",
                   "hs_code", "origin_country", "port_code"]  # fmt: skip


def as_utc(value: Any) -> pd.Timestamp:
    """A time as a UTC timestamp (naive times are taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


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
    keys = subject_keys(period, kind)
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


# the per-subject signal columns _signal_evidence gives
SIGNAL_EVIDENCE = (
    "signals",
    "serious_signals",
    "harm_signals",
    "signals_expected",
    "signal_sources",
    "signal_p",
    "notice_p",
    "surge",
    "early_notice",
)


def _signal_evidence(
    window: pd.DataFrame,
    history: pd.DataFrame | None,
    universe: pd.Index,
    history_windows: float,
    kind: str,
    cfg: dict[str, Any],
) -> pd.DataFrame:
    """Per-subject signal evidence in the window, judged against each subject's own history.

    Each subject's expected report count comes from its own reports over ``history_windows``
    windows before this one, with a gamma prior pooled over every subject of the kind
    (``universe``: those with results or reports); the tail probability of the window's count
    under that gamma-Poisson predictive, with Benjamini-Hochberg over the kind's subjects,
    says which counts are surprising (a *surge*: the likelihood goes up one class). An *early
    notice* needs two or more reports from independent channels or sources about a subject
    whose count is surprising for it (BH at ``early_notice.fdr``): for a subject hardly ever
    reported on, two reports are; a busy one needs a burst above its own usual count
    (docs/warnings.md).

    Parameters
    ----------
    window, history
        Signals in the window and before it, with their subject ``key`` and ``weight`` for
        this kind (:func:`.signal_matching.signal_matches`): counts are sums of weights, so a
        report naming n products counts 1/n for each.
    """
    lk, en = cfg["likelihood"], cfg["early_notice"]
    g = window.groupby("key")
    serious = window["severity"].isin(SERIOUS_SIGNAL_SEVERITIES).fillna(False)
    harm = window["channel"].isin(cfg["severity"]["harm_channels"]) & (
        window["severity"] == "serious"
    ).fillna(False)
    origin_of = report_voices(window, en["case_channels"])
    out = pd.DataFrame(
        {
            "signals": g["weight"].sum(),
            "serious_signals": window[serious].groupby("key")["weight"].sum(),
            "harm_signals": window[harm].groupby("key")["weight"].sum(),
            "signal_sources": origin_of.groupby(window["key"]).nunique(),
        }
    )
    out[["serious_signals", "harm_signals"]] = out[["serious_signals", "harm_signals"]].fillna(0)
    everyone = universe.union(out.index)
    past = (
        history.groupby("key")["weight"].sum()
        if history is not None
        else pd.Series(dtype="float64")
    )
    everyone = everyone.union(past.index)

    def tail(window_w: pd.Series, past_w: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        # the count's tail under each subject's gamma-Poisson predictive (prior pooled over
        # everyone of the kind); less than a window of history: nothing is a surprise
        x = past_w.reindex(everyone).fillna(0.0).to_numpy(np.float64)
        y = window_w.reindex(everyone).fillna(0.0).to_numpy(np.float64)
        if history_windows < 1.0:
            return np.ones(len(x)), x
        exposure = np.full(len(x), history_windows)
        shape, rate = gamma_prior_moments(x, exposure)
        return negative_binomial_tail(y, x, exposure, np.ones(len(x)), shape, rate)

    p, mu = tail(out["signals"], past)
    # high/serious reports are tested against the subject's own history of high/serious
    # reports too: a pair often mentioned in passing may never have had a serious one
    past_serious = (
        history[history["severity"].isin(SERIOUS_SIGNAL_SEVERITIES).fillna(False)]
        .groupby("key")["weight"]
        .sum()
        if history is not None
        else pd.Series(dtype="float64")
    )
    p_serious, _ = tail(out["serious_signals"], past_serious)
    serious_sources = origin_of[serious].groupby(window.loc[serious, "key"]).nunique()
    surprising = pd.Series(benjamini_hochberg(p, float(lk["signal_fdr"])), index=everyone)
    out["signal_p"] = pd.Series(p, index=everyone).reindex(out.index)
    out["signals_expected"] = pd.Series(mu, index=everyone).reindex(out.index)
    n_sig = out["signals"]
    out["surge"] = (
        surprising.reindex(out.index).to_numpy()
        & (n_sig >= 2)  # one report is never a surge
        & (out["serious_signals"] >= lk["signal_surge_serious"])
    )
    # an early notice: two or more independent reports, surprising for the subject, counted
    # over all reports or over the high/serious ones; the two tails are combined by a weighted
    # Bonferroni (each divided by its share of the test's level, the shares summing to one),
    # and the smaller goes through Benjamini-Hochberg over the kind
    need_n, need_src = int(en["min_reports"]), int(en["min_sources"])
    by_all = (n_sig >= need_n) & (out["signal_sources"] >= need_src)
    by_serious = (out["serious_signals"] >= need_n) & (
        serious_sources.reindex(out.index).fillna(0) >= need_src
    )
    p_all = pd.Series(p, index=everyone).where(by_all.reindex(everyone, fill_value=False), 1.0)
    p_ser = pd.Series(p_serious, index=everyone).where(
        by_serious.reindex(everyone, fill_value=False), 1.0
    )
    serious_share = float(en["serious_share"])
    p_notice = pd.Series(
        np.minimum(
            1.0,
            np.minimum(p_all.to_numpy() / (1.0 - serious_share), p_ser.to_numpy() / serious_share),
        ),
        index=everyone,
    )
    notice_fdr = pd.Series(
        benjamini_hochberg(p_notice.to_numpy(), float(en["fdr"])), index=everyone
    )
    out["notice_p"] = p_notice.reindex(out.index)
    out["early_notice"] = (
        notice_fdr.reindex(out.index).to_numpy(bool) & (by_all | by_serious).to_numpy(bool)
    ) & (kind in en["kinds"])
    return out


def _signal_frames(
    tables: dict[str, pd.DataFrame], t: pd.Timestamp, cfg: dict[str, Any]
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, float]:
    """Signals reported in the window ending at ``t``, those of the baseline period before it,
    and that history's length in windows (shorter where the data starts later)."""
    w_start = t - pd.Timedelta(days=int(cfg["window_days"]))
    b_start = w_start - pd.Timedelta(days=int(cfg["baseline_days"]))
    sig = tables.get("risk_signals")
    sig_base = None
    if sig is not None and not sig.empty:
        sig_base = sig.loc[(sig["reported_at"] > b_start) & (sig["reported_at"] <= w_start)]
        sig = sig.loc[(sig["reported_at"] > w_start) & (sig["reported_at"] <= t)].copy()
    sig_windows = 0.0
    if sig_base is not None:
        first_sig = tables["risk_signals"]["reported_at"].min()
        span = min(float(cfg["baseline_days"]), (w_start - first_sig).total_seconds() / 86400)
        sig_windows = max(span, 0.0) / float(cfg["window_days"])
    return sig, sig_base, sig_windows


def notice_candidates(
    tables: dict[str, pd.DataFrame], as_of: Any, config: dict[str, Any] | None = None
) -> list[Subject]:
    """Subjects whose reports alone make an early notice at ``as_of`` (the cheap nightly check).

    The same report evidence as :func:`assess` (:func:`_signal_evidence` over the same
    universe: every subject of the kind with results in the window or its baseline, or
    reports), without the result statistics; :func:`assess` of these subjects then grades
    them, so a subject whose results already show an excess is graded on its results.
    """
    cfg = config or load_warning_config()
    t = as_utc(as_of)
    sig, sig_base, sig_windows = _signal_frames(tables, t, cfg)
    if sig is None or sig.empty:
        return []
    b_start = t - pd.Timedelta(days=int(cfg["window_days"]) + int(cfg["baseline_days"]))
    joined = _joined_inspections(tables, _JOIN_COLUMNS)
    insp_all = joined.loc[(joined["inspected_at"] > b_start) & (joined["inspected_at"] <= t)]
    found: list[Subject] = []
    for kind in cfg["early_notice"]["kinds"]:
        s = signal_matches(sig, kind)
        if not len(s):
            continue
        universe = pd.Index(subject_keys(insp_all, kind).dropna().unique())
        sb = signal_matches(sig_base, kind) if sig_base is not None and len(sig_base) else None
        ev = _signal_evidence(s, sb, universe, sig_windows, kind, cfg)
        found += [Subject.parse(kind, str(k)) for k in ev.index[ev["early_notice"]]]
    return found


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


def _kind_evidence(
    recent: pd.DataFrame,
    base: pd.DataFrame,
    sig: pd.DataFrame | None,
    sig_base: pd.DataFrame | None,
    sig_windows: float,
    kind: str,
    global_rate: float,
    u_start: pd.Timestamp,
    cfg: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series, tuple[float, float]]:
    """Every subject of a kind with results in the window: counts, baseline, expectation and
    the FDR gate; the kind's signal evidence; signal weights by channel and by mapping rule;
    the kind's prior."""
    lk = cfg["likelihood"]
    r = recent.assign(key=subject_keys(recent, kind)).dropna(subset=["key"])
    base_keys = subject_keys(base, kind)
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
    # the kind's pooled prior of a subject's observed/expected ratio (gamma, by moments
    # over every subject with a baseline): how far one subject's own history is trusted
    smr_prior = gamma_prior_moments(bg["bad"].sum().to_numpy(), bg["p_exp"].sum().to_numpy())
    universe = stats.index.union(bg.size().index)

    sig_stats = pd.DataFrame()
    chan = pd.Series(dtype="float64")
    rules = pd.Series(dtype="float64")
    if sig is not None and not sig.empty:
        s = signal_matches(sig, kind)
        if len(s):
            sb = None
            if sig_base is not None and len(sig_base):
                sb = signal_matches(sig_base, kind)
            sig_stats = _signal_evidence(s, sb, universe, sig_windows, kind, cfg)
            chan = s.groupby(["key", "channel"])["weight"].sum()
            rule = s["mapping_rule"] if "mapping_rule" in s else pd.Series(pd.NA, index=s.index)
            rules = s.assign(rule=rule.fillna("hs_code")).groupby(["key", "rule"])["weight"].sum()
    counts = ["n", "k", "e", "n_base", "k_base", "e_base"]
    stats[counts] = stats[counts].astype("float64").fillna(0.0)
    window_expectation(stats, global_rate, cfg)
    stats["fdr_ok"] = True
    stats["excess_p"] = 1.0
    stats["alone_alpha"] = 0.0
    fdr = float(lk.get("fdr") or 0.0)
    if len(stats):
        # over every subject of this kind with enough results, whichever are reported:
        # the tail probability of the window's nonconforming count under the subject's
        # gamma-Poisson predictive (its own baseline ratio, the kind's pooled prior, this
        # window's mix-adjusted expected count); no bad result is no excess (p = 1)
        tested = stats["n"] >= lk["min_inspected"]
        st = stats.loc[tested]
        p_excess, _ = negative_binomial_tail(
            st["k"].to_numpy(),
            st["k_base"].to_numpy(),
            st["e_base"].to_numpy(),
            st["e"].to_numpy(),
            *smr_prior,
        )
        n_tested = int(tested.sum())
        stats.loc[tested[tested].index, "excess_p"] = p_excess
        stats["fdr_tested"] = n_tested
        # results alone corroborate an excess when chance gives so extreme a window to one
        # subject of the kind no more than results_alone_per_year times a year: every tested
        # subject has 365 / window_days fresh windows a year (docs/warnings.md)
        windows_a_year = 365.0 / float(cfg["window_days"])
        per_year = float(cfg["corroboration"]["results_alone_per_year"])
        stats["alone_alpha"] = per_year / max(n_tested * windows_a_year, 1.0)
        if fdr > 0:
            ok = pd.Series(False, index=stats.index)
            ok[tested[tested].index] = benjamini_hochberg(p_excess, fdr)
            stats["fdr_ok"] = ok
    return stats, sig_stats, chan, rules, smr_prior


# per-kind evidence of the latest assessment time: an assessment of chosen subjects right after
# a full one on the same frames at the same time (a replay's re-assessment of open warnings)
# reuses it. The frames are held, so their identity cannot be taken by new objects.
_EVIDENCE_CACHE: dict[str, Any] = {"frames": (), "key": None, "kinds": {}}


def _cached_kind_evidence(
    frames: tuple[Any, ...], key: tuple[Any, ...], kind: str, compute: Any
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series, tuple[float, float]]:
    c = _EVIDENCE_CACHE
    same = len(c["frames"]) == len(frames) and all(
        a is b for a, b in zip(c["frames"], frames, strict=True)
    )
    if not same or c["key"] != key:
        c.update(frames=frames, key=key, kinds={})
    if kind not in c["kinds"]:
        c["kinds"][kind] = compute()
    stats, sig_stats, chan, rules, prior = c["kinds"][kind]
    return stats.copy(), sig_stats.copy(), chan, rules, prior


def assess(
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    config: dict[str, Any] | None = None,
    scores: pd.DataFrame | None = None,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
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
    t = as_utc(as_of)
    w_start = t - pd.Timedelta(days=int(cfg["window_days"]))
    b_start = w_start - pd.Timedelta(days=int(cfg["baseline_days"]))
    u_start = t - pd.Timedelta(days=int(cfg["urgency_days"]))
    lk = cfg["likelihood"]

    decl = tables["declarations"]
    cols = list(_JOIN_COLUMNS)
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

    sig, sig_base, sig_windows = _signal_frames(tables, t, cfg)
    score_map: pd.Series | None = None
    overall_score = None
    if scores is not None and len(scores):
        score_map = scores.set_index("declaration_id")["probability"].astype("float64")
        in_w = score_map.reindex(decl_w["declaration_id"]).dropna()
        overall_score = float(in_w.mean()) if len(in_w) else None

    wanted = {s.kind for s in subjects} if subjects else set(kinds)
    results: list[Assessment] = []
    frames = tuple(tables.get(n) for n in ("declarations", "inspections", "risk_signals"))
    cfg_id = repr(cfg)  # a configuration changed in place is another configuration
    for kind in SUBJECT_KINDS:
        if kind not in wanted:
            continue
        stats, sig_stats, chan, rules, smr_prior = _cached_kind_evidence(
            frames,
            (t, cfg_id),
            kind,
            lambda kind=kind: _kind_evidence(
                recent, base, sig, sig_base, sig_windows, kind, global_rate, u_start, cfg
            ),
        )
        if subjects:
            keys = [sub.key_str for sub in subjects if sub.kind == kind]
            stats = stats.reindex(stats.index.union(pd.Index(keys)))
            stats = stats.loc[keys]
        elif len(sig_stats):
            alone = sig_stats.index[sig_stats["early_notice"]]
            stats = stats.reindex(stats.index.union(alone))
        if not len(sig_stats):
            sig_stats = pd.DataFrame(columns=list(SIGNAL_EVIDENCE), dtype="float64")
        stats = stats.join(sig_stats[list(SIGNAL_EVIDENCE)], how="left")
        for flag in ("surge", "early_notice"):
            stats[flag] = stats[flag].astype("boolean").fillna(False).astype(bool)
        stats["signal_p"] = stats["signal_p"].astype("float64").fillna(1.0)
        stats["notice_p"] = stats["notice_p"].astype("float64").fillna(1.0)
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
            "signal_sources",
        ]
        stats[num] = stats[num].astype("float64").fillna(0.0)
        stats["fdr_ok"] = stats["fdr_ok"].astype("boolean").fillna(False).astype(bool)
        stats["excess_p"] = stats["excess_p"].astype("float64").fillna(1.0)
        stats["alone_alpha"] = stats["alone_alpha"].astype("float64").fillna(0.0)
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
            candidates |= stats["early_notice"]
            stats = stats[candidates]
        if stats.empty:
            continue

        # scope of the candidates only (cheap): declarations in the window of each subject
        dk = subject_keys(decl_w, kind)
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
            by_rule: dict[str, float] = {}
            if len(sig_stats) and row["signals"] > 0:
                try:
                    sub = chan.xs(str(key), level="key")
                    chans = {str(c): int(round(v)) for c, v in sub.items()}
                    by_rule = {
                        str(r): round(float(v), 3)
                        for r, v in rules.xs(str(key), level="key").items()
                    }
                except KeyError:
                    chans = {}
            a = _grade(Subject.parse(kind, str(key)), row, cfg, overall_score, chans)
            a.signal_rules = by_rule
            results.append(a)

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
    n_sig, expected = float(row["signals"]), float(row["signals_expected"])
    surge = bool(row["surge"])
    sources = int(row.get("signal_sources", 0))
    alone = False
    if like == 0 and bool(row.get("early_notice", False)):
        # sparse, independent reports about a subject that is hardly ever reported on: a
        # report-driven Ⅳ notice to ports, awaiting results (docs/warnings.md)
        like, alone = 1, True
        notes.append(
            f"early notice: {n_sig:g} reports ({serious} high/serious) from {sources} "
            f"independent channels/sources vs {expected:.2f} expected (P = "
            f"{float(row.get('notice_p', 1.0)):.1e}, the smaller tail of all and of "
            "high/serious reports, each over its share of the level); report-driven, "
            "awaiting results"
        )
    elif like > 0 and (surge or serious >= lk["signal_bump_count"]):
        why = (
            f"signal surge ({n_sig:g} vs {expected:.1f} expected)"
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
    sig_sev = 2 if (serious >= lk["signal_bump_count"] or surge or alone) else 1
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
        excess_p = float(row.get("excess_p", 1.0))
        alpha = float(row.get("alone_alpha", 0.0))
        corroborated = (
            excess_p <= alpha
            or sev >= int(co["min_severity"])
            or surge
            or serious >= int(co["min_serious_signals"])
        )
        if not corroborated:
            notes.append(
                f"rate excess not corroborated ({k} bad, P = {excess_p:.1e} above the "
                f"results-alone level {alpha:.1e}, severity {sev}, no signals): no warning"
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
        signal_p=float(row.get("signal_p", 1.0)),
        notice_p=float(row.get("notice_p", 1.0)),
        signal_sources=sources,
        report_driven=alone,
        reports_make_notice=bool(row.get("early_notice", False)),
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
        excess_p=float(row.get("excess_p", 1.0)),
        results_alone_alpha=float(row.get("alone_alpha", 0.0)),
        notes=notes,
    )


@dataclass
class NoticeTest:
    """The results since a report-driven notice against its subject's own baseline.

    ``inspected`` / ``nonconforming``: results of the subject's declarations inspected after the
    notice; ``expected``: what they would show at the subject's own rate before the reports
    (each inspection's stratum rate times the subject's standardised ratio, shrunk towards the
    kind's pooled prior); ``p``: the tail probability of ``nonconforming`` under that
    gamma-Poisson predictive; ``confirmed``: passed Benjamini-Hochberg over the notices open
    at this review (``early_notice.confirm_fdr``)."""

    warning_id: str
    inspected: int
    nonconforming: int
    expected: float
    baseline_inspected: int
    p: float
    family: int = 1
    confirmed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self, fdr: float) -> str:
        return (
            f"results since the notice: {self.nonconforming}/{self.inspected} nonconforming vs "
            f"{self.expected:.2f} expected at the subject's own earlier rate "
            f"({self.baseline_inspected} inspections before the reports), P = {self.p:.1e}; "
            f"Benjamini-Hochberg over the {self.family} open notice(s) at FDR {fdr:g}: "
            + ("confirmed" if self.confirmed else "not confirmed")
        )


def notice_tests(
    tables: dict[str, pd.DataFrame],
    notices: list[tuple[str, Subject, Any]],
    as_of: Any,
    config: dict[str, Any] | None = None,
) -> dict[str, NoticeTest]:
    """Test the results since each open report-driven notice (docs/warnings.md, "Confirmed by
    its own results").

    A notice is one hypothesis decided in advance: "this subject's results since the reports
    exceed its own earlier rate". So it is tested once against that subject's own baseline,
    and the false-discovery control runs over the open notices only, not over every subject of
    the kind (which a fresh full assessment would do, and which buries a single subject with
    a clear excess among thousands tested).

    Parameters
    ----------
    notices
        ``(warning_id, subject, notice_time)`` of every open report-driven notice.

    Returns
    -------
    dict
        warning id -> :class:`NoticeTest`.
    """
    cfg = config or load_warning_config()
    if not notices:
        return {}
    t = as_utc(as_of)
    lk = cfg["likelihood"]
    joined = _joined_inspections(tables, _JOIN_COLUMNS)
    strata = [c for c in lk.get("mix_strata", []) if c in joined.columns]
    prior_s = float(lk.get("stratum_prior", 20))
    window = pd.Timedelta(days=int(cfg["window_days"]))
    span = pd.Timedelta(days=int(cfg["baseline_days"]))
    out: dict[str, NoticeTest] = {}
    for wid, subject, since in notices:
        s0 = as_utc(since)
        # the baseline is what the notice's own assessment used: the year before its window,
        # so the reports' weeks (and any early results of an outbreak) are not "normal"
        b_end = s0 - window
        base = joined.loc[
            (joined["inspected_at"] > b_end - span) & (joined["inspected_at"] <= b_end)
        ]
        after = joined.loc[(joined["inspected_at"] > s0) & (joined["inspected_at"] <= t)]
        global_rate = float(base["bad"].mean()) if len(base) else 0.05
        if not np.isfinite(global_rate) or global_rate <= 0:
            global_rate = 0.05
        base_keys = subject_keys(base, subject.kind)
        bg = base.assign(key=base_keys, p_exp=_expected_rates(base, base, strata, prior_s,
                                                              global_rate)).dropna(subset=["key"])  # fmt: skip
        by_key = bg.groupby("key")
        shape, rate = gamma_prior_moments(
            by_key["bad"].sum().to_numpy(np.float64), by_key["p_exp"].sum().to_numpy(np.float64)
        )
        own = bg[bg["key"] == subject.key_str]
        mine = after.loc[
            (subject_keys(after, subject.kind) == subject.key_str).fillna(False).to_numpy(bool)
        ]
        e = float(_expected_rates(base, mine, strata, prior_s, global_rate).sum())
        k = int(mine["bad"].sum())
        tail, mean = negative_binomial_tail(
            np.array([k], dtype=np.float64),
            np.array([float(own["bad"].sum())]),
            np.array([float(own["p_exp"].sum())]),
            np.array([e]),
            shape,
            rate,
        )
        out[wid] = NoticeTest(wid, len(mine), k, float(mean[0]), len(own), float(tail[0]))
    fdr = float(cfg["early_notice"]["confirm_fdr"])
    ids = list(out)
    passed = benjamini_hochberg(np.array([out[i].p for i in ids]), fdr)
    for i, ok in zip(ids, passed, strict=True):
        out[i].family = len(ids)
        out[i].confirmed = bool(ok) and out[i].nonconforming > 0
    return out
