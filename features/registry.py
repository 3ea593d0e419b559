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


@dataclass(frozen=True)
class KeyColumn:
    """A declaration column whose history can be counted, alone or crossed with others."""

    name: str  # short name used in entity and feature names
    field: str  # declaration field (``hs2``/``hs4``/``hs6`` are prefixes of ``hs_code``)
    zh: str
    en: str
    parent: str | None = None  # coarser level of the same column (HS hierarchy)
    # Short labels inside a cross's description ("HS4 x origin").
    cross_zh: str = ""
    cross_en: str = ""


# Crossable key columns, declared once: every single column is an entity, and any pair (or a
# declared triple) of them is a cross entity with the same point-in-time feature family.
# Categorical extra attributes of a mapping are key columns too (``attr_<name>``).
KEY_COLUMNS: dict[str, KeyColumn] = {
    k.name: k
    for k in (
        KeyColumn("ent", "enterprise_id", "企业", "enterprise", None, "企业", "enterprise"),
        KeyColumn("dcl", "declarant_id", "申报单位", "declarant", None, "申报单位", "declarant"),
        KeyColumn(
            "osp",
            "overseas_party_id",
            "境外关联方",
            "overseas party",
            None,
            "境外关联方",
            "overseas party",
        ),
        KeyColumn("hs2", "hs2", "HS2章", "HS chapter (2 digits)", None, "HS2", "HS2"),
        KeyColumn("hs4", "hs4", "HS4品目", "HS heading (4 digits)", "hs2", "HS4", "HS4"),
        KeyColumn("hs6", "hs6", "HS6子目", "HS subheading (6 digits)", "hs4", "HS6", "HS6"),
        KeyColumn("hsc", "hs_code", "完整商品编码", "full HS code", "hs6", "商品编码", "HS code"),
        KeyColumn("org", "origin_country", "原产国", "origin country", None, "原产国", "origin"),
        KeyColumn("port", "port_code", "申报口岸", "port of declaration", None, "口岸", "port"),
        KeyColumn(
            "trn",
            "transport_mode",
            "运输方式",
            "transport mode",
            None,
            "运输方式",
            "transport mode",
        ),
        KeyColumn("trd", "trade_mode", "贸易方式", "trade mode", None, "贸易方式", "trade mode"),
    )
}
HS_LEVELS = ("hs2", "hs4", "hs6", "hsc")
CROSS_SEP = "_x_"


def _single(key: KeyColumn) -> Entity:
    return Entity(key.name, (key.field,), key.zh, key.en, (key.parent,) if key.parent else ())


def _cross(parts: tuple[KeyColumn, ...]) -> Entity:
    """The cross of key columns (already in canonical order); its prior is the mean of theirs."""
    return Entity(
        CROSS_SEP.join(p.name for p in parts),
        tuple(p.field for p in parts),
        "×".join(p.cross_zh or p.zh for p in parts),
        " x ".join(p.cross_en or p.en for p in parts),
        tuple(p.name for p in parts),
    )


# Today's default set: every single key column that had history features before crosses were
# declared, and the four crosses that were hand-picked then (kept so older bundles still score).
ENTITIES: dict[str, Entity] = {
    e.name: e
    for e in (
        *(_single(KEY_COLUMNS[k]) for k in ("ent", "dcl", "osp", "hs2", "hs4", "hs6", "org")),
        _single(KEY_COLUMNS["port"]),
        *(
            _cross((KEY_COLUMNS[a], KEY_COLUMNS[b]))
            for a, b in (("ent", "hs4"), ("hs4", "org"), ("ent", "org"), ("osp", "hs4"))
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
# Training's first pass over many candidate keys: the strongest members of the family only.
_SCREEN = {
    "decl_cnt": ("365d",),
    "insp_cnt": ("all",),
    "nc_rate_eb": ("365d", "all"),
    "days_since_nc": ("all",),
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


def _agg_feature(
    entity: Entity, agg: str, window: str, attributes: dict[str, str] | None = None
) -> FeatureSpec:
    azh, aen = AGGREGATIONS[agg]
    wzh, wen = WINDOW_ZH[window], WINDOW_EN[window]
    if agg == "nc_rate_eb":
        if entity.parents:
            parents = [entity_definition(p, attributes) for p in entity.parents]
            pzh = "、".join(p.zh for p in parents)
            pen = " and ".join(p.en for p in parents)
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


# Native categoricals: the raw value of a low- or medium-cardinality key column as an integer
# code, from a code map fitted on the training data and frozen in the bundle
# (``features.categorical``); a value outside the map is missing. Categorical extra attributes
# get one too.
CATEGORICAL_KEYS = ("hs2", "hs4", "org", "port")
# Codes of the contract's fixed vocabularies: categorical for LightGBM as they are.
VOCABULARY_CATEGORICALS = (
    "decl_direction_code_now",
    "decl_trade_mode_code_now",
    "decl_transport_mode_code_now",
    "ent_type_code_static",
)


def categorical_feature_name(key: str) -> str:
    """Feature name of the native categorical of key column ``key`` (``decl_hs4_cat_now``)."""
    return f"{key}_cat_now" if key.startswith("attr_") else f"decl_{key}_cat_now"


def categorical_keys(attributes: dict[str, str] | None = None) -> dict[str, KeyColumn]:
    """Key columns with a native categorical feature -> their definition."""
    keys = key_columns(attributes)
    names = [*CATEGORICAL_KEYS, *(extra_entity_name(n) for n in _categorical(attributes))]
    return {categorical_feature_name(k): keys[k] for k in names}


def categorical_specs(attributes: dict[str, str] | None = None) -> list[FeatureSpec]:
    """Specs of the native categorical features (one per :func:`categorical_keys` entry)."""
    return [
        FeatureSpec(
            name,
            "decl",
            "category",
            "now",
            "float64",
            f"{key.zh}类别代码（训练时冻结的代码表，未见过的值为空）",
            f"{key.en} as a category code (code map frozen at training; unseen values NaN)",
        )
        for name, key in categorical_keys(attributes).items()
    ]


def categorical_feature_names(attributes: dict[str, str] | None = None) -> list[str]:
    """Every feature LightGBM treats as categorical (code maps and contract vocabularies)."""
    return [*VOCABULARY_CATEGORICALS, *categorical_keys(attributes)]


def extra_entity_name(attribute: str) -> str:
    """Entity name of a categorical extra attribute."""
    return f"attr_{attribute}"


def _categorical(attributes: dict[str, str] | None) -> list[str]:
    return sorted(n for n, k in (attributes or {}).items() if k == "categorical")


def key_columns(attributes: dict[str, str] | None = None) -> dict[str, KeyColumn]:
    """Every crossable key column: the declared ones and one per categorical extra attribute."""
    out = dict(KEY_COLUMNS)
    for name in _categorical(attributes):
        key = extra_entity_name(name)
        out[key] = KeyColumn(
            key, name, f"附加属性 {name}", f"extra attribute {name}", None, name, name
        )
    return out


def cross_name(*parts: str, attributes: dict[str, str] | None = None) -> str:
    """Canonical name of the cross of key columns ``parts`` (any order): ``hs6_x_org``."""
    keys = key_columns(attributes)
    unknown = [p for p in parts if p not in keys]
    if unknown:
        raise ValueError(f"unknown key column(s) {unknown} (known: {', '.join(keys)})")
    order = list(keys)
    return CROSS_SEP.join(sorted(set(parts), key=order.index))


def entity_definition(name: str, attributes: dict[str, str] | None = None) -> Entity:
    """The entity called ``name``: a key column, or a cross ``a_x_b`` (``_x_c``) of 2-3 of them.

    Raises
    ------
    ValueError
        An unknown column, a repeated column, two HS levels in one cross, or a name not in
        canonical order (:func:`cross_name`).
    """
    if name in ENTITIES:
        return ENTITIES[name]
    keys = key_columns(attributes)
    if name in keys:
        return _single(keys[name])
    parts = name.split(CROSS_SEP)
    if len(parts) not in (2, 3) or any(p not in keys for p in parts):
        raise ValueError(
            f"entity {name!r}: not a key column nor a cross of 2-3 key columns joined by "
            f"{CROSS_SEP!r} (key columns: {', '.join(keys)})"
        )
    if len(set(parts)) != len(parts) or sum(p in HS_LEVELS for p in parts) > 1:
        raise ValueError(
            f"entity {name!r}: a cross needs distinct columns and one HS level at most"
        )
    if cross_name(*parts, attributes=attributes) != name:
        raise ValueError(
            f"entity {name!r}: write it as {cross_name(*parts, attributes=attributes)!r}"
        )
    return _cross(tuple(keys[p] for p in parts))


def default_entities(attributes: dict[str, str] | None = None) -> tuple[str, ...]:
    """The entities of today's feature set: the registry's twelve and every categorical
    attribute (what a bundle without an ``entities`` list was trained on)."""
    return (*ENTITY_AGGREGATIONS, *(extra_entity_name(n) for n in _categorical(attributes)))


def candidate_entities(
    attributes: dict[str, str] | None = None,
    triples: tuple[tuple[str, ...], ...] = (),
    exclude: tuple[str, ...] = (),
) -> tuple[str, ...]:
    """Every single key column, every pair of them (one HS level at most) and the given triples:
    the pool training selects from (``training.select``)."""
    keys = [k for k in key_columns(attributes) if k not in exclude]
    out = list(keys)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if a in HS_LEVELS and b in HS_LEVELS:
                continue
            out.append(cross_name(a, b, attributes=attributes))
    for triple in triples:
        name = cross_name(*triple, attributes=attributes)
        entity_definition(name, attributes)  # validates
        if name not in out:
            out.append(name)
    return tuple(out)


def entity_depth(name: str, attributes: dict[str, str] | None = None) -> int:
    """0 for a root key column; otherwise one more than its deepest parent (computation order)."""
    parents = entity_definition(name, attributes).parents
    return 0 if not parents else 1 + max(entity_depth(p, attributes) for p in parents)


def resolve_entities(
    entities: tuple[str, ...] | list[str] | None, attributes: dict[str, str] | None = None
) -> tuple[str, ...]:
    """The entity set actually built: ``entities`` (None: :func:`default_entities`) plus every
    parent a smoothed rate needs, in feature order (default set first, then the others as
    given). Parents come before children in :func:`computation_order`, not necessarily here."""
    wanted = list(default_entities(attributes) if entities is None else entities)
    seen: set[str] = set()
    closure: list[str] = []

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for parent in entity_definition(name, attributes).parents:
            visit(parent)
        closure.append(name)

    for name in wanted:
        visit(name)
    defaults = [e for e in default_entities(attributes) if e in seen]
    return (*defaults, *(e for e in closure if e not in defaults))


def computation_order(entities: tuple[str, ...], attributes: dict[str, str] | None = None):
    """``entities`` with every parent before its children (smoothed rates need the parent's)."""
    return tuple(sorted(entities, key=lambda e: entity_depth(e, attributes)))


def _aggregations_of(name: str, attributes: dict[str, str] | None, screening: bool) -> dict:
    if name in ENTITY_AGGREGATIONS:
        return ENTITY_AGGREGATIONS[name]
    if screening:
        return _SCREEN
    if name.startswith("attr_") and CROSS_SEP not in name:
        return _EXTRA
    if name in ("trn", "trd"):
        return _SMALL
    return _MEDIUM


def entity_aggregations(
    attributes: dict[str, str] | None = None,
    entities: tuple[str, ...] | list[str] | None = None,
    screening: bool = False,
) -> dict[str, dict]:
    """(entity -> aggregation -> windows) of the feature set built from ``entities``.

    ``screening``: entities outside the default set get only :data:`_SCREEN` (training's cheap
    first pass over many candidates; their names are a subset of the full family's).
    """
    return {
        name: _aggregations_of(name, attributes, screening)
        for name in resolve_entities(entities, attributes)
    }


def _check_attributes(attributes: dict[str, str] | None) -> None:
    for name, kind in (attributes or {}).items():
        if kind not in ("categorical", "numeric"):
            raise ValueError(
                f"attribute {name!r}: kind must be categorical or numeric, not {kind!r}"
            )
        if CROSS_SEP in name:
            raise ValueError(f"attribute {name!r}: a name must not contain {CROSS_SEP!r}")


def feature_specs(
    attributes: dict[str, str] | None = None,
    entities: tuple[str, ...] | list[str] | None = None,
    screening: bool = False,
) -> list[FeatureSpec]:
    """Every feature, in model column order.

    Parameters
    ----------
    attributes
        Extra declaration columns declared in a mapping file: name -> ``"categorical"`` or
        ``"numeric"``. Numeric ones pass through; categorical ones become key columns.
    entities
        The history keys to build (key columns and crosses, see :func:`entity_definition`);
        None: :func:`default_entities`. Parents needed for smoothing are added.
    screening
        See :func:`entity_aggregations`.

    Returns
    -------
    list of FeatureSpec
    """
    _check_attributes(attributes)
    aggs_by_entity = entity_aggregations(attributes, entities, screening)
    specs = _decl_features()
    specs.extend(categorical_specs(attributes))
    for ent, zh, en in NOVELTY:
        if ent in aggs_by_entity:
            specs.append(
                FeatureSpec(
                    f"{ent}_is_new_all",
                    ent,
                    "is_new",
                    "all",
                    "float64",
                    zh + "（1/0）",
                    en + " (1/0)",
                )
            )
    for ent_name in ENTITY_AGGREGATIONS:
        if ent_name in aggs_by_entity:
            entity = ENTITIES[ent_name]
            for agg, windows in aggs_by_entity[ent_name].items():
                specs.extend(_agg_feature(entity, agg, w, attributes) for w in windows)
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
    for ent_name, aggs in aggs_by_entity.items():
        if ent_name in ENTITY_AGGREGATIONS:
            continue
        entity = entity_definition(ent_name, attributes)
        for agg, windows in aggs.items():
            specs.extend(_agg_feature(entity, agg, w, attributes) for w in windows)
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), "duplicate feature names"
    for s in specs:
        assert s.aggregation not in BEHAVIOUR_RATIOS or s.window == "all", s.name
    for name, (a, b) in RATIO_FEATURES.items():
        assert name not in names or {a, b} <= set(names), name
    return specs


def feature_names(
    attributes: dict[str, str] | None = None,
    entities: tuple[str, ...] | list[str] | None = None,
    screening: bool = False,
) -> list[str]:
    """Names of :func:`feature_specs`, in order."""
    return [s.name for s in feature_specs(attributes, entities, screening)]


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
