"""Bring your own format: a YAML mapping turns a foreign layout into contract tables.

The mapping is data, not code: every output column is built from a small, fixed set of
operations applied in a fixed order (see ``docs/mapping.md``)::

    from -> map/default -> zfill -> upper -> scale -> date_format -> add_days -> when
    const (instead of from)

Nothing in a mapping file is ever evaluated as Python. The mapped tables then go through exactly
the same validation and quarantine as native files; their source rows are the foreign file's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from features.contract import TABLES

COLUMN_OPS = frozenset(
    {
        "from",
        "const",
        "map",
        "default",
        "zfill",
        "upper",
        "scale",
        "date_format",
        "add_days",
        "when",
    }
)
TABLE_KEYS = frozenset({"columns", "attributes", "rows_with"})
ATTRIBUTE_KINDS = ("categorical", "numeric")
_ISO_OUT = "%Y-%m-%dT%H:%M:%S"


class MappingError(ValueError):
    """The mapping file is malformed, or names a column the source file does not have."""


@dataclass(frozen=True)
class ColumnRule:
    """How one output column is made. Fields mirror the YAML keys."""

    name: str
    source: str | None = None
    const: Any = None
    has_const: bool = False
    map: dict[str, str | None] | None = None
    default: str | None = None
    has_default: bool = False
    zfill: int | None = None
    upper: bool = False
    scale: float | None = None
    date_format: str | None = None
    add_days: float | None = None
    when: dict[str, list[str]] = field(default_factory=dict)

    def source_columns(self) -> list[str]:
        return ([self.source] if self.source else []) + list(self.when)


@dataclass(frozen=True)
class TableRule:
    """One contract table derived from a source file."""

    table: str
    columns: tuple[ColumnRule, ...]
    attributes: dict[str, tuple[str, str]]  # output name -> (source column, kind)
    rows_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceRule:
    """One foreign file and the tables derived from it."""

    file: str
    tables: tuple[TableRule, ...]


@dataclass(frozen=True)
class Mapping:
    """A parsed mapping file.

    Attributes
    ----------
    sources : tuple of SourceRule
        Foreign files (names relative to the source folder) and their derived tables.
    """

    sources: tuple[SourceRule, ...]
    path: str = ""

    @property
    def attributes(self) -> dict[str, str]:
        """Model attributes declared for declarations: output column -> categorical|numeric."""
        out: dict[str, str] = {}
        for s in self.sources:
            for t in s.tables:
                if t.table == "declarations":
                    out.update({name: kind for name, (_, kind) in t.attributes.items()})
        return out

    def apply(self, source: SourceRule, raw: pa.Table) -> dict[str, tuple[pa.Table, np.ndarray]]:
        """Build the contract tables of one source file.

        Parameters
        ----------
        source : SourceRule
            One of ``self.sources``.
        raw : pa.Table
            The foreign file as read (strings for CSV).

        Returns
        -------
        dict
            table name -> (table of contract columns + attributes, index of the raw row of each
            output row).

        Raises
        ------
        MappingError
            A source column named by the mapping is not in the file.
        """
        out: dict[str, tuple[pa.Table, np.ndarray]] = {}
        names = set(raw.column_names)
        for rule in source.tables:
            needed = [c for col in rule.columns for c in col.source_columns()]
            needed += [src for src, _ in rule.attributes.values()] + list(rule.rows_with)
            for col in needed:
                if col not in names:
                    raise MappingError(f"column {col!r} named in the mapping is not in the file")
            index = np.arange(raw.num_rows)
            rows = raw
            if rule.rows_with:
                keep = np.ones(raw.num_rows, dtype=bool)
                for col in rule.rows_with:
                    keep &= _valid(_text(raw.column(col)))
                index = np.flatnonzero(keep)
                rows = raw.take(pa.array(index))
            arrays = {c.name: _build(c, rows) for c in rule.columns}
            for name, (src, _) in rule.attributes.items():
                arrays[name] = _text(rows.column(src))
            out[rule.table] = (pa.table(arrays), index)
        return out


def _valid(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.is_valid(a).to_numpy(zero_copy_only=False), dtype=bool)


def _text(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    s = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _build(rule: ColumnRule, rows: pa.Table) -> pa.Array | pa.ChunkedArray:
    n = rows.num_rows
    null = pa.scalar(None, pa.string())
    if rule.has_const:
        value = None if rule.const is None else _scalar_text(rule.const)
        col: Any = pa.array(np.full(n, value, dtype=object), type=pa.string())
    else:
        col = _text(rows.column(rule.source))
    if rule.map is not None:
        keys = pa.array(list(rule.map), pa.string())
        values = pa.array(list(rule.map.values()), pa.string())
        idx = pc.index_in(col, value_set=keys)
        mapped = pc.take(values, idx)
        unmapped = pc.and_(pc.is_valid(col), pc.is_null(idx))
        # Unmapped values pass through unchanged so the contract check quarantines them with
        # their own text, unless the mapping gives a default.
        fallback = pa.scalar(rule.default, pa.string()) if rule.has_default else col
        col = pc.if_else(unmapped, fallback, mapped)
    if rule.zfill is not None:
        digits = pc.match_substring_regex(col, r"^\d+$")
        col = pc.if_else(digits, pc.utf8_lpad(col, width=rule.zfill, padding="0"), col)
    if rule.upper:
        col = pc.utf8_upper(col)
    if rule.scale is not None:
        ok = pc.match_substring_regex(col, r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
        num = pc.cast(pc.if_else(ok, col, null), pa.float64())
        col = pc.if_else(ok, pc.cast(pc.multiply(num, rule.scale), pa.string()), col)
    if rule.date_format is not None:
        ts = pc.strptime(col, format=rule.date_format, unit="s", error_is_null=True)
        if rule.add_days:
            ts = pc.add(ts, pa.scalar(timedelta(days=rule.add_days), pa.duration("s")))
        # With %z the parsed instant is UTC; keep its offset so it is not re-read as local time.
        out_fmt = _ISO_OUT + "%z" if "%z" in rule.date_format else _ISO_OUT
        formatted = pc.strftime(ts, format=out_fmt)
        # Keep a failed value visible (and failing the ISO rule) rather than turning it into null.
        failed = pc.binary_join_element_wise("unparseable date: ", col, "")
        col = pc.if_else(pc.is_valid(ts), formatted, failed)
    for src, allowed in rule.when.items():
        cond = pc.is_in(_text(rows.column(src)), value_set=pa.array(allowed, pa.string()))
        col = pc.if_else(pc.fill_null(cond, False), col, null)
    return col


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _column_rule(table: str, name: str, spec: Any) -> ColumnRule:
    where = f"tables.{table}.columns.{name}"
    if isinstance(spec, str):
        return ColumnRule(name=name, source=spec)
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a source column name or a mapping of operations")
    unknown = set(spec) - COLUMN_OPS
    if unknown:
        raise MappingError(
            f"{where}: unknown operation(s) {sorted(unknown)}; allowed: {sorted(COLUMN_OPS)}"
        )
    if ("from" in spec) == ("const" in spec):
        raise MappingError(f"{where}: give exactly one of 'from' or 'const'")
    mp = spec.get("map")
    if mp is not None and not isinstance(mp, dict):
        raise MappingError(f"{where}.map: expected a mapping of source value -> contract value")
    when = spec.get("when", {}) or {}
    if not isinstance(when, dict):
        raise MappingError(f"{where}.when: expected {{source column: [values]}}")
    if spec.get("add_days") is not None and spec.get("date_format") is None:
        raise MappingError(f"{where}: add_days needs date_format")
    try:
        return ColumnRule(
            name=name,
            source=str(spec["from"]) if "from" in spec else None,
            const=spec.get("const"),
            has_const="const" in spec,
            map=None
            if mp is None
            else {_scalar_text(k): None if v is None else _scalar_text(v) for k, v in mp.items()},
            default=None if spec.get("default") is None else _scalar_text(spec["default"]),
            has_default="default" in spec,
            zfill=None if spec.get("zfill") is None else int(spec["zfill"]),
            upper=bool(spec.get("upper", False)),
            scale=None if spec.get("scale") is None else float(spec["scale"]),
            date_format=spec.get("date_format"),
            add_days=None if spec.get("add_days") is None else float(spec["add_days"]),
            when={
                str(k): [_scalar_text(v) for v in (vals if isinstance(vals, list) else [vals])]
                for k, vals in when.items()
            },
        )
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{where}: {exc}") from None


def _table_rule(table: str, spec: Any) -> TableRule:
    if table not in TABLES:
        raise MappingError(f"tables.{table}: not a contract table ({', '.join(TABLES)})")
    if not isinstance(spec, dict) or "columns" not in spec:
        raise MappingError(f"tables.{table}: needs a 'columns' section")
    unknown = set(spec) - TABLE_KEYS
    if unknown:
        raise MappingError(f"tables.{table}: unknown key(s) {sorted(unknown)}")
    contract = TABLES[table]
    columns = []
    for name, col in (spec["columns"] or {}).items():
        if name not in contract.names:
            raise MappingError(
                f"tables.{table}.columns.{name}: not a contract column; declare extra source "
                "columns under 'attributes'"
            )
        columns.append(_column_rule(table, name, col))
    attributes: dict[str, tuple[str, str]] = {}
    attrs = spec.get("attributes") or {}
    if attrs and table != "declarations":
        raise MappingError(f"tables.{table}.attributes: only declarations take attributes")
    for name, a in attrs.items():
        # Short form  "Tax Rate": numeric ; long form  tax_rate: {from: "Tax Rate", kind: numeric}
        if isinstance(a, str):
            src, kind = str(name), a
        elif isinstance(a, dict) and set(a) <= {"from", "kind"} and "kind" in a:
            src, kind = str(a.get("from", name)), a["kind"]
        else:
            raise MappingError(
                f"tables.{table}.attributes.{name}: expected a kind or {{from, kind}}"
            )
        if kind not in ATTRIBUTE_KINDS:
            raise MappingError(
                f"tables.{table}.attributes.{name}: kind must be categorical or numeric"
            )
        if name in contract.names:
            raise MappingError(f"tables.{table}.attributes.{name}: clashes with a contract column")
        attributes[str(name)] = (src, kind)
    rows_with = spec.get("rows_with") or []
    if isinstance(rows_with, str):
        rows_with = [rows_with]
    return TableRule(table, tuple(columns), attributes, tuple(str(r) for r in rows_with))


def parse_mapping(doc: Any, path: str = "") -> Mapping:
    """Check a loaded YAML document and build a :class:`Mapping`."""
    if not isinstance(doc, dict) or "sources" not in doc:
        raise MappingError("expected a top-level 'sources' list")
    if doc.get("version", 1) != 1:
        raise MappingError(f"unsupported mapping version {doc.get('version')!r}")
    sources = []
    for i, s in enumerate(doc["sources"] or []):
        if not isinstance(s, dict) or "file" not in s or "tables" not in s:
            raise MappingError(f"sources[{i}]: needs 'file' and 'tables'")
        if not isinstance(s["tables"], dict):
            raise MappingError(f"sources[{i}].tables: expected a mapping of table -> rules")
        tables = tuple(_table_rule(t, spec) for t, spec in s["tables"].items())
        sources.append(SourceRule(str(s["file"]), tables))
    if not sources:
        raise MappingError("'sources' is empty")
    seen: set[str] = set()
    for s in sources:
        for t in s.tables:
            if t.table in seen:
                raise MappingError(f"table {t.table!r} is derived twice")
            seen.add(t.table)
    return Mapping(tuple(sources), path)


def load_mapping(path: Path) -> Mapping:
    """Read a YAML mapping file (``yaml.safe_load``: no Python objects, no code)."""
    try:
        doc = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read mapping: {exc}") from None
    return parse_mapping(doc, str(path))
