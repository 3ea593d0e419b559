"""Request and response models of the API, typed from the data contract's vocabularies.

The contract's value rules (``features.contract.check_value``, the ones ingest applies) decide
what a request costs (contract 1.1): a bad required value is a 422 naming the field; a bad
optional value (a zero weight, an unknown optional code or enum, an unparseable optional number)
is read as missing and listed in the item's ``data_quality`` (response, audit row), and the
declaration is scored. Only JSON's own limits stay with pydantic: non-finite numbers, objects or
arrays where a value belongs, over-long text.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from features.contract import (
    COUNTRY_CODES,
    DECLARATIONS,
    DIRECTIONS,
    DISPOSALS,
    HAZARD_TYPES,
    INSPECTION_SEVERITIES,
    INSPECTIONS,
    RESULTS,
    SELECTIONS,
    TRADE_MODES,
    TRANSPORT_MODES,
    ColumnSpec,
    TableSpec,
    check_value,
    expected_missing_reason,
)

# Literal types built from the contract's tuples (the contract is the only source of the values).
Direction = Literal[DIRECTIONS]  # type: ignore[valid-type]
TradeMode = Literal[TRADE_MODES]  # type: ignore[valid-type]
TransportMode = Literal[TRANSPORT_MODES]  # type: ignore[valid-type]
Selection = Literal[SELECTIONS]  # type: ignore[valid-type]
InspectionResult = Literal[RESULTS]  # type: ignore[valid-type]
HazardType = Literal[HAZARD_TYPES]  # type: ignore[valid-type]
Severity = Literal[INSPECTION_SEVERITIES]  # type: ignore[valid-type]
Disposal = Literal[DISPOSALS]  # type: ignore[valid-type]
DecisionName = Literal["inspect", "release", "random_monitoring", "mandatory"]

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
# The codes the contract accepts (ISO 3166-1 alpha-2, user-assigned ZZ, XX, QU..., EU) are
# listed in the schema; ``_contract_value`` checks membership with the contract's own rule.
Country = Annotated[
    str, Field(pattern=r"^[A-Z]{2}$", json_schema_extra={"enum": sorted(COUNTRY_CODES)})
]
Money = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
_HS = DECLARATIONS.column("hs_code")
# Issues of extra attributes are reported under this prefix (``attributes.tax_rate``).
ATTRIBUTE_PREFIX = "attributes."
# Optional values as sent: a bad one is read as missing and reported, not refused (contract 1.1).
# The types document what is accepted; the contract's rule decides what is kept.
LenientNumber = Annotated[float, Field(allow_inf_nan=False)] | Annotated[str, Field(max_length=64)]
LenientText = Annotated[str, Field(max_length=64)]
LenientBool = bool | LenientText
_LENIENT = (
    "; any other value is read as missing and reported in data_quality (the item is still scored)"
)
# Timestamps the feature pipeline can represent (pandas nanoseconds end in 2262).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
AttributeValue = (
    Annotated[str, Field(max_length=256)] | Annotated[float, Field(allow_inf_nan=False)] | None
)


def _utc_in_range(value: datetime, field: str) -> datetime:
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{field} is out of range") from exc
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"{field} must be between {EARLIEST.year} and {LATEST.year}")
    return value


class DataQualityIssue(BaseModel):
    """A value the contract could not use: the item was processed with it missing."""

    field: str = Field(description="the request field")
    reason: str = Field(description="the contract rule it broke (the same text as ingest's)")
    raw: Any = Field(None, description="the value as sent (null: it was missing)")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _apply_optional_rules(
    spec: TableSpec, data: dict[str, Any], fields: dict[str, Any]
) -> tuple[dict[str, Any], list[DataQualityIssue]]:
    """The contract's rules on the optional fields of one request item (before field validation).

    A bad value becomes missing (a bool its default) and yields an issue; a field that has
    ``expected_when`` and is missing when it is expected yields one too. Values that are not
    JSON scalars, and non-finite numbers, are left for pydantic to refuse (a malformed request,
    not a value the customs system recorded); so is text that is not Unicode (a lone surrogate).
    """
    issues: list[DataQualityIssue] = []
    cleaned = dict(data)
    for col in spec.columns:
        if col.required or col.name not in fields or col.kind in ("id", "str"):
            continue
        raw = data.get(col.name)
        if isinstance(raw, float) and not math.isfinite(raw):
            continue
        if raw is not None and not isinstance(raw, (str, int, float, bool)):
            continue
        if isinstance(raw, str) and not _is_unicode(raw):
            continue  # a lone surrogate: pydantic refuses it, naming the field
        checked = check_value(col, raw)
        if checked.reason is not None:
            issues.append(DataQualityIssue(field=col.name, reason=checked.reason, raw=raw))
            if col.kind == "bool":
                cleaned[col.name] = checked.value
            else:
                cleaned.pop(col.name, None)
        elif raw is not None:
            cleaned[col.name] = checked.value
    for col in spec.columns:
        if col.expected_when is None or col.name not in fields:
            continue
        other, wanted = col.expected_when
        if data.get(col.name) is None and data.get(other) == wanted:
            issues.append(
                DataQualityIssue(field=col.name, reason=expected_missing_reason(col), raw=None)
            )
    return cleaned, issues


class _ContractItem(BaseModel):
    """A request item checked with the contract's rules; its issues in :attr:`data_quality`."""

    _contract_spec: ClassVar[TableSpec]
    _data_quality: list[DataQualityIssue] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _contract_rules(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)  # an instance already checked, or not an object (refused)
        cleaned, issues = _apply_optional_rules(cls._contract_spec, data, cls.model_fields)
        item = handler(cleaned)
        item._data_quality = issues
        return item

    @property
    def data_quality(self) -> list[DataQualityIssue]:
        """The bad optional values of this item (empty when there were none)."""
        return self._data_quality

    def as_received(self) -> dict[str, Any]:
        """The item in JSON form with each bad optional value as it was sent (what the audit
        stores: replayed or exported to ingest, the same rules give the same issues)."""
        out = self.model_dump(mode="json")
        for issue in self._data_quality:
            if issue.raw is None:
                continue
            if issue.field.startswith(ATTRIBUTE_PREFIX):
                out["attributes"][issue.field.removeprefix(ATTRIBUTE_PREFIX)] = issue.raw
            else:
                out[issue.field] = issue.raw
        return out


class Declaration(_ContractItem):
    """One declaration (goods item) in contract fields."""

    _contract_spec = DECLARATIONS

    def check_attributes(self, kinds: dict[str, str]) -> None:
        """The contract's number rule on the attributes the model declares ``numeric`` (as
        ingest applies it to a mapping's numeric attributes): a non-number is read as missing
        and reported as ``attributes.<name>``. Call once, when the model is known."""
        for name, kind in kinds.items():
            raw = self.attributes.get(name)
            if kind != "numeric" or raw is None:
                continue
            checked = check_value(ColumnSpec(name, "float"), raw)
            if checked.reason is not None:
                self._data_quality.append(
                    DataQualityIssue(field=ATTRIBUTE_PREFIX + name, reason=checked.reason, raw=raw)
                )
            self.attributes[name] = checked.value

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "declaration_id": "D2026000123",
                    "declared_at": "2026-03-02T09:30:00+08:00",
                    "direction": "import",
                    "port_code": "2200",
                    "trade_mode": "general_trade",
                    "hs_code": "0303890090",
                    "origin_country": "VN",
                    "enterprise_id": "E00042",
                    "declarant_id": "B0007",
                    "overseas_party_id": "VN-SUP-19",
                    "transport_mode": "sea",
                    "net_weight_kg": 12000.0,
                    "declared_value": 54000.0,
                    "currency": "USD",
                    "legal_inspection": True,
                }
            ]
        },
    )

    declaration_id: Identifier
    declared_at: AwareDatetime = Field(description="ISO-8601 with an offset; stored in UTC")
    direction: Direction
    port_code: Identifier
    trade_mode: TradeMode
    hs_code: str = Field(
        pattern=rf"^[0-9]{{{_HS.hs_min},{_HS.hs_max}}}$",
        description=f"{_HS.hs_min} to {_HS.hs_max} digits",
    )
    origin_country: Country = Field(
        description="ISO 3166-1 alpha-2, or a user-assigned code (ZZ unknown, XX, QU...) or EU"
    )
    enterprise_id: Identifier
    declarant_id: Identifier | None = None
    overseas_party_id: Identifier | None = None
    destination_country: Country | LenientText | None = Field(
        None, description="alpha-2 as origin_country" + _LENIENT
    )
    transport_mode: TransportMode | LenientText | None = Field(
        None, description=f"one of {', '.join(TRANSPORT_MODES)}" + _LENIENT
    )
    goods_description: str | None = Field(None, max_length=2000)
    quantity: LenientNumber | None = Field(None, description="a number >= 0" + _LENIENT)
    quantity_unit: str | None = Field(None, max_length=32)
    net_weight_kg: LenientNumber | None = Field(
        None, description="a number > 0 (0 kg: unknown)" + _LENIENT
    )
    declared_value: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")
    declared_value_usd: Money | None = Field(
        None, description="optional; otherwise converted with the rate table at declared_at"
    )
    legal_inspection: LenientBool = Field(False, description="true/false" + _LENIENT)
    third_party_certificate: LenientBool = Field(False, description="true/false" + _LENIENT)
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        max_length=64,
        description="extra attributes the model was trained with (mapping-file attributes)",
    )

    @field_validator("declared_at")
    @classmethod
    def _declared_at_utc(cls, value: datetime) -> datetime:
        return _utc_in_range(value, "declared_at")

    @field_validator("origin_country")
    @classmethod
    def _contract_value(cls, value: str, info: ValidationInfo) -> str:
        """A required value the contract's rule refuses: 422 with the contract's reason."""
        assert info.field_name is not None
        reason = check_value(DECLARATIONS.column(info.field_name), value).reason
        if reason is not None:
            raise ValueError(f"{reason}: {value!r}")
        return value


class Reason(BaseModel):
    """One feature's part in the score."""

    feature: str
    value: float | None = Field(description="the feature's value (null when missing)")
    contribution: float = Field(description="exact SHAP value in calibrated log-odds")
    description_zh: str
    description_en: str


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None


class ScoreResult(BaseModel):
    """Score, decision and explanation of one declaration."""

    request_id: str
    declaration_id: str
    probability: float = Field(ge=0, le=1, description="calibrated probability of nonconformity")
    logit: float = Field(description="calibrated log-odds = base_value + sum of contributions")
    tier: str
    decision: DecisionName
    decision_reason: str
    monitoring_selected: bool = Field(
        description="the HMAC draw put this declaration in the random monitoring share"
    )
    warnings: list[str] = Field(description="ids of warnings whose measures applied")
    reasons: list[Reason]
    base_value: float = Field(description="expected calibrated log-odds (SHAP base value)")
    contributions: dict[str, float] | None = Field(
        None, description="every feature's contribution (explain=full), model column order"
    )
    explanation: Literal["exact_treeshap"] = "exact_treeshap"
    model: ModelInfo
    snapshot_as_of: datetime | None
    data_quality: list[DataQualityIssue] = Field(
        default_factory=list,
        description="optional values read as missing (contract rules: the same as ingest's); "
        "their count is the feature decl_dq_issue_cnt_now. Empty when every value was usable",
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    declarations: list[Declaration] = Field(min_length=1)


class BatchResponse(BaseModel):
    request_id: str
    results: list[ScoreResult]


class InspectionIn(_ContractItem):
    """An inspection outcome in contract fields."""

    _contract_spec = INSPECTIONS

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "declaration_id": "D2026000123",
                    "inspected_at": "2026-03-04T15:00:00+08:00",
                    "selection": "targeted",
                    "result": "nonconforming",
                    "hazard_type": "health",
                    "severity": "major",
                    "disposal": "return",
                }
            ]
        },
    )

    declaration_id: Identifier
    inspected_at: AwareDatetime
    selection: Selection
    result: InspectionResult
    hazard_type: HazardType | LenientText | None = Field(
        None, description="expected when nonconforming" + _LENIENT
    )
    severity: Severity | LenientText | None = Field(
        None, description="expected when nonconforming" + _LENIENT
    )
    disposal: Disposal | LenientText | None = Field(None, description=_LENIENT.lstrip("; "))

    @field_validator("inspected_at")
    @classmethod
    def _inspected_at_utc(cls, value: datetime) -> datetime:
        return _utc_in_range(value, "inspected_at")


class InspectionStored(BaseModel):
    request_id: str
    declaration_id: str
    stored: bool
    snapshot_updated: bool = Field(
        description="the online snapshot knew the declaration and now counts this result"
    )
    received_at: datetime
    data_quality: list[DataQualityIssue] = Field(
        default_factory=list,
        description="values read as missing (contract rules); the result was stored anyway",
    )


class FeatureInfo(BaseModel):
    name: str
    description_zh: str
    description_en: str


class ModelCard(BaseModel):
    name: str
    version: str
    alias: str | None
    bundle_manifest_sha256: str
    created_at: str
    loaded_at: datetime
    training_fingerprint: str
    explainer: str
    calibration: dict[str, float]
    policy: dict[str, Any] = Field(description="budget, monitoring share, tier thresholds")
    metrics: dict[str, Any] = Field(description="evaluation metrics at inspection budgets")
    features: list[FeatureInfo]
    snapshot_as_of: datetime | None


class ReloadResult(BaseModel):
    changed: bool
    version: str | None
    previous_version: str | None
    detail: str


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["inspector", "committee", "admin"]
    name: str | None = Field(None, max_length=200)


class KeyInfo(BaseModel):
    key_id: str
    role: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyInfo):
    key: str = Field(description="the API key; shown once, only its hash is stored")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    model_version: str | None
    snapshot_as_of: datetime | None
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid API key"},
    403: {"model": ErrorBody, "description": "the key's role may not do this"},
    413: {"model": ErrorBody, "description": "request body too large"},
}
