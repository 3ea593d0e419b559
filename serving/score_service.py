"""Score declarations, audit them, then tell the snapshot: the work behind ``POST /v1/score``.

:func:`score_on_loop` serves one declaration on the event loop; :func:`score_declarations`
(blocking) serves batches in a worker thread. Both run the same :func:`_score_and_explain`.

The routes validate and map errors; this module does the scoring. Each call reads one
``Scorer`` (so a model swap mid-request cannot mix two versions), commits the audit rows before
any answer exists, and only then adds the declarations to the live snapshot, so a failed call
leaves no trace in the entity history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from serving.audit import audit_committer, canonical_json, sha256_text, write_audit
from serving.phase_timing import mark
from serving.schemas import Declaration
from serving.scoring import CurrencyError, FeatureError, Scorer
from serving.scoring import ScoreResult as Scored
from serving.sync import declaration_row


class ScoringRefused(Exception):
    """A declaration cannot be scored; ``errors`` are validation errors naming the field."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


class AuditUnavailable(Exception):
    """The audit rows could not be written: nothing was scored (the caller retries)."""


@dataclass(frozen=True)
class ScoringCall:
    """Who asks and how the answer is shaped."""

    key_id: str
    explain: str  # "top" or "full"
    top_k: int
    batch: bool


@dataclass(frozen=True)
class ScoredCall:
    request_id: str
    bodies: list[dict[str, Any]]
    results: list[Scored]


def _loc(call: ScoringCall, index: int, field: str) -> tuple[Any, ...]:
    return ("body", "declarations", index, field) if call.batch else ("body", field)


def _rows(
    declarations: Sequence[Declaration], rates: Any, call: ScoringCall
) -> list[dict[str, Any]]:
    """The declarations as the feature pipeline reads them (contract fields, USD, attributes)."""
    rows = []
    for i, declaration in enumerate(declarations):
        try:
            rows.append(declaration_row(declaration, rates))
        except CurrencyError as exc:
            raise ScoringRefused(
                [
                    {
                        "type": "value_error",
                        "loc": _loc(call, i, "currency"),
                        "msg": f"{exc}; send declared_value_usd or use a known currency",
                        "input": declaration.currency,
                    }
                ]
            ) from exc
    return rows


@dataclass(frozen=True)
class _Scored:
    """A call scored and explained, not yet audited: its answer, audit rows, feature rows."""

    done: ScoredCall
    audit: list[dict[str, Any]]
    rows: list[dict[str, Any]]


def score_declarations(
    scorer: Scorer,
    declarations: Sequence[Declaration],
    measures: Sequence[Any],
    call: ScoringCall,
    *,
    engine: Engine,
    rates: Any,
    worker_id: str,
) -> ScoredCall:
    """Score, explain and audit ``declarations``; the answers in the ``ScoreResult`` schema.

    Blocking (the batch route runs it in a worker thread): the audit rows are committed in
    this call's own transaction.

    Raises
    ------
    ScoringRefused
        A declaration's currency is unknown, or the snapshot refuses its time.
    AuditUnavailable
        The audit log could not be written; the snapshot is left untouched.
    """
    scored = _score_and_explain(scorer, declarations, measures, call, rates, worker_id)
    try:
        write_audit(engine, scored.audit)
    except Exception as exc:
        raise AuditUnavailable(f"audit write failed for request {scored.done.request_id}") from exc
    scorer.live.add_declarations(scored.rows)
    return scored.done


async def score_on_loop(
    scorer: Scorer,
    declarations: Sequence[Declaration],
    measures: Sequence[Any],
    call: ScoringCall,
    *,
    engine: Engine,
    rates: Any,
    worker_id: str,
) -> ScoredCall:
    """:func:`score_declarations` for the event loop (one declaration: about a millisecond of
    CPU): the audit rows go through :class:`serving.audit.AuditCommitter` (committed at once
    when the write gate is free, else in the next group commit, the loop serving meanwhile), and
    the snapshot is updated once they are stored.

    Raises as :func:`score_declarations`.
    """
    scored = _score_and_explain(scorer, declarations, measures, call, rates, worker_id)
    mark("bodies")
    rows = scored.rows

    def then() -> None:
        mark("audit")
        scorer.live.add_declarations(rows)
        mark("snapshot")

    try:
        await audit_committer(engine).write(scored.audit, then=then)
    except Exception as exc:
        raise AuditUnavailable(f"audit write failed for request {scored.done.request_id}") from exc
    return scored.done


def _score_and_explain(
    scorer: Scorer,
    declarations: Sequence[Declaration],
    measures: Sequence[Any],
    call: ScoringCall,
    rates: Any,
    worker_id: str,
) -> _Scored:
    """The answers and audit rows of one call (CPU only: nothing stored, snapshot unchanged)."""
    request_id = uuid.uuid4().hex
    mark("route")
    # The model's numeric attributes follow ingest's number rule (issues as attributes.<name>).
    for declaration in declarations:
        declaration.check_attributes(scorer.bundle.attributes)
    rows = _rows(declarations, rates, call)
    try:
        results = (
            scorer.score_many(rows, measures) if call.batch else [scorer.score(rows[0], measures)]
        )
    except FeatureError as exc:
        i, message = exc.args
        raise ScoringRefused(
            [{"type": "value_error", "loc": _loc(call, i, "declared_at"), "msg": message,
              "input": None}]
        ) from exc  # fmt: skip
    ref = scorer.ref
    as_of = scorer.live.as_of
    model = {"name": ref.name, "version": ref.version, "alias": ref.alias}
    now = datetime.now(UTC)
    bodies: list[dict[str, Any]] = []
    audit: list[dict[str, Any]] = []
    for i, (d, r) in enumerate(zip(declarations, results, strict=True)):
        reasons = scorer.reasons(r, call.top_k)
        # Stored with its hash: the other workers replay it into their snapshots. Bad optional
        # values are stored as sent, so a replay or an export to ingest finds the same issues.
        text = canonical_json(d.as_received())
        data_quality = [x.model_dump(mode="json") for x in d.data_quality]
        warnings = list(r.decision.warnings)
        # Every field of the ``ScoreResult`` schema, defaults included: the routes return this
        # dict serialised as is (no second validation pass).
        bodies.append(
            {
                "request_id": request_id,
                "declaration_id": r.declaration_id,
                "probability": r.probability,
                "logit": r.logit,
                "tier": r.tier,
                "decision": r.decision.decision,
                "decision_reason": r.decision.reason,
                "monitoring_selected": r.decision.monitoring_selected,
                "warnings": warnings,
                "reasons": reasons,
                "base_value": r.base_value,
                "contributions": (
                    dict(zip(scorer.feature_names, r.contributions.tolist(), strict=True))
                    if call.explain == "full"
                    else None
                ),
                "explanation": "exact_treeshap",
                "model": model,
                "snapshot_as_of": as_of,
                "data_quality": data_quality,
            }
        )
        audit.append(
            {
                "request_id": request_id,
                "item": i,
                "created_at": now,
                "key_id": call.key_id,
                "declaration_id": r.declaration_id,
                "input_sha256": sha256_text(text),
                "declaration_json": text,
                "worker_id": worker_id,
                "model_name": ref.name,
                "model_version": ref.version,
                "snapshot_as_of": as_of,
                "probability": r.probability,
                "tier": r.tier,
                "decision": r.decision.decision,
                "decision_reason": r.decision.reason,
                "monitoring_selected": r.decision.monitoring_selected,
                "warnings": warnings,
                "data_quality": data_quality,
                "top_reasons": [
                    {
                        "feature": x["feature"],
                        "value": x["value"],
                        "contribution": x["contribution"],
                    }
                    for x in reasons
                ],  # fmt: skip
            }
        )
    return _Scored(ScoredCall(request_id, bodies, results), audit, rows)
