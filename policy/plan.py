"""The annual risk-monitoring plan: how N monitoring samples are allocated (落实风险监测计划).

Pure maths on a table of plan groups; no I/O. ``serving.plan_inputs`` builds the table from the
store, the model's scores and the warnings; ``guomen plan`` writes the document; the committee
edits and approves it (``serving.plan_store``); serving then draws each group at its rate
(:func:`quota_rate`).

A group is product (HS chapter or HS4, :attr:`PlanConfig.product_level`) x origin x trade mode.
The allocation has two parts (docs/plan.md):

1. **floor**: ``floor_share`` of the samples in proportion to each group's trade volume, at least
   ``min_floor`` per group with trade, so the random sample stays a picture of all trade;
2. **risk**: the rest in proportion to ``volume x score``, where the score is the group's upper
   posterior quantile of the nonconformity rate raised to ``concentration``, times one plus the
   bonuses for an active or recently lifted warning and for new trade forms. The posterior is a
   Beta with the model's expected rate (or the pooled past rate) as prior of strength
   ``prior_strength`` updated by the group's past random results: a group with few results has
   a wide posterior and so a high upper quantile (high *or uncertain* risk).

No group is sampled above ``max_sampling_rate`` of its expected volume. Per group the plan
states the expected nonconformities found (``quota x rate``) and the expected width of the
Wilson interval of its rate at year end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

ProductLevel = Literal["chapter", "hs4"]
GROUP_COLUMNS: tuple[str, ...] = ("product", "origin_country", "trade_mode")
NEW_TRADE_FORMS: tuple[str, ...] = ("cross_border_ecommerce", "market_procurement")
TRADE_FORM_ZH = {
    "cross_border_ecommerce": "跨境电商",
    "market_procurement": "市场采购",
}
# warning subject kinds that name product/origin groups (enterprise warnings are not groups)
GROUP_WARNING_KINDS = ("hs4", "hs4_origin", "origin", "hs_chapter")
# below this many past random results a group's rate is called poorly known in the reasoning
FEW_RESULTS = 30


class PlanError(ValueError):
    """The plan cannot be made as asked (the message says what to change)."""


@dataclass(frozen=True)
class PlanConfig:
    """Every knob of the allocation (defaults documented in docs/plan.md)."""

    product_level: ProductLevel = "chapter"
    floor_share: float = 0.5
    min_floor: int = 1
    prior_strength: float = 50.0
    upper_quantile: float = 0.8
    concentration: float = 2.0
    warning_active_bonus: float = 0.5
    warning_lifted_bonus: float = 0.25
    lifted_within_days: int = 365
    new_trade_form_bonus: float = 0.25
    new_trade_forms: tuple[str, ...] = NEW_TRADE_FORMS
    max_sampling_rate: float = 0.5
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if self.product_level not in ("chapter", "hs4"):
            raise PlanError(f"product_level must be chapter or hs4, not {self.product_level!r}")
        if not 0.0 <= self.floor_share <= 1.0:
            raise PlanError("floor_share must be in [0, 1]")
        if self.min_floor < 0:
            raise PlanError("min_floor must be >= 0")
        if self.prior_strength <= 0:
            raise PlanError("prior_strength must be > 0")
        if not 0.5 <= self.upper_quantile < 1.0:
            raise PlanError("upper_quantile must be in [0.5, 1)")
        if self.concentration < 0:
            raise PlanError("concentration must be >= 0")
        if not 0.0 < self.max_sampling_rate <= 1.0:
            raise PlanError("max_sampling_rate must be in (0, 1]")
        if not 0.5 < self.confidence < 1.0:
            raise PlanError("confidence must be in (0.5, 1)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["new_trade_forms"] = list(self.new_trade_forms)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "new_trade_forms" in known:
            known["new_trade_forms"] = tuple(known["new_trade_forms"])
        return cls(**known)


# ------------------------------------------------------------------------------ groups


def product_of(hs_code: str, level: ProductLevel) -> str:
    """The product group of an HS code: its chapter (2 digits) or its HS4."""
    return str(hs_code)[: 2 if level == "chapter" else 4]


def group_id(product: str, origin: str, trade_mode: str) -> str:
    """The one text key of a plan group (``product/origin/trade_mode``)."""
    return f"{product}/{origin}/{trade_mode}"


def group_of(declaration: Mapping[str, Any], level: ProductLevel) -> str:
    """The plan group of a declaration in contract fields (what serving looks up)."""
    return group_id(
        product_of(str(declaration["hs_code"]), level),
        str(declaration["origin_country"]),
        str(declaration["trade_mode"]),
    )


def group_frame(declarations: pd.DataFrame, level: ProductLevel) -> pd.DataFrame:
    """``product``, ``origin_country``, ``trade_mode`` and ``group_id`` of each declaration."""
    product = declarations["hs_code"].astype("str").str.slice(0, 2 if level == "chapter" else 4)
    origin = declarations["origin_country"].astype("str")
    mode = declarations["trade_mode"].astype("str")
    return pd.DataFrame(
        {
            "product": product.to_numpy(),
            "origin_country": origin.to_numpy(),
            "trade_mode": mode.to_numpy(),
            "group_id": (product + "/" + origin + "/" + mode).to_numpy(),
        },
        index=declarations.index,
    )


def warning_flags(
    groups: pd.DataFrame,
    warnings: Iterable[Mapping[str, Any]],
    as_of: datetime,
    config: PlanConfig,
) -> pd.DataFrame:
    """Which groups a product/origin warning touches: ``warnings_active``, ``warnings_lifted``
    (lifted within ``lifted_within_days`` of ``as_of``), each a ``;``-joined list of ids.

    A warning on an HS4 touches the groups of its chapter (chapter level) or that HS4; one on an
    origin touches every product of that origin; ``hs4_origin`` both. Enterprise and overseas
    party warnings are not product groups and are left out.
    """
    product = groups["product"].astype("str")
    origin = groups["origin_country"].astype("str")
    active: list[list[str]] = [[] for _ in range(len(groups))]
    lifted: list[list[str]] = [[] for _ in range(len(groups))]
    horizon = pd.Timestamp(as_of) - pd.Timedelta(days=config.lifted_within_days)
    for w in warnings:
        kind = str(w.get("subject_kind"))
        if kind not in GROUP_WARNING_KINDS:
            continue
        status = str(w.get("status"))
        if status == "active":
            target = active
        elif status == "lifted" and w.get("lifted_at"):
            at = pd.Timestamp(w["lifted_at"])
            at = at.tz_localize("UTC") if at.tzinfo is None else at
            if not (horizon <= at <= pd.Timestamp(as_of)):
                continue
            target = lifted
        else:
            continue
        key = str(w.get("subject_key"))
        if kind == "origin":
            mask = origin == key
        elif kind == "hs_chapter":
            mask = product.str.slice(0, 2) == key
        else:
            hs4, _, country = key.partition("/")
            mask = product == (hs4[:2] if config.product_level == "chapter" else hs4)
            if kind == "hs4_origin":
                mask &= origin == country
        for i in np.flatnonzero(mask.to_numpy()):
            target[i].append(str(w.get("id")))
    return pd.DataFrame(
        {
            "warnings_active": [";".join(sorted(set(x))) for x in active],
            "warnings_lifted": [";".join(sorted(set(x))) for x in lifted],
        },
        index=groups.index,
    )


# ------------------------------------------------------------------------------ maths


def apportion(
    total: int,
    weights: Sequence[float] | np.ndarray,
    minimum: Sequence[int] | np.ndarray | int = 0,
    cap: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Split ``total`` into integers in proportion to ``weights``, each at least ``minimum`` and
    at most ``cap``.

    The exact shares are ``clip(c x weight, minimum, cap)`` with the one ``c`` that makes them sum
    to ``total`` (items at a bound are fixed and the rest share again: water filling); they are
    rounded by largest remainders. Raises :class:`PlanError` when the minimums exceed ``total``;
    when the caps sum below ``total`` every item gets its cap.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise PlanError("weights must be finite and >= 0")
    lo = np.broadcast_to(np.asarray(minimum, dtype=np.int64), (n,)).copy()
    hi = np.full(n, total, dtype=np.int64) if cap is None else np.asarray(cap, np.int64).copy()
    hi = np.maximum(hi, lo)
    if lo.sum() > total:
        raise PlanError(f"the minimums ({int(lo.sum())}) exceed the total ({total})")
    if hi.sum() <= total:
        return hi
    if lo.sum() == total:
        return lo
    # zero weights take part only when the others cannot absorb the total
    w = w + 1e-12 * max(float(w.max(initial=0.0)), 1.0)
    lo_f, hi_f = lo.astype(np.float64), hi.astype(np.float64)
    c_lo, c_hi = 0.0, 1.0
    while np.clip(c_hi * w, lo_f, hi_f).sum() < total:
        c_hi *= 2.0
    for _ in range(200):
        c = 0.5 * (c_lo + c_hi)
        if np.clip(c * w, lo_f, hi_f).sum() < total:
            c_lo = c
        else:
            c_hi = c
    exact = np.clip(c_hi * w, lo_f, hi_f)
    result = np.clip(np.floor(exact + 1e-9).astype(np.int64), lo, hi)
    left = total - int(result.sum())
    if left > 0:
        frac = exact - result
        frac[result >= hi] = -np.inf
        order = np.lexsort((np.arange(n), -frac))  # largest remainder, ties by position
        for i in order[:left]:
            result[i] += 1
    elif left < 0:  # rounding up at the bounds overshot: take back from the largest remainders
        frac = exact - result
        frac[result <= lo] = np.inf
        for i in np.lexsort((np.arange(n), frac))[:-left]:
            result[i] -= 1
    return result


def wilson_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate ``k / n`` (``(nan, nan)`` for ``n == 0``)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Plan:
    """An allocation: one line per group, one per group and port, and how it was made."""

    year: int
    samples: int
    config: PlanConfig
    lines: pd.DataFrame
    ports: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


LINE_COLUMNS: tuple[str, ...] = (
    "group_id", "product", "origin_country", "trade_mode", "volume", "volume_share",
    "model_rate", "past_samples", "past_nonconforming", "estimated_rate", "upper_rate",
    "warnings_active", "warnings_lifted", "new_trade_form", "score", "floor", "risk", "quota",
    "sampling_rate", "expected_nonconforming", "expected_ci_low", "expected_ci_high",
    "expected_ci_width", "reason_zh", "reason_en",
)  # fmt: skip


def allocate(
    groups: pd.DataFrame,
    samples: int,
    year: int,
    config: PlanConfig | None = None,
    ports: pd.DataFrame | None = None,
) -> Plan:
    """Allocate ``samples`` monitoring samples over ``groups``.

    Parameters
    ----------
    groups
        One row per group: ``product``, ``origin_country``, ``trade_mode``, ``volume``
        (declarations expected in the plan year, > 0 for a group with trade), ``model_rate``
        (mean model probability; NaN when unknown), ``past_samples``, ``past_nonconforming``
        (random monitoring results); optional ``warnings_active``, ``warnings_lifted``
        (``;``-joined warning ids, see :func:`warning_flags`).
    samples
        N, the year's monitoring samples.
    year
        The plan year (recorded).
    config
        The allocation's knobs.
    ports
        Optional ``group_id``, ``port_code``, ``volume``: each group's quota is split over its
        ports in proportion to their volume.
    """
    config = config or PlanConfig()
    need = {"product", "origin_country", "trade_mode", "volume", "model_rate", "past_samples",
            "past_nonconforming"}  # fmt: skip
    missing = sorted(need - set(groups.columns))
    if missing:
        raise PlanError(f"plan groups lack columns {missing}")
    if samples <= 0:
        raise PlanError("samples must be > 0")
    g = groups[groups["volume"] > 0].copy().reset_index(drop=True)
    if g.empty:
        raise PlanError("no group has trade: nothing to plan")
    for col in ("warnings_active", "warnings_lifted"):
        if col not in g:
            g[col] = ""
        g[col] = g[col].fillna("").astype("str")
    g["group_id"] = [
        group_id(p, o, t)
        for p, o, t in zip(g["product"], g["origin_country"], g["trade_mode"], strict=True)
    ]
    if g["group_id"].duplicated().any():
        raise PlanError("plan groups must be unique (product, origin, trade mode)")
    g = g.sort_values("group_id", kind="stable").reset_index(drop=True)
    volume = g["volume"].to_numpy(np.float64)
    n_past = g["past_samples"].fillna(0).to_numpy(np.float64)
    k_past = g["past_nonconforming"].fillna(0).to_numpy(np.float64)
    if np.any(k_past > n_past) or np.any(k_past < 0):
        raise PlanError("past_nonconforming must be in [0, past_samples]")
    pooled = (k_past.sum() + 0.5) / (n_past.sum() + 1.0)  # Jeffreys-like: never 0 or 1
    model = g["model_rate"].to_numpy(np.float64)
    prior = np.clip(np.where(np.isfinite(model), model, pooled), 1e-6, 1 - 1e-6)
    a = config.prior_strength * prior + k_past
    b = config.prior_strength * (1 - prior) + (n_past - k_past)
    estimated = a / (a + b)
    upper = stats.beta.ppf(config.upper_quantile, a, b)
    new_form = g["trade_mode"].isin(config.new_trade_forms).to_numpy()
    has_active = (g["warnings_active"] != "").to_numpy()
    has_lifted = (g["warnings_lifted"] != "").to_numpy() & ~has_active
    bonus = (
        1.0
        + config.warning_active_bonus * has_active
        + config.warning_lifted_bonus * has_lifted
        + config.new_trade_form_bonus * new_form
    )
    score = np.power(upper, config.concentration) * bonus
    cap = np.floor(config.max_sampling_rate * volume).astype(np.int64)
    floor_min = np.minimum(config.min_floor, cap.clip(min=0))
    # a group too small for even one sample at the cap still gets its min floor when it has
    # one declaration a year or more (min(1, cap) would otherwise give it none)
    floor_min = np.where((floor_min == 0) & (volume >= 1), min(config.min_floor, 1), floor_min)
    cap = np.maximum(cap, floor_min)
    floor_total = round(config.floor_share * samples)
    if floor_min.sum() > samples:
        raise PlanError(
            f"{len(g)} groups need {int(floor_min.sum())} floor samples but the plan has "
            f"{samples}: raise --samples or use coarser groups (--product-level chapter)"
        )
    floor_total = max(floor_total, int(floor_min.sum()))
    floor = apportion(floor_total, volume, floor_min, cap)
    risk = apportion(samples - int(floor.sum()), volume * score, 0, cap - floor)
    quota = floor + risk
    widths = np.array([wilson_interval(e * q, q, config.confidence)
                       for e, q in zip(estimated, quota, strict=True)])  # fmt: skip
    g["volume_share"] = volume / volume.sum()
    g["past_samples"] = n_past.astype(np.int64)
    g["past_nonconforming"] = k_past.astype(np.int64)
    g["estimated_rate"] = estimated
    g["upper_rate"] = upper
    g["new_trade_form"] = new_form
    g["score"] = score
    g["floor"] = floor
    g["risk"] = risk
    g["quota"] = quota
    g["sampling_rate"] = quota / volume
    g["expected_nonconforming"] = quota * estimated
    g["expected_ci_low"] = widths[:, 0]
    g["expected_ci_high"] = widths[:, 1]
    g["expected_ci_width"] = widths[:, 1] - widths[:, 0]
    reasons = [_reason(row, config) for row in g.itertuples(index=False)]
    g["reason_zh"] = [r[0] for r in reasons]
    g["reason_en"] = [r[1] for r in reasons]
    lines = g[list(LINE_COLUMNS)]
    port_lines = split_ports(lines, ports)
    proportional = proportional_quotas(volume, samples, config)
    summary = {
        "groups": len(lines),
        "samples": int(quota.sum()),
        "floor_samples": int(floor.sum()),
        "risk_samples": int(risk.sum()),
        "volume": float(volume.sum()),
        "expected_nonconforming": float((quota * estimated).sum()),
        "expected_nonconforming_proportional": float((proportional * estimated).sum()),
        "groups_with_active_warning": int(has_active.sum()),
        "groups_new_trade_form": int(new_form.sum()),
        "pooled_past_rate": float(pooled),
    }
    return Plan(year, samples, config, lines.reset_index(drop=True), port_lines, summary)


def proportional_quotas(volume: np.ndarray, samples: int, config: PlanConfig) -> np.ndarray:
    """The volume-proportional plan of the same size (the comparator): ``samples`` split in
    proportion to volume, the same minimum and cap per group."""
    cap = np.maximum(np.floor(config.max_sampling_rate * volume).astype(np.int64), 1)
    minimum = np.minimum(config.min_floor, cap)
    return apportion(samples, volume, minimum, cap)


def split_ports(lines: pd.DataFrame, ports: pd.DataFrame | None) -> pd.DataFrame:
    """Each group's quota over its ports, in proportion to the group's volume at each port."""
    cols = ["group_id", "port_code", "volume", "quota"]
    if ports is None or ports.empty:
        return pd.DataFrame(columns=cols)
    out = []
    by_group = {k: v for k, v in ports.groupby("group_id", sort=False)}
    for gid, quota in zip(lines["group_id"], lines["quota"], strict=True):
        p = by_group.get(gid)
        if p is None or p.empty:
            continue
        p = p.sort_values("port_code", kind="stable")
        q = apportion(int(quota), p["volume"].to_numpy(np.float64))
        out.append(pd.DataFrame({"group_id": gid, "port_code": p["port_code"].to_numpy(),
                                 "volume": p["volume"].to_numpy(), "quota": q}))  # fmt: skip
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def _reason(row: Any, config: PlanConfig) -> tuple[str, str]:
    """The reasoning of one plan line, in Chinese and in English."""
    zh = [f"底数 {row.floor} 份：占贸易量 {row.volume_share:.2%}（{row.volume:,.0f} 票）"]
    en = [f"floor {row.floor}: {row.volume_share:.2%} of trade ({row.volume:,.0f} declarations)"]
    if math.isfinite(row.model_rate):
        zh.append(f"模型预计不合格率 {row.model_rate:.2%}")
        en.append(f"model's expected nonconformity {row.model_rate:.2%}")
    zh.append(f"以往随机抽检 {row.past_samples} 份、不合格 {row.past_nonconforming} 份")
    en.append(f"past random results {row.past_samples}, {row.past_nonconforming} nonconforming")
    if row.past_samples < FEW_RESULTS:
        zh.append("以往结果少，不确定性高")
        en.append("few past results: the rate is uncertain")
    zh.append(f"估计不合格率 {row.estimated_rate:.2%}（{config.upper_quantile:.0%} 上限 "
              f"{row.upper_rate:.2%}）")  # fmt: skip
    en.append(f"estimated rate {row.estimated_rate:.2%} ({config.upper_quantile:.0%} upper "
              f"{row.upper_rate:.2%})")  # fmt: skip
    if row.warnings_active:
        zh.append(f"有效预警 {row.warnings_active}")
        en.append(f"warning in force {row.warnings_active}")
    elif row.warnings_lifted:
        zh.append(f"近期解除的预警 {row.warnings_lifted}")
        en.append(f"recently lifted warning {row.warnings_lifted}")
    if row.new_trade_form:
        zh.append(f"新业态（{TRADE_FORM_ZH.get(row.trade_mode, row.trade_mode)}）")
        en.append(f"new trade form ({row.trade_mode.replace('_', ' ')})")
    if row.risk:
        zh.append(f"风险加样 {row.risk} 份")
        en.append(f"plus {row.risk} risk samples")
    zh.append(f"预计发现不合格 {row.expected_nonconforming:.1f} 份，年末区间宽 "
              f"{row.expected_ci_width:.1%}")  # fmt: skip
    en.append(f"expected nonconforming found {row.expected_nonconforming:.1f}, year-end "
              f"interval width {row.expected_ci_width:.1%}")  # fmt: skip
    return "；".join(zh), "; ".join(en)


def reevaluate(lines: pd.DataFrame, quotas: Mapping[str, int], config: PlanConfig) -> pd.DataFrame:
    """The plan lines after the committee's edits: new quotas, the expected nonconformities and
    the interval widths recomputed (the rates do not change with the quota)."""
    out = lines.copy()
    unknown = sorted(set(quotas) - set(out["group_id"]))
    if unknown:
        raise PlanError(f"unknown plan groups {unknown[:5]}")
    for gid, q in quotas.items():
        if int(q) < 0:
            raise PlanError(f"quota of {gid} must be >= 0")
    new = out["group_id"].map(lambda gid: int(quotas.get(gid, -1)))
    out["quota"] = np.where(new >= 0, new, out["quota"]).astype(np.int64)
    est = out["estimated_rate"].to_numpy(np.float64)
    quota = out["quota"].to_numpy(np.float64)
    out["sampling_rate"] = quota / out["volume"].to_numpy(np.float64)
    out["expected_nonconforming"] = quota * est
    ci = np.array([wilson_interval(e * q, q, config.confidence)
                   for e, q in zip(est, quota, strict=True)])  # fmt: skip
    out["expected_ci_low"], out["expected_ci_high"] = ci[:, 0], ci[:, 1]
    out["expected_ci_width"] = ci[:, 1] - ci[:, 0]
    return out


# ------------------------------------------------------------------------------ serving


def quota_rate(
    quota: float, drawn: float, volume: float, year_elapsed: float, cap: float = 1.0
) -> float:
    """The draw rate that meets a group's quota over the rest of the year.

    ``(quota - drawn) / (volume x (1 - year_elapsed))``, clipped to ``[0, cap]``: 0 once the
    quota is met, higher when the group is behind, lower when ahead.
    """
    left = quota - drawn
    if left <= 0:
        return 0.0
    expected = volume * max(1.0 - year_elapsed, 1e-9)
    if expected <= 0:
        return cap
    return float(min(cap, max(0.0, left / expected)))


def year_elapsed(now: datetime, year: int, tz: str) -> float:
    """Share of the plan year (local calendar year in ``tz``) elapsed at ``now``: 0 before it
    starts, 1 after it ends."""
    start = pd.Timestamp(year=year, month=1, day=1, tz=tz)
    end = pd.Timestamp(year=year + 1, month=1, day=1, tz=tz)
    t = pd.Timestamp(now)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return float(min(1.0, max(0.0, (t - start) / (end - start))))


# ------------------------------------------------------------------------------ documents


CSV_COLUMNS = LINE_COLUMNS


def plan_markdown(plan: Plan, lang: Literal["zh", "en"], top: int | None = None) -> str:
    """The plan as a Markdown document (one table line per group with its reasoning)."""
    s = plan.summary
    lines = plan.lines.sort_values(["quota", "group_id"], ascending=[False, True])
    if top is not None:
        lines = lines.head(top)
    zh = lang == "zh"
    out = []
    if zh:
        out += [f"# {plan.year} 年度风险监测计划（建议）", "",
                f"样本总数 {s['samples']}，分组 {s['groups']}（产品 × 原产地 × 贸易方式，产品按"
                f"{'HS 章' if plan.config.product_level == 'chapter' else 'HS4'}）：底数 "
                f"{s['floor_samples']} 份按贸易量分配，风险加样 {s['risk_samples']} 份。",
                f"预计发现不合格 {s['expected_nonconforming']:.1f} 份（按贸易量比例分配为 "
                f"{s['expected_nonconforming_proportional']:.1f} 份）。", "",
                "| 分组 | 贸易量 | 底数 | 风险加样 | 配额 | 估计不合格率 | 预计发现 | 年末区间宽 | 理由 |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    else:
        out += [f"# Risk-monitoring plan {plan.year} (proposed)", "",
                f"{s['samples']} samples over {s['groups']} groups (product x origin x trade "
                f"mode; product = {'HS chapter' if plan.config.product_level == 'chapter' else 'HS4'}"
                f"): a floor of {s['floor_samples']} in proportion to trade, "
                f"{s['risk_samples']} where risk is high or uncertain.",
                f"Expected nonconforming found {s['expected_nonconforming']:.1f} (a "
                f"volume-proportional plan: {s['expected_nonconforming_proportional']:.1f}).", "",
                "| group | volume | floor | risk | quota | estimated rate | expected found | "
                "year-end CI width | reasoning |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    records: list[dict[str, Any]] = lines.to_dict("records")  # type: ignore[assignment]
    for r in records:
        reason = str(r["reason_zh"] if zh else r["reason_en"]).replace("|", "/")
        out.append(
            f"| {r['group_id']} | {r['volume']:,.0f} | {r['floor']} | {r['risk']} | "
            f"{r['quota']} | {r['estimated_rate']:.2%} | {r['expected_nonconforming']:.1f} | "
            f"{r['expected_ci_width']:.1%} | {reason} |"
        )
    if not plan.ports.empty:
        by_port = plan.ports.groupby("port_code")["quota"].sum().sort_values(ascending=False)
        out += ["", "## 口岸 Ports" if zh else "## Ports", "",
                "| 口岸 | 配额 |" if zh else "| port | quota |", "|---|---:|"]  # fmt: skip
        out += [f"| {p} | {int(q)} |" for p, q in by_port.items()]
    cfg = plan.config
    out += ["", "## 参数 Parameters" if zh else "## Parameters", "",
            "```", *[f"{k}: {v}" for k, v in cfg.to_dict().items()], "```", ""]  # fmt: skip
    return "\n".join(out)
