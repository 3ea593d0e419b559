"""Every feature declared once: name, entity, aggregation, window, dtype, descriptions.

The same declarations drive the offline build (``features.build``), the snapshot
(``features.snapshot``) and the online assembly (``features.online``); the model bundle carries the
list of names, so serving never re-types it.

Names follow ``<entity>_<aggregation>_<window>``. Declaration attributes that have no window use
the pseudo-entity ``decl`` and the window ``now``. All features are float64 (NaN for missing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from features.contract import (
    CREDIT_RATINGS,
    DIRECTIONS,
    ENTERPRISE_TYPES,
    SIGNAL_CHANNELS,
    SIGNAL_SEVERITIES,
    TRADE_MODES,
    TRANSPORT_MODES,
)

# 2: the enterprise's declaration behaviour (certificate shares, unit-value ratios, signal load).
# 3: the declaration's own data-quality issue count (contract 1.1).
FEATURE_SET_VERSION = 3

DAY_NS = 86_400 * 1_000_000_000
# Window name -> length in days (None: all history before the declaration).
WINDOWS: dict[str, int | None] = {"30d": 30, "90d": 90, "365d": 365, "all": None}
LONGEST_WINDOW_NS = 365 * DAY_NS
WINDOW_ZH = {"30d": "近30天", "90d": "近90天", "365d": "近365天", "all": "全部历史"}
WINDOW_EN = {
    "30d": "last 30 days",
    "90d": "last 90 days",
    "365d": "last 365 days",
    "all": "all history",
}

# Empirical-Bayes smoothing: the prior mean is the parent level's smoothed rate (estimated from the
# data, point in time); the prior strength is a fixed number of pseudo-inspections.
PRIOR_STRENGTH = 10.0
# HS6 unit-value statistics need at least this many earlier declarations.
MIN_UNIT_VALUE_COUNT = 5
# A declaration is "low-valued" when its unit value is below two thirds of the HS6 median
# (log ratio below ln(2/3)), a classic undervaluation indicator.
UV_LOW_LOG_RATIO = math.log(2 / 3)
# Calendar features (month, weekday, hour) are read in the deployment's local time.
CALENDAR_TZ = "Asia/Shanghai"

# Ordinal codes: position in the contract vocabulary (credit tiers ordered from best to worst).
CREDIT_TIER_CODES = {r: float(i) for i, r in enumerate(CREDIT_RATINGS)}
VOCABULARIES: dict[str, tuple[str, ...]] = {
    "direction": DIRECTIONS,
    "trade_mode": TRADE_MODES,
    "transport_mode": TRANSPORT_MODES,
    "enterprise_type": ENTERPRISE_TYPES,
    "credit_rating": CREDIT_RATINGS,
}


@dataclass(frozen=True)
class FeatureSpec:
    """One declared feature."""

    name: str
    entity: str
    aggregation: str
    window: str
    dtype: str
    description_zh: str
    description_en: str

    def to_dict(self) -> dict[str, str]:
        """Plain dict (for JSON, bundles and the API)."""
        return asdict(self)


@dataclass(frozen=True)
class Entity:
    """A history key: one or more declaration fields (HS prefixes are derived from ``hs_code``)."""

    name: str
    fields: tuple[str, ...]
    zh: str
    en: str
    # Entities whose smoothed rate is the prior mean (mean of them); () means the global rate.
    parents: tuple[str, ...] = ()


ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("ent", ("enterprise_id",), "企业", "enterprise"),
        Entity("dcl", ("declarant_id",), "申报单位", "declarant"),
        Entity("osp", ("overseas_party_id",), "境外关联方", "overseas party"),
        Entity("hs2", ("hs2",), "HS2章", "HS chapter (2 digits)"),
        Entity("hs4", ("hs4",), "HS4品目", "HS heading (4 digits)", ("hs2",)),
        Entity("hs6", ("hs6",), "HS6子目", "HS subheading (6 digits)", ("hs4",)),
        Entity("org", ("origin_country",), "原产国", "origin country"),
        Entity("port", ("port_code",), "申报口岸", "port of declaration"),
        Entity(
            "ent_x_hs4", ("enterprise_id", "hs4"), "企业×HS4", "enterprise x HS4", ("ent", "hs4")
        ),
        Entity(
            "hs4_x_org", ("hs4", "origin_country"), "HS4×原产国", "HS4 x origin", ("hs4", "org")
        ),
        Entity(
            "ent_x_org",
            ("enterprise_id", "origin_country"),
            "企业×原产国",
            "enterprise x origin",
            ("ent", "org"),
        ),
        Entity(
            "osp_x_hs4",
            ("overseas_party_id", "hs4"),
            "境外关联方×HS4",
            "overseas party x HS4",
            ("osp", "hs4"),
        ),
    )
}

# Aggregation -> (zh, en) templates.
AGGREGATIONS: dict[str, tuple[str, str]] = {
    "decl_cnt": ("此前申报数", "number of earlier declarations"),
    "insp_cnt": ("已知查验结果数", "number of inspection results known"),
    "nc_cnt": ("不合格数", "number of nonconforming results"),
    "ncmaj_cnt": ("重大及严重不合格数", "number of major or critical nonconforming results"),
    "nc_rate_eb": (
        "经验贝叶斯平滑不合格率（向上级收缩）",
        "nonconformity rate smoothed towards its parent level (empirical Bayes)",
    ),
    "rand_share": ("随机抽查占查验比例", "share of random inspections among inspections"),
    "days_since_nc": ("距上次不合格天数", "days since the last nonconforming result"),
    "days_since_first": ("距首次申报天数", "days since the first declaration"),
    "cert_share": (
        "此前申报附第三方检验报告的比例",
        "share of its earlier declarations with an accepted third-party inspection report",
    ),
    "legal_cert_share": (
        "此前法检商品申报附第三方检验报告的比例",
        "share of its earlier legal-inspection declarations with an accepted third-party "
        "inspection report",
    ),
    "uv_mean": (
        "此前申报单位货值相对HS6中位数对数比的均值",
        "mean of hs6_uv_log_ratio_month (log unit value minus the HS6 median) over its earlier "
        "declarations that have one",
    ),
    "uv_low_share": (
        "此前申报单位货值低于HS6中位数三分之二的比例",
        "share of its earlier declarations (those with hs6_uv_log_ratio_month) declared below "
        "two thirds of the HS6 median unit value",
    ),
    "sig_per_decl": (
        "风险信息数与此前申报数之比",
        "risk signals naming it per earlier declaration",
    ),
}
# Declaration behaviour over the entity's earlier declarations (all history only): aggregation ->
# (numerator, denominator), each a sum over those declarations of a per-declaration term
# (``features.build.behaviour_terms``); "decl" counts them.
BEHAVIOUR_RATIOS: dict[str, tuple[str, str]] = {
    "cert_share": ("cert", "decl"),
    "legal_cert_share": ("legal_cert", "legal"),
    "uv_mean": ("uv_sum", "uv_n"),
    "uv_low_share": ("uv_low", "uv_n"),
}

_FULL = {
    "decl_cnt": ("30d", "90d", "365d", "all"),
    "insp_cnt": ("365d", "all"),
    "nc_cnt": ("90d", "365d", "all"),
    "ncmaj_cnt": ("365d", "all"),
    "nc_rate_eb": ("365d", "all"),
    "rand_share": ("all",),
    "days_since_nc": ("all",),
    "days_since_first": ("all",),
}
_MEDIUM = {
    "decl_cnt": ("30d", "365d", "all"),
    "insp_cnt": ("365d", "all"),
    "nc_cnt": ("365d", "all"),
    "ncmaj_cnt": ("all",),
    "nc_rate_eb": ("365d", "all"),
    "days_since_nc": ("all",),
    "days_since_first": ("all",),
}
_SMALL = {
    "decl_cnt": ("30d", "365d"),
    "insp_cnt": ("365d",),
    "nc_cnt": ("365d",),
    "nc_rate_eb": ("365d", "all"),
}
# The enterprise's own declaration behaviour: classic customs risk indicators that carry
# information its few inspection results do not.
_ENT_BEHAVIOUR = {
    "cert_share": ("all",),
    "legal_cert_share": ("all",),
    "uv_mean": ("all",),
    "uv_low_share": ("all",),
    "sig_per_decl": ("365d",),
}
# Categorical extra attributes are entities too (no vocabulary has to travel with the model).
_EXTRA = {
    "decl_cnt": ("365d", "all"),
    "insp_cnt": ("all",),
    "nc_rate_eb": ("365d", "all"),
}
# Which (aggregation, windows) each entity emits. Every entity has nc_rate_eb for 365d and all:
# children use them as priors.
ENTITY_AGGREGATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "ent": {**_FULL, **_ENT_BEHAVIOUR},
    "osp": _FULL,
    "hs6": _FULL,
    "ent_x_hs4": _FULL,
    "dcl": _MEDIUM,
    "hs4": _MEDIUM,
    "org": _MEDIUM,
    "hs4_x_org": _MEDIUM,
    "ent_x_org": _MEDIUM,
    "osp_x_hs4": _MEDIUM,
    "hs2": _SMALL,
    "port": _SMALL,
}
RATE_WINDOWS = ("365d", "all")

NOVELTY = (
    ("ent", "本企业首次申报", "first declaration of this enterprise"),
    ("ent_x_hs4", "本企业首次申报该HS4", "first declaration of this enterprise for this HS4"),
    (
        "ent_x_org",
        "本企业首次自该原产国申报",
        "first declaration of this enterprise from this origin",
    ),
)

# Risk signals: matched when every subject field the signal names matches the declaration
# (hs_code as a prefix). Routes: which subject field the signal names.
SIGNAL_ROUTES = {
    "ent": ("enterprise_id", "企业", "the enterprise"),
    "osp": ("overseas_party_id", "境外关联方", "the overseas party"),
    "org": ("origin_country", "原产国", "the origin country"),
    "hs": ("hs_code", "HS编码前缀", "an HS prefix"),
}
SIGNAL_ROUTE_WINDOWS: dict[str, tuple[str, ...]] = {
    "ent": ("90d", "365d"),
    "osp": ("90d", "365d"),
    "org": ("90d", "365d"),
}
SIGNAL_ROUTE_WINDOWS["hs"] = ("30d", "90d", "365d")
SIGNAL_ALL_WINDOWS = ("30d", "90d", "365d")
SIGNAL_CHANNEL_WINDOWS = ("365d",)
SIGNAL_SEVERITY_WINDOWS = ("90d", "365d")
SIGNAL_WINDOWS = ("30d", "90d", "365d")

# Features that are the ratio of two other features (NaN when the denominator is 0 or NaN). Every
# path computes them from those two with ``features.build.ratio_or_nan``, so they cannot drift.
RATIO_FEATURES: dict[str, tuple[str, str]] = {
    "ent_sig_per_decl_365d": ("sig_ent_cnt_365d", "ent_decl_cnt_365d"),
}


def _agg_feature(entity: Entity, agg: str, window: str) -> FeatureSpec:
    azh, aen = AGGREGATIONS[agg]
    wzh, wen = WINDOW_ZH[window], WINDOW_EN[window]
    if agg == "nc_rate_eb":
        if entity.parents:
            pzh = "、".join(ENTITIES[p].zh for p in entity.parents)
            pen = " and ".join(ENTITIES[p].en for p in entity.parents)
        else:
            pzh, pen = "全部查验", "all inspections"
        zh = f"{entity.zh}{wzh}不合格率，经验贝叶斯向{pzh}收缩"
        en = f"{entity.en}: nonconformity rate, {wen}, smoothed towards {pen} (empirical Bayes)"
    elif agg in ("days_since_nc", "days_since_first", *BEHAVIOUR_RATIOS):
        zh, en = f"{entity.zh}{azh}", f"{entity.en}: {aen}"
    elif agg == "sig_per_decl":
        zh, en = f"{wzh}指向{entity.zh}的{azh}", f"{entity.en}: {aen}, {wen}"
    else:
        zh, en = f"{entity.zh}{wzh}{azh}", f"{entity.en}: {aen}, {wen}"
    return FeatureSpec(f"{entity.name}_{agg}_{window}", entity.name, agg, window, "float64", zh, en)


def _decl_features() -> list[FeatureSpec]:
    def f(name: str, agg: str, zh: str, en: str, entity: str = "decl", window: str = "now"):
        return FeatureSpec(name, entity, agg, window, "float64", zh, en)

    def codes(vocab: tuple[str, ...]) -> str:
        return ", ".join(f"{i}={v}" for i, v in enumerate(vocab))

    return [
        f(
            "decl_direction_code_now",
            "code",
            "进出口方向代码",
            f"direction code ({codes(DIRECTIONS)})",
        ),
        f(
            "decl_trade_mode_code_now",
            "code",
            "贸易方式代码",
            f"trade mode code ({codes(TRADE_MODES)})",
        ),
        f(
            "decl_transport_mode_code_now",
            "code",
            "运输方式代码（缺失为空）",
            f"transport mode code ({codes(TRANSPORT_MODES)}; NaN if missing)",
        ),
        f(
            "decl_legal_inspection_flag_now",
            "flag",
            "法检目录商品（1/0）",
            "legal-inspection goods (1/0)",
        ),
        f(
            "decl_third_party_cert_flag_now",
            "flag",
            "附第三方检验报告（采信，1/0）",
            "accepted third-party inspection report attached (1/0)",
        ),
        f(
            "decl_month_now",
            "calendar",
            "申报月份（北京时间）",
            "month of declaration (local time)",
        ),
        f(
            "decl_weekday_now",
            "calendar",
            "申报星期（0=周一，北京时间）",
            "weekday of declaration (0=Monday, local time)",
        ),
        f("decl_hour_now", "calendar", "申报小时（北京时间）", "hour of declaration (local time)"),
        f("decl_log_value_now", "log", "申报货值对数 ln(1+美元)", "log declared value ln(1+USD)"),
        f("decl_log_weight_now", "log", "净重对数 ln(1+千克)", "log net weight ln(1+kg)"),
        f(
            "decl_log_unit_value_now",
            "log",
            "单位货值对数 ln(美元/千克)",
            "log unit value ln(USD/kg) (NaN unless value and weight > 0)",
        ),
        f(
            "decl_dq_issue_cnt_now",
            "dq_cnt",
            "本申报的数据质量问题数（可选字段值无效、按缺失处理）",
            "number of data-quality issues of this declaration (invalid optional values, "
            "read as missing; contract 1.1)",
        ),
        f(
            "hs6_uv_log_ratio_month",
            "uv_log_ratio",
            "单位货值相对同HS6中位数的对数比（当月初冻结的此前全部申报）",
            "log unit value minus the log median of the same HS6 (all earlier declarations, "
            "frozen at the start of the UTC month)",
            "hs6",
            "month",
        ),
        f(
            "hs6_uv_z_month",
            "uv_z",
            "单位货值对数在同HS6内的Z分数（当月初冻结）",
            "z-score of log unit value within the same HS6 (frozen at the start of the UTC month)",
            "hs6",
            "month",
        ),
        f(
            "ent_credit_tier_at",
            "ordinal",
            f"申报时有效的企业信用等级（{codes(CREDIT_RATINGS)}）",
            f"enterprise credit tier in force at declaration ({codes(CREDIT_RATINGS)})",
            "ent",
            "at",
        ),
        f(
            "ent_type_code_static",
            "code",
            f"企业类型代码（{codes(ENTERPRISE_TYPES)}）",
            f"enterprise type code ({codes(ENTERPRISE_TYPES)}; NaN if unknown)",
            "ent",
            "static",
        ),
        f(
            "ent_age_days_at",
            "age",
            "企业注册至申报的天数",
            "days from enterprise registration to declaration",
            "ent",
            "at",
        ),
    ]


def _signal_features() -> list[FeatureSpec]:
    out = []
    for w in SIGNAL_ALL_WINDOWS:
        out.append(
            FeatureSpec(
                f"sig_all_cnt_{w}",
                "sig",
                "cnt",
                w,
                "float64",
                f"{WINDOW_ZH[w]}匹配本申报的风险信息数",
                f"risk signals matching this declaration, {WINDOW_EN[w]}",
            )
        )
    for route, (_, rzh, ren) in SIGNAL_ROUTES.items():
        for w in SIGNAL_ROUTE_WINDOWS[route]:
            out.append(
                FeatureSpec(
                    f"sig_{route}_cnt_{w}",
                    f"sig_{route}",
                    "cnt",
                    w,
                    "float64",
                    f"{WINDOW_ZH[w]}指向{rzh}的匹配风险信息数",
                    f"matching risk signals naming {ren}, {WINDOW_EN[w]}",
                )
            )
    for ch in SIGNAL_CHANNELS:
        for w in SIGNAL_CHANNEL_WINDOWS:
            out.append(
                FeatureSpec(
                    f"sig_{ch}_cnt_{w}",
                    "sig",
                    f"channel_{ch}",
                    w,
                    "float64",
                    f"{WINDOW_ZH[w]}渠道为 {ch} 的匹配风险信息数",
                    f"matching risk signals from channel {ch}, {WINDOW_EN[w]}",
                )
            )
    for sev in SIGNAL_SEVERITIES:
        for w in SIGNAL_SEVERITY_WINDOWS:
            out.append(
                FeatureSpec(
                    f"sig_sev_{sev}_cnt_{w}",
                    "sig",
                    f"severity_{sev}",
                    w,
                    "float64",
                    f"{WINDOW_ZH[w]}严重程度为 {sev} 的匹配风险信息数",
                    f"matching risk signals of severity {sev}, {WINDOW_EN[w]}",
                )
            )
    return out


def extra_entity_name(attribute: str) -> str:
    """Entity name of a categorical extra attribute."""
    return f"attr_{attribute}"


def entity_aggregations(attributes: dict[str, str] | None = None) -> dict[str, dict]:
    """(entity -> aggregation -> windows) including categorical extra attributes."""
    out = dict(ENTITY_AGGREGATIONS)
    for name, kind in sorted((attributes or {}).items()):
        if kind == "categorical":
            out[extra_entity_name(name)] = _EXTRA
    return out


def _check_attributes(attributes: dict[str, str] | None) -> None:
    for name, kind in (attributes or {}).items():
        if kind not in ("categorical", "numeric"):
            raise ValueError(
                f"attribute {name!r}: kind must be categorical or numeric, not {kind!r}"
            )


def feature_specs(attributes: dict[str, str] | None = None) -> list[FeatureSpec]:
    """Every feature, in model column order.

    Parameters
    ----------
    attributes
        Extra declaration columns declared in a mapping file: name -> ``"categorical"`` or
        ``"numeric"``. Numeric ones pass through; categorical ones become extra entities.

    Returns
    -------
    list of FeatureSpec
    """
    _check_attributes(attributes)
    specs = _decl_features()
    for ent, zh, en in NOVELTY:
        specs.append(
            FeatureSpec(
                f"{ent}_is_new_all", ent, "is_new", "all", "float64", zh + "（1/0）", en + " (1/0)"
            )
        )
    for ent_name, aggs in ENTITY_AGGREGATIONS.items():
        entity = ENTITIES[ent_name]
        for agg, windows in aggs.items():
            specs.extend(_agg_feature(entity, agg, w) for w in windows)
    specs.extend(_signal_features())
    for name, kind in sorted((attributes or {}).items()):
        if kind == "numeric":
            specs.append(
                FeatureSpec(
                    f"attr_{name}_value_now",
                    f"attr_{name}",
                    "value",
                    "now",
                    "float64",
                    f"附加数值属性 {name}",
                    f"extra numeric attribute {name}",
                )
            )
        else:
            entity = Entity(
                extra_entity_name(name), (name,), f"附加属性 {name}", f"extra attribute {name}"
            )
            for agg, windows in _EXTRA.items():
                specs.extend(_agg_feature(entity, agg, w) for w in windows)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), "duplicate feature names"
    for s in specs:
        assert s.aggregation not in BEHAVIOUR_RATIOS or s.window == "all", s.name
        assert s.aggregation != "sig_per_decl" or s.name in RATIO_FEATURES, s.name
    assert all({a, b} <= set(names) for a, b in RATIO_FEATURES.values())
    return specs


def feature_names(attributes: dict[str, str] | None = None) -> list[str]:
    """Names of :func:`feature_specs`, in order."""
    return [s.name for s in feature_specs(attributes)]


def markdown_table(attributes: dict[str, str] | None = None) -> str:
    """The feature table as Markdown (pasted into ``docs/features.md``; a test keeps it current)."""
    lines = [
        "| # | name | entity | aggregation | window | 说明 | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(feature_specs(attributes), 1):
        lines.append(
            f"| {i} | `{s.name}` | {s.entity} | {s.aggregation} | {s.window} | "
            f"{s.description_zh} | {s.description_en} |"
        )
    return "\n".join(lines) + "\n"
