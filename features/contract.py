"""The data contract, version 1.1, declared once: tables, columns, and the rules on their values.

Every loader, validator, generator and test reads the tables' shape from here, so the contract
has a single source of truth in code (documented for users in ``docs/contract.md``). Ingest
(``features.ingest``, vectorised over a file) and the API request schemas (``serving.schemas``,
one value at a time through :func:`check_value`) apply the same rules, reasons and code lists;
a test holds the two implementations to the same verdict on every value.

What a broken rule costs (version 1.1)
--------------------------------------
- a required column: the row is quarantined (ingest) or the request refused with a 422 naming
  the field (API): the row cannot be scored;
- an optional column: the value becomes missing (a bool its default) and the row is kept; the
  issue is recorded as a data-quality issue (column, reason, raw value). A declaration's issue
  count is the column :data:`DQ_ISSUE_COUNT` and the model feature ``decl_dq_issue_cnt_now``.

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

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

# Stored in manifests and reports; 1.1 keeps rows with bad optional values (data-quality issues).
CONTRACT_VERSION = "1.1"

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


# ISO 3166-1 alpha-2 (officially assigned) plus XK (Kosovo, widely used in trade data).
_ISO_COUNTRY_TEXT = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW XK
"""
ISO_COUNTRY_CODES = frozenset(_ISO_COUNTRY_TEXT.split())  # noqa: SIM905 - a compact table
# ISO 3166-1 user-assigned codes (AA, QM-QZ, XA-XZ, ZZ): offices use them for "unknown" (ZZ) or
# their own areas. Valid values of their own (contract 1.1), never an error.
USER_ASSIGNED_CODES = frozenset(
    ["AA", "ZZ"]
    + [f"Q{c}" for c in "MNOPQRSTUVWXYZ"]
    + [f"X{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
)
# Exceptionally reserved codes seen in trade data: EU (European Union), UK, UN, EZ (eurozone)...
RESERVED_CODES = frozenset(
    ["AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "FX", "IC", "SU", "TA", "UK", "UN"]
)
#: Every code a country column accepts.
COUNTRY_CODES = ISO_COUNTRY_CODES | USER_ASSIGNED_CODES | RESERVED_CODES

# Value shapes shared by ingest (Arrow regex) and the API (Python ``re``): the same patterns.
TIMESTAMP_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"
)
FLOAT_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
DIGITS_PATTERN = r"^\d+$"
TRUE_TEXT = ("true", "1", "yes", "t", "y")
FALSE_TEXT = ("false", "0", "no", "f", "n")

# Reason texts: stable strings, counted in reports, stored with issues, asserted by the corpus.
R_MISSING = "missing required value"
R_NUMBER = "not a number"
R_BOOL = "not a boolean"
R_ENUM = "not an allowed value"
R_TS = "not an ISO-8601 timestamp"
R_HS_DIGITS = "hs code has non-digit characters"
R_COUNTRY_FMT = "not an ISO 3166-1 alpha-2 code"
R_COUNTRY_UNKNOWN = "unknown country code"
R_CURRENCY_FMT = "not an ISO 4217 code"
R_EXPECTED = "missing, expected when {column} is {value}"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table.

    ``expected_when`` (optional columns only): ``(column, value)`` of the same row under which a
    missing value is a data-quality issue (hazard_type when result is nonconforming).
    """

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
    expected_when: tuple[str, str] | None = None
    description: str = ""

    @property
    def bound_reason(self) -> str:
        """Reason text of a number below the bound (``must be > 0``)."""
        sign = ">" if self.min_exclusive else ">="
        return f"must be {sign} {self.min_value:g}"

    @property
    def hs_length_reason(self) -> str:
        return f"hs code must have {self.hs_min} to {self.hs_max} digits"

    @property
    def hs_list_pattern(self) -> str:
        each = rf"\d{{{self.hs_min},{self.hs_max}}}"
        return rf"^{each}(;{each})*$"

    @property
    def hs_list_reason(self) -> str:
        return f"not a ';'-joined list of {self.hs_min} to {self.hs_max} digit hs codes"

    def below_bound(self, value: float) -> bool:
        """True when a number breaks ``min_value`` (NaN never does: it is a missing value)."""
        if self.min_value is None:
            return False
        return value <= self.min_value if self.min_exclusive else value < self.min_value


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
        "hazard_type and severity expected when nonconforming (missing: a data-quality issue)",
    ),
    columns=(
        ColumnSpec("declaration_id", "id", required=True),
        ColumnSpec("inspected_at", "timestamp", required=True),
        ColumnSpec("selection", "enum", required=True, values=SELECTIONS),
        ColumnSpec("result", "enum", required=True, values=RESULTS),
        ColumnSpec(
            "hazard_type", "enum", values=HAZARD_TYPES, expected_when=("result", "nonconforming")
        ),
        ColumnSpec(
            "severity",
            "enum",
            values=INSPECTION_SEVERITIES,
            expected_when=("result", "nonconforming"),
        ),
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


# ---------------------------------------------------------------------------------------------
# The value rules, one value at a time (the API; ingest applies the same rules vectorised)
# ---------------------------------------------------------------------------------------------
_FLOAT_RE = re.compile(FLOAT_PATTERN)
_TS_RE = re.compile(TIMESTAMP_PATTERN)
_COUNTRY_RE = re.compile(COUNTRY_PATTERN)
_CURRENCY_RE = re.compile(CURRENCY_PATTERN)
_DIGITS_RE = re.compile(DIGITS_PATTERN)


@dataclass(frozen=True)
class Checked:
    """A value after the contract rule of its column: the value to use, and why it was not kept.

    ``reason`` is None when the raw value is valid (or missing); otherwise ``value`` is None (a
    bool: the column's default) and ``reason`` says what was wrong.
    """

    value: Any
    reason: str | None = None


def _text(raw: Any) -> str | None:
    """A raw value as trimmed text; empty text is a missing value (as in a CSV cell)."""
    text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
    text = text.strip()
    return text or None


def check_value(col: ColumnSpec, raw: Any) -> Checked:
    """Apply the contract rule of ``col`` to one raw value (a JSON value or a CSV cell).

    Parameters
    ----------
    col
        The column's spec (kind, vocabulary, bounds, HS length).
    raw
        The value as received: None, a string, a number or a bool.

    Returns
    -------
    Checked
        The parsed value (float for numbers, bool for bools, str otherwise) and None, or the
        value to use instead (None; a bool's default) and the reason. The caller decides what
        the reason costs: quarantine / 422 for a required column, a data-quality issue for an
        optional one.
    """
    if raw is None or (isinstance(raw, float) and math.isnan(raw) and col.kind != "float"):
        return Checked(col.default if col.kind == "bool" else None)
    kind = col.kind
    if kind == "float":
        if isinstance(raw, bool):
            return Checked(None, R_NUMBER)
        if isinstance(raw, (int, float)):
            value = float(raw)
            if not math.isfinite(value):
                return Checked(None, R_NUMBER)
        else:
            text = _text(raw)
            if text is None:
                return Checked(None)
            if not _FLOAT_RE.match(text):
                return Checked(None, R_NUMBER)
            value = float(text)
            if not math.isfinite(value):  # "1e400"
                return Checked(None, R_NUMBER)
        if col.below_bound(value):
            return Checked(None, col.bound_reason)
        return Checked(value)
    if kind == "bool":
        if isinstance(raw, bool):
            return Checked(raw)
        text = _text(raw)
        if text is None:
            return Checked(col.default)
        low = text.lower()
        if low in TRUE_TEXT:
            return Checked(True)
        if low in FALSE_TEXT:
            return Checked(False)
        return Checked(col.default, R_BOOL)
    text = _text(raw)
    if text is None:
        return Checked(None)
    if kind == "timestamp":
        if isinstance(raw, datetime):
            return Checked(raw)
        if not _TS_RE.match(text):
            return Checked(None, R_TS)
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return Checked(None, R_TS)
        return Checked(text)
    if kind == "enum" and text not in col.values:
        return Checked(None, R_ENUM)
    if kind == "hs":
        if not _DIGITS_RE.match(text):
            return Checked(None, R_HS_DIGITS)
        if not col.hs_min <= len(text) <= col.hs_max:
            return Checked(None, col.hs_length_reason)
    if kind == "hs_list" and not re.match(col.hs_list_pattern, text):
        return Checked(None, col.hs_list_reason)
    if kind == "country":
        if not _COUNTRY_RE.match(text):
            return Checked(None, R_COUNTRY_FMT)
        if text not in COUNTRY_CODES:
            return Checked(None, R_COUNTRY_UNKNOWN)
    if kind == "currency" and not _CURRENCY_RE.match(text):
        return Checked(None, R_CURRENCY_FMT)
    return Checked(text)


def expected_missing_reason(col: ColumnSpec) -> str:
    """Reason text of a missing value that ``col.expected_when`` calls for."""
    assert col.expected_when is not None
    column, value = col.expected_when
    return R_EXPECTED.format(column=column, value=value)
