"""Measures of a level (the toolbox) and the tightened-inspection measures the scoring API applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy.monitoring import monitoring_draw
from policy.warnings.config import MEASURE_TYPES
from policy.warnings.subjects import Subject


@dataclass(frozen=True)
class InspectionMeasure:
    """A tightened-inspection measure of an active warning, for the scoring API's decision.

    ``mode`` is ``"mandatory"`` (inspect every matching declaration) or ``"raised"`` (inspect a
    ``rate`` share of them, drawn per warning and declaration by a keyed hash).
    """

    warning_id: str
    subject: Subject
    mode: str
    rate: float
    level: int

    def matches(self, declaration: dict[str, Any]) -> bool:
        return self.subject.matches(declaration)

    def selects(self, declaration_id: str, secret: bytes | str) -> bool:
        """Whether this measure sends the declaration to inspection (reproducible draw)."""
        if self.mode == "mandatory":
            return True
        return monitoring_draw(f"{self.warning_id}\x1f{declaration_id}", secret) < self.rate


def measures_for_level(
    level: int, subject_kind: str, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """The toolbox measures of a level that apply to a subject kind (copies)."""
    out = []
    for m in config["measures"].get(level, []):
        applies = m.get("applies_to")
        if applies and subject_kind not in applies:
            continue
        item = {k: v for k, v in m.items() if k != "applies_to"}
        item["label"] = MEASURE_TYPES[m["type"]]
        out.append(item)
    return out


def inspection_measures(warnings: list[dict[str, Any]]) -> list[InspectionMeasure]:
    """Inspection measures of the warnings in force (status ``active``), most severe first.

    Parameters
    ----------
    warnings
        Warning records as stored (keys ``id``, ``status``, ``level``, ``subject_kind``,
        ``subject_key``, ``measures``).
    """
    out: list[InspectionMeasure] = []
    for w in warnings:
        if w["status"] != "active":
            continue
        subject = Subject.parse(w["subject_kind"], w["subject_key"])
        for m in w["measures"]:
            if m.get("type") == "tightened_inspection":
                out.append(
                    InspectionMeasure(
                        warning_id=w["id"],
                        subject=subject,
                        mode=m["mode"],
                        rate=float(m.get("rate", 1.0)),
                        level=int(w["level"]),
                    )
                )
    # mandatory before raised, then by level (Ⅰ first): the decision takes the first match
    out.sort(key=lambda m: (m.mode != "mandatory", m.level, -m.rate))
    return out
