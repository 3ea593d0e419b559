"""From a score to a supervision decision: mandatory rules, tier, monitoring draw.

Order (first match wins):

1. ``mandatory``: the enterprise is ``severely_discredited`` at the declaration time (credit
   state from the snapshot), or an active warning measure in ``mandatory`` mode matches;
   a ``raised`` measure that matches selects the declaration with its rate, by a keyed hash of
   (warning id, declaration id), so the draw is reproducible and independent of the monitoring
   draw;
2. ``inspect``: the model's tier is ``high`` (the budget share);
3. ``random_monitoring``: the HMAC draw of the declaration id falls in the monitoring share;
4. ``release``.

``monitoring_selected`` is reported whatever the decision, so an inspection of a declaration that
was also drawn can be recorded as ``random`` and keep the monitoring sample unbiased.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from policy.monitoring import monitoring_draw, selected_for_monitoring

DecisionName = Literal["inspect", "release", "random_monitoring", "mandatory"]
DECISIONS: tuple[str, ...] = ("mandatory", "inspect", "random_monitoring", "release")
SEVERELY_DISCREDITED = "severely_discredited"


class InspectionMeasure(Protocol):
    """An active response measure of a warning (``policy.warnings.InspectionMeasure`` fits).

    Attributes
    ----------
    mode
        ``mandatory`` inspects every matching declaration; ``raised`` inspects them at ``rate``.
    rate
        Inspection rate of a ``raised`` measure, in [0, 1].
    warning_id
        The warning that imposed the measure (reported and audited).
    """

    mode: str
    rate: float
    warning_id: str

    def matches(self, declaration: dict[str, Any]) -> bool:
        """True when the measure applies to a declaration (a dict in contract fields)."""
        ...


@dataclass(frozen=True)
class RuleMeasure:
    """A measure given as a plain predicate (for rules configured in code)."""

    predicate: Callable[[Mapping[str, Any]], bool]
    mode: Literal["mandatory", "raised"]
    rate: float
    warning_id: str

    def matches(self, declaration: dict[str, Any]) -> bool:
        return bool(self.predicate(declaration))


# The hook: ``app.state.measure_provider`` is called once per scoring request and returns the
# active measures; a route module's ``install(app)`` (run at start-up, after the DB engine is on
# ``app.state``) replaces the default, e.g. with ``serving.warnings_store.MeasureCache``.
MeasureProvider = Callable[[], Sequence[InspectionMeasure]]


def no_measures() -> Sequence[InspectionMeasure]:
    """The default provider until the warnings module installs its own."""
    return ()


@dataclass(frozen=True)
class Decision:
    """What to do with a declaration and why."""

    decision: DecisionName
    reason: str
    monitoring_selected: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)


def decide(
    declaration: Mapping[str, Any],
    tier: str,
    *,
    credit_rating: str | None,
    measures: Sequence[InspectionMeasure],
    secret: bytes | str,
    monitoring_share: float,
    measure_secret: bytes | str | None = None,
) -> Decision:
    """Apply the decision order to one scored declaration.

    Parameters
    ----------
    declaration
        The declaration in contract fields (``declaration_id`` is required).
    tier
        The model's tier for the calibrated probability.
    credit_rating
        The enterprise's credit rating in force at the declaration time (None: unknown).
    measures
        Active inspection measures of warnings.
    secret
        HMAC key of the monitoring draw (``Settings.monitoring_secret``).
    monitoring_share
        The bundle policy's random monitoring share.
    measure_secret
        HMAC key of the raised-rate measure draws (``Settings.measure_secret``): separate, so
        knowing one draw's key predicts nothing of the other. None: ``secret`` (unit tests).
    """
    declaration_id = str(declaration["declaration_id"])
    measure_key = measure_secret if measure_secret is not None else secret
    monitoring = selected_for_monitoring(declaration_id, secret, monitoring_share)
    if credit_rating == SEVERELY_DISCREDITED:
        return Decision("mandatory", "severely_discredited_enterprise", monitoring)
    row = dict(declaration)
    matched = [m for m in measures if m.matches(row)]
    mandatory = tuple(m.warning_id for m in matched if m.mode == "mandatory")
    if mandatory:
        return Decision("mandatory", "warning_measure_mandatory", monitoring, mandatory)
    raised = tuple(
        m.warning_id
        for m in matched
        if m.mode == "raised"
        and monitoring_draw(f"{m.warning_id}\x1f{declaration_id}", measure_key) < m.rate
    )
    if raised:
        return Decision("mandatory", "warning_measure_raised", monitoring, raised)
    if tier == "high":
        return Decision("inspect", "tier_high", monitoring)
    if monitoring:
        return Decision("random_monitoring", "monitoring_draw", monitoring)
    return Decision("release", f"tier_{tier}", monitoring)
