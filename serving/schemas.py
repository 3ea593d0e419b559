"""Request and response models of the API, typed from the data contract's vocabularies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from features.contract import (
    DIRECTIONS,
    DISPOSALS,
    HAZARD_TYPES,
    INSPECTION_SEVERITIES,
    RESULTS,
    SELECTIONS,
    TRADE_MODES,
    TRANSPORT_MODES,
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
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
Money = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
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


class Declaration(BaseModel):
    """One declaration (goods item) in contract fields."""

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
    hs_code: str = Field(pattern=r"^[0-9]{6,10}$", description="6 to 10 digits")
    origin_country: Country
    enterprise_id: Identifier
    declarant_id: Identifier | None = None
    overseas_party_id: Identifier | None = None
    destination_country: Country | None = None
    transport_mode: TransportMode | None = None
    goods_description: str | None = Field(None, max_length=2000)
    quantity: Money | None = None
    quantity_unit: str | None = Field(None, max_length=32)
    net_weight_kg: float | None = Field(None, gt=0, le=1e12, allow_inf_nan=False)
    declared_value: Money
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217")
    declared_value_usd: Money | None = Field(
        None, description="optional; otherwise converted with the rate table at declared_at"
    )
    legal_inspection: bool = False
    third_party_certificate: bool = False
    attributes: dict[Annotated[str, Field(max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        max_length=64,
        description="extra attributes the model was trained with (mapping-file attributes)",
    )

    @field_validator("declared_at")
    @classmethod
    def _declared_at_utc(cls, value: datetime) -> datetime:
        return _utc_in_range(value, "declared_at")


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


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    declarations: list[Declaration] = Field(min_length=1)


class BatchResponse(BaseModel):
    request_id: str
    results: list[ScoreResult]


class InspectionIn(BaseModel):
    """An inspection outcome in contract fields."""

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
    hazard_type: HazardType | None = Field(None, validate_default=True)
    severity: Severity | None = Field(None, validate_default=True)
    disposal: Disposal | None = None

    @field_validator("inspected_at")
    @classmethod
    def _inspected_at_utc(cls, value: datetime) -> datetime:
        return _utc_in_range(value, "inspected_at")

    @field_validator("hazard_type", "severity")
    @classmethod
    def _required_when_nonconforming(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.data.get("result") == "nonconforming":
            raise ValueError(f"{info.field_name} is required when result is nonconforming")
        return value


class InspectionStored(BaseModel):
    request_id: str
    declaration_id: str
    stored: bool
    snapshot_updated: bool = Field(
        description="the online snapshot knew the declaration and now counts this result"
    )
    received_at: datetime


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
