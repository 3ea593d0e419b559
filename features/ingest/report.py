"""Ingest reports: what one load read, accepted, quarantined and why, per table; the error of a
file that cannot be loaded at all."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from features.contract import CONTRACT_VERSION


class FileLevelError(Exception):
    """A source file cannot be loaded at all; the message names the file (and column)."""


@dataclass
class TableReport:
    """Counts for one table of one load."""

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    source_files: list[str] = field(default_factory=list)
    replaced: int = 0
    # Accepted rows with at least one data-quality issue, the issues, and issues by reason.
    with_dq_issues: int = 0
    dq_issues: int = 0
    dq_by_reason: dict[str, int] = field(default_factory=dict)

    def check(self, table: str) -> None:
        if self.read != self.accepted + self.quarantined:
            raise AssertionError(
                f"{table}: rows read {self.read} != accepted {self.accepted} "
                f"+ quarantined {self.quarantined}"
            )
        if not 0 <= self.with_dq_issues <= min(self.accepted, self.dq_issues):
            raise AssertionError(
                f"{table}: {self.with_dq_issues} rows with data-quality issues of "
                f"{self.accepted} accepted ({self.dq_issues} issues)"
            )

    def merge(self, other: TableReport) -> None:
        """Add the counts of another file's (or chunk's) report of the same table."""
        self.read += other.read
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.replaced += other.replaced
        self.with_dq_issues += other.with_dq_issues
        self.dq_issues += other.dq_issues
        # A file checked in chunks is listed once.
        self.source_files += [f for f in other.source_files if f not in self.source_files]
        for k, v in other.by_reason.items():
            self.by_reason[k] = self.by_reason.get(k, 0) + v
        for k, v in other.dq_by_reason.items():
            self.dq_by_reason[k] = self.dq_by_reason.get(k, 0) + v


@dataclass
class IngestReport:
    """What one ``ingest`` call did: per table read / accepted / quarantined / by reason."""

    batch: str | None
    source_dir: str
    store_dir: str
    timezone: str
    rates: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    already_loaded: list[str] = field(default_factory=list)
    mapping: str | None = None
    seconds: float = 0.0
    created_at: str = ""
    # risk_signals source file -> how many rows name an HS4, a chapter only, or no product
    signal_coverage: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def wrote(self) -> bool:
        return self.batch is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "created_at": self.created_at,
            "source_dir": self.source_dir,
            "store_dir": self.store_dir,
            "timezone": self.timezone,
            "rates": self.rates,
            "mapping": self.mapping,
            "contract_version": CONTRACT_VERSION,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "already_loaded": self.already_loaded,
            "tables": {
                name: {
                    "read": t.read,
                    "accepted": t.accepted,
                    "quarantined": t.quarantined,
                    "replaced": t.replaced,
                    "with_dq_issues": t.with_dq_issues,
                    "dq_issues": t.dq_issues,
                    "by_reason": dict(sorted(t.by_reason.items(), key=lambda kv: -kv[1])),
                    "dq_by_reason": dict(sorted(t.dq_by_reason.items(), key=lambda kv: -kv[1])),
                    "source_files": t.source_files,
                }
                for name, t in self.tables.items()
            },
            "signal_coverage": self.signal_coverage,
        }

    def to_text(self) -> str:
        lines = []
        if self.batch is None:
            lines.append("nothing written: every source file is already loaded")
        else:
            lines.append(f"batch {self.batch} -> {self.store_dir} ({self.seconds:.1f} s)")
        for name in self.already_loaded:
            lines.append(f"  already loaded: {name}")
        for f in self.files:
            if f.get("status") == "loaded":
                lines.append(f"  {f['file']}: encoding {f['encoding']}")
        if self.tables:
            lines.append(
                f"{'table':<16}{'read':>12}{'accepted':>12}{'with DQ issues':>16}"
                f"{'quarantined':>13}"
            )
        for name, t in self.tables.items():
            lines.append(
                f"{name:<16}{t.read:>12,}{t.accepted:>12,}{t.with_dq_issues:>16,}"
                f"{t.quarantined:>13,}"
            )
            for reason, count in sorted(t.by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"{'':<18}{count:>10,}  quarantined: {reason}")
            for reason, count in sorted(t.dq_by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"{'':<18}{count:>10,}  data quality (kept, value missing): {reason}")
            if t.replaced:
                lines.append(f"{'':<18}{t.replaced:>10,}  replaced an older row (accepted)")
        for name, cov in self.signal_coverage.items():
            lines.extend(_coverage_lines(name, cov))
        return "\n".join(lines)


def _coverage_lines(name: str, cov: dict[str, Any]) -> list[str]:
    """The signal coverage of one file, for the terminal."""
    lines = [
        f"signal coverage of {name}: {cov['rows']:,} rows; HS4 {cov['hs4_share']:.1%}, "
        f"chapter only {cov['chapter_only_share']:.1%}, no product {cov['unmapped_share']:.1%}"
    ]
    for key, title in (
        ("top_unmapped_products", "most frequent product texts mapped to nothing"),
        ("top_chapter_only_products", "most frequent product texts mapped to a chapter only"),
    ):
        if cov.get(key):
            lines.append(f"  {title}:")
            lines += [f"{'':<18}{t['count']:>10,}  {t['text']}" for t in cov[key]]
    for column, names in (cov.get("unmatched_countries") or {}).items():
        top = sorted(names.items(), key=lambda kv: -kv[1])[:10]
        listed = ", ".join(f"{n!r} ({c})" for n, c in top)
        lines.append(f"  unmatched country names in {column} (kept missing): {listed}")
    if cov.get("unknown_categories"):
        top = sorted(cov["unknown_categories"].items(), key=lambda kv: -kv[1])[:10]
        lines.append("  categories not in the table: " + ", ".join(f"{n!r} ({c})" for n, c in top))
    return lines
