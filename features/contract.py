"""The data contract, version 1, declared once.

Every loader, validator, generator and test reads the tables' shape from here, so the contract
has a single source of truth in code (documented for users in ``docs/contract.md``).

Kinds
-----
``id``        string identifier; leading zeros kept ("0303" is not 303)
``str``       free string
``timestamp`` ISO-8601; without an offset it is local time of the deployment
``enum``      one of ``ColumnSpec.values``
``float``     number, optionally bounded (``min_value``, ``min_exclusive``)
``bool``      true/false (also 1/0, yes/no, t/f)
``hs``        HS code: digits only, ``hs_min`` to ``hs_max`` digits
``hs_list``   ``;``-joined HS codes, each as ``hs`` (a signal naming a set of products)
``country``   ISO 3166-1 alpha-2
``currency``  ISO 4217 alphabetic code
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

CONTRACT_VERSION = 1

Kind = Literal[
    "id", "str", "timestamp", "enum", "float", "bool", "hs", "hs_list", "country", "currency"
]

DIRECTIONS = ("import", "export")
TRADE_MODES = (
    "general_trade",
    "processing_trade",
    "cross_border_ecommerce",
    "market_procurement",
    "bonded",
    "other",
)
TRANSPORT_MODES = ("sea", "air", "rail", "road", "post", "other")
SELECTIONS = ("random", "targeted", "mandatory", "other")
RESULTS = ("conforming", "nonconforming")
HAZARD_TYPES = ("safety", "health", "environment", "fraud_labeling", "other")
INSPECTION_SEVERITIES = ("minor", "major", "critical")
DISPOSALS = ("release", "rectify", "return", "destroy", "recall")
ENTERPRISE_TYPES = ("manufacturer", "trader", "ecommerce_platform", "other")
CREDIT_RATINGS = (
    "aeo_advanced",
    "aeo_certified",
    "regular",
    "discredited",
    "severely_discredited",
)
DEFAULT_CREDIT_RATING = "regular"
# Declarations column written by ingest (and set by the API on a request): how many optional
# values of the row were invalid and read as missing. Feeds the feature ``decl_dq_issue_cnt_now``.
DQ_ISSUE_COUNT = "dq_issue_count"
SIGNAL_CHANNELS = (
    "consumer_complaint",
    "enterprise_report",
    "public_opinion",
    "injury_report",
    "foodborne_illness",
    "counterfeit_report",
    "foreign_alert",
    "recall",
    "monitoring_test",
)
SIGNAL_SEVERITIES = ("low", "medium", "high", "serious")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    kind: Kind
    required: bool = False
    values: tuple[str, ...] = ()
    min_value: float | None = None
    min_exclusive: bool = False
    unique: bool = False
    default: object = None
    hs_min: int = 6
    hs_max: int = 10
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns and table-level rules."""

    name: str
    columns: tuple[ColumnSpec, ...]
    key: str | None = None
    # At least one of these columns must be non-null on each row (risk_signals' subject).
    one_of_required: tuple[str, ...] = ()
    # Partition column of the Parquet store (a timestamp column, partitioned by month).
    partition_by: str | None = None
    description: str = ""
    extra_rules: tuple[str, ...] = field(default_factory=tuple)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


DECLARATIONS = TableSpec(
    name="declarations",
    key="declaration_id",
    partition_by="declared_at",
    description="one row per declared goods item ('shipment' in the API)",
    columns=(
        ColumnSpec("declaration_id", "id", required=True, unique=True),
        ColumnSpec("declared_at", "timestamp", required=True),
        ColumnSpec("direction", "enum", required=True, values=DIRECTIONS),
        ColumnSpec("port_code", "id", required=True),
        ColumnSpec("trade_mode", "enum", required=True, values=TRADE_MODES),
        ColumnSpec("hs_code", "hs", required=True, hs_min=6, hs_max=10),
        ColumnSpec("origin_country", "country", required=True),
        ColumnSpec("enterprise_id", "id", required=True),
        ColumnSpec("declarant_id", "id"),
        ColumnSpec("overseas_party_id", "id"),
        ColumnSpec("destination_country", "country"),
        ColumnSpec("transport_mode", "enum", values=TRANSPORT_MODES),
        ColumnSpec("goods_description", "str"),
        ColumnSpec("quantity", "float", min_value=0.0),
        ColumnSpec("quantity_unit", "str"),
        ColumnSpec("net_weight_kg", "float", min_value=0.0, min_exclusive=True),
        ColumnSpec("declared_value", "float", required=True, min_value=0.0),
        ColumnSpec("currency", "currency", required=True),
        ColumnSpec("legal_inspection", "bool", default=False),
        ColumnSpec("third_party_certificate", "bool", default=False),
    ),
)

INSPECTIONS = TableSpec(
    name="inspections",
    key="declaration_id",
    partition_by="inspected_at",
    description="outcome of an inspection of a declaration; label is result == nonconforming",
    extra_rules=(
        "declaration_id must exist in declarations",
        "inspected_at >= declared_at",
        "at most one final result per declaration",
        "hazard_type and severity required when nonconforming",
    ),
    columns=(
        ColumnSpec("declaration_id", "id", required=True),
        ColumnSpec("inspected_at", "timestamp", required=True),
        ColumnSpec("selection", "enum", required=True, values=SELECTIONS),
        ColumnSpec("result", "enum", required=True, values=RESULTS),
        ColumnSpec("hazard_type", "enum", values=HAZARD_TYPES),
        ColumnSpec("severity", "enum", values=INSPECTION_SEVERITIES),
        ColumnSpec("disposal", "enum", values=DISPOSALS),
    ),
)

ENTERPRISES = TableSpec(
    name="enterprises",
    key="enterprise_id",
    columns=(
        ColumnSpec("enterprise_id", "id", required=True, unique=True),
        ColumnSpec("name", "str"),
        ColumnSpec("registered_at", "timestamp"),
        ColumnSpec("enterprise_type", "enum", values=ENTERPRISE_TYPES),
        ColumnSpec("region", "str"),
    ),
)

CREDIT_RATINGS_TABLE = TableSpec(
    name="credit_ratings",
    description="rating history; the rating in force is the latest row with effective_from <= t",
    columns=(
        ColumnSpec("enterprise_id", "id", required=True),
        ColumnSpec("effective_from", "timestamp", required=True),
        ColumnSpec("rating", "enum", required=True, values=CREDIT_RATINGS),
    ),
)

RISK_SIGNALS = TableSpec(
    name="risk_signals",
    key="signal_id",
    partition_by="reported_at",
    one_of_required=(
        "enterprise_id",
        "overseas_party_id",
        "hs_code",
        "origin_country",
        "hs_codes",
    ),
    description="risk information from all channels",
    columns=(
        ColumnSpec("signal_id", "id", required=True, unique=True),
        ColumnSpec("reported_at", "timestamp", required=True),
        ColumnSpec("channel", "enum", required=True, values=SIGNAL_CHANNELS),
        ColumnSpec("enterprise_id", "id"),
        ColumnSpec("overseas_party_id", "id"),
        ColumnSpec("hs_code", "hs", hs_min=2, hs_max=10),
        ColumnSpec("origin_country", "country"),
        ColumnSpec("severity", "enum", values=SIGNAL_SEVERITIES),
        ColumnSpec("hazard_type", "enum", values=HAZARD_TYPES),
        ColumnSpec("source", "str"),
        ColumnSpec("description", "str"),
        # A signal mapped from product text or category may name several products or a chapter
        # only (``hs_code`` then holds the single code, if there is one); how it was mapped.
        ColumnSpec("hs_codes", "hs_list", hs_min=2, hs_max=10),
        ColumnSpec("mapping_rule", "str"),
    ),
)

TABLES: dict[str, TableSpec] = {
    t.name: t for t in (DECLARATIONS, INSPECTIONS, ENTERPRISES, CREDIT_RATINGS_TABLE, RISK_SIGNALS)
}
# Load order matters for cross-table rules (inspections need declarations).
LOAD_ORDER = ("declarations", "inspections", "enterprises", "credit_ratings", "risk_signals")
REQUIRED_TABLES = ("declarations",)
