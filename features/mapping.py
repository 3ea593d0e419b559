"""Bring your own format: a YAML mapping turns a foreign layout into contract tables.

The mapping is data, not code: every output column is built from a small, fixed set of
operations applied in a fixed order (see ``docs/mapping.md``)::

    from -> map/default | match/default -> country -> zfill -> upper -> scale -> date_format
         -> add_days -> prefix -> when
    const (instead of from); first_of: [specs] (the first non-missing of several)

Signal feeds add an ``hs:`` section to ``risk_signals`` (product text and category to HS codes,
``features.products``) and a top-level ``countries:`` table of the office's own spellings
(``features.countries``). ``Mapping.apply`` reports what it could not map (coverage).

Nothing in a mapping file is ever evaluated as Python. The mapped tables then go through exactly
the same validation and quarantine as native files; their source rows are the foreign file's rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from features.contract import TABLES
from features.countries import CountryNames
from features.products import (
    HsClassifier,
    ProductRuleError,
    compile_folded,
    fold,
    fold_category,
    keyword_rule,
    load_category_table,
    parse_codes,
)

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
        "match",
        "country",
        "first_of",
        "prefix",
    }
)
TABLE_KEYS = frozenset({"columns", "attributes", "rows_with", "hs"})
HS_KEYS = frozenset({"text", "rules", "category", "categories", "code"})
# columns the hs: section writes (risk_signals only)
HS_OUTPUTS = ("hs_code", "hs_codes", "mapping_rule")
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
    # one strptime format, or several tried in order (an export that changed its format)
    date_format: str | tuple[str, ...] | None = None
    add_days: float | None = None
    when: dict[str, list[str]] = field(default_factory=dict)
    # ordered (pattern, value): the first pattern found in the folded text gives the value
    match: tuple[tuple[re.Pattern[str], str | None], ...] | None = None
    country: bool = False
    first_of: tuple[ColumnRule, ...] = ()
    prefix: str | None = None

    def source_columns(self) -> list[str]:
        cols = ([self.source] if self.source else []) + list(self.when)
        for alt in self.first_of:
            cols += alt.source_columns()
        return cols


@dataclass(frozen=True)
class TableRule:
    """One contract table derived from a source file."""

    table: str
    columns: tuple[ColumnRule, ...]
    attributes: dict[str, tuple[str, str]]  # output name -> (source column, kind)
    rows_with: tuple[str, ...] = ()
    hs: HsClassifier | None = None


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
    countries: dict[str, str | None] = field(default_factory=dict)

    @property
    def attributes(self) -> dict[str, str]:
        """Model attributes declared for declarations: output column -> categorical|numeric."""
        out: dict[str, str] = {}
        for s in self.sources:
            for t in s.tables:
                if t.table == "declarations":
                    out.update({name: kind for name, (_, kind) in t.attributes.items()})
        return out

    def apply(
        self, source: SourceRule, raw: pa.Table, coverage: dict[str, Any] | None = None
    ) -> dict[str, tuple[pa.Table, np.ndarray]]:
        """Build the contract tables of one source file.

        Parameters
        ----------
        source : SourceRule
            One of ``self.sources``.
        raw : pa.Table
            The foreign file as read (strings for CSV).
        coverage : dict, optional
            Filled with table name -> what the mapping could not map: unmatched country names per
            column and, with an ``hs:`` section, the HS coverage (``features.products``).

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
        countries = CountryNames(self.countries)
        for rule in source.tables:
            needed = [c for col in rule.columns for c in col.source_columns()]
            needed += [src for src, _ in rule.attributes.values()] + list(rule.rows_with)
            needed += rule.hs.source_columns() if rule.hs else []
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
            notes: dict[str, Any] = {"unmatched_countries": {}}
            arrays = {c.name: _build(c, rows, countries, notes) for c in rule.columns}
            for name, (src, _) in rule.attributes.items():
                arrays[name] = _text(rows.column(src))
            if rule.hs is not None:
                hs_code, hs_codes, rule_of, report = _classify(rule.hs, rows)
                arrays["hs_code"] = pa.array(hs_code, pa.string())
                arrays["hs_codes"] = pa.array(hs_codes, pa.string())
                arrays["mapping_rule"] = pa.array(rule_of, pa.string())
                notes.update(report)
            out[rule.table] = (pa.table(arrays), index)
            if coverage is not None:
                coverage[rule.table] = notes
        return out


def _classify(
    hs: HsClassifier, rows: pa.Table
) -> tuple[list[str | None], list[str | None], list[str | None], dict[str, Any]]:
    n = rows.num_rows
    nothing: list[str | None] = [None] * n

    def values(col: str | None) -> list[str | None]:
        return _text(rows.column(col)).to_pylist() if col else nothing

    parts = [values(c) for c in hs.text_columns]
    texts: list[tuple[str | None, ...]] = list(zip(*parts, strict=True)) if parts else [()] * n
    return hs.classify(texts, values(hs.category_column), values(hs.code_column))


def _valid(a: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.is_valid(a).to_numpy(zero_copy_only=False), dtype=bool)


def _text(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    s = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _build(
    rule: ColumnRule, rows: pa.Table, countries: CountryNames, notes: dict[str, Any]
) -> pa.Array | pa.ChunkedArray:
    n = rows.num_rows
    null = pa.scalar(None, pa.string())
    col: Any
    if rule.first_of:
        col = pc.coalesce(*[_build(alt, rows, countries, notes) for alt in rule.first_of])
        return _when(rule, rows, col)
    if rule.has_const:
        value = None if rule.const is None else _scalar_text(rule.const)
        col = pa.array(np.full(n, value, dtype=object), type=pa.string())
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
    if rule.match is not None:
        col = _match(rule, col)
    if rule.country:
        names = col.to_pylist()
        codes, unmatched = countries.resolve_many(names)
        # reported, not guessed: an unmatched name passes through, so the contract check makes
        # it missing and records it as a data-quality issue with its text (a name the office
        # refuses in countries: is simply missing); the coverage lists both
        keep = {n for n in unmatched if not countries.refused(n)}
        col = pa.array(
            [n if c is None and n in keep else c for n, c in zip(names, codes, strict=True)],
            pa.string(),
        )
        if unmatched:
            seen = notes["unmatched_countries"].setdefault(rule.name, {})
            for name, count in unmatched.items():
                seen[name] = seen.get(name, 0) + count
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
        formats = (rule.date_format,) if isinstance(rule.date_format, str) else rule.date_format
        parsed = []
        for fmt in formats:
            ts = pc.strptime(col, format=fmt, unit="s", error_is_null=True)
            if rule.add_days:
                ts = pc.add(ts, pa.scalar(timedelta(days=rule.add_days), pa.duration("s")))
            # With %z the parsed instant is UTC; keep its offset so it is not re-read as local.
            out_fmt = _ISO_OUT + "%z" if "%z" in fmt else _ISO_OUT
            parsed.append(pc.strftime(ts, format=out_fmt))
        formatted = pc.coalesce(*parsed)  # the first format that parses
        # Keep a failed value visible (and failing the ISO rule) rather than turning it into null.
        failed = pc.binary_join_element_wise("unparseable date: ", col, "")
        col = pc.if_else(pc.is_valid(formatted), formatted, failed)
    if rule.prefix is not None:
        col = pc.binary_join_element_wise(pa.scalar(rule.prefix), col, "")  # null stays null
    return _when(rule, rows, col)


def _when(rule: ColumnRule, rows: pa.Table, col: Any) -> Any:
    """Keep the value only on rows whose ``when`` columns hold one of the listed values."""
    null = pa.scalar(None, pa.string())
    for src, allowed in rule.when.items():
        cond = pc.is_in(_text(rows.column(src)), value_set=pa.array(allowed, pa.string()))
        col = pc.if_else(pc.fill_null(cond, False), col, null)
    return col


_NO_MATCH: Any = object()


def _match(rule: ColumnRule, col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ordered regular expressions over folded text; unmatched: ``default`` or missing."""
    assert rule.match is not None
    cache: dict[str, str | None] = {}
    out: list[str | None] = []
    for value in col.to_pylist():
        if value is None:
            out.append(None)
            continue
        if value not in cache:
            folded = fold(value)
            hit = next((v for p, v in rule.match if p.search(folded)), _NO_MATCH)
            cache[value] = (rule.default if rule.has_default else None) if hit is _NO_MATCH else hit
        out.append(cache[value])
    return pa.array(out, pa.string())


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _date_formats(spec: Any, where: str) -> str | tuple[str, ...] | None:
    if spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, list) and spec and all(isinstance(f, str) for f in spec):
        return tuple(spec)
    raise MappingError(f"{where}.date_format: a strptime format or a list of them")


def _match_rules(spec: Any, where: str) -> tuple[tuple[re.Pattern[str], str | None], ...]:
    if not isinstance(spec, list) or not spec:
        raise MappingError(f"{where}: expected a list of {{pattern, value}}")
    out = []
    for i, item in enumerate(spec):
        if (
            not isinstance(item, dict)
            or set(item) - {"pattern", "value", "name"}
            or ("pattern" not in item or "value" not in item)
        ):
            raise MappingError(f"{where}[{i}]: expected {{pattern, value}} (and optional name)")
        try:
            pattern = compile_folded(str(item["pattern"]), f"{where}[{i}]")
        except ProductRuleError as exc:
            raise MappingError(str(exc)) from None
        value = item["value"]
        out.append((pattern, None if value is None else _scalar_text(value)))
    return tuple(out)


def _column_rule(table: str, name: str, spec: Any, where: str = "") -> ColumnRule:
    where = where or f"tables.{table}.columns.{name}"
    if isinstance(spec, str):
        return ColumnRule(name=name, source=spec)
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a source column name or a mapping of operations")
    unknown = set(spec) - COLUMN_OPS
    if unknown:
        raise MappingError(
            f"{where}: unknown operation(s) {sorted(unknown)}; allowed: {sorted(COLUMN_OPS)}"
        )
    if "first_of" in spec:
        alts = spec["first_of"]
        if set(spec) - {"first_of", "when"}:
            raise MappingError(f"{where}: first_of takes only 'when' beside it")
        if not isinstance(alts, list) or not alts:
            raise MappingError(f"{where}.first_of: expected a list of column specs")
        when_fo = spec.get("when", {}) or {}
        if not isinstance(when_fo, dict):
            raise MappingError(f"{where}.when: expected {{source column: [values]}}")
        return ColumnRule(
            name=name,
            first_of=tuple(
                _column_rule(table, name, a, f"{where}.first_of[{i}]") for i, a in enumerate(alts)
            ),
            when={
                str(k): [_scalar_text(v) for v in (vals if isinstance(vals, list) else [vals])]
                for k, vals in when_fo.items()
            },
        )
    if ("from" in spec) == ("const" in spec):
        raise MappingError(f"{where}: give exactly one of 'from' or 'const'")
    if "map" in spec and "match" in spec:
        raise MappingError(f"{where}: give at most one of 'map' or 'match'")
    match = None
    if "match" in spec:
        match = _match_rules(spec["match"], f"{where}.match")
    country = spec.get("country")
    if country not in (None, False, "names"):
        raise MappingError(f"{where}.country: the only form is 'country: names'")
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
            date_format=_date_formats(spec.get("date_format"), where),
            add_days=None if spec.get("add_days") is None else float(spec["add_days"]),
            when={
                str(k): [_scalar_text(v) for v in (vals if isinstance(vals, list) else [vals])]
                for k, vals in when.items()
            },
            match=match,
            country=country == "names",
            prefix=None if spec.get("prefix") is None else _scalar_text(spec["prefix"]),
        )
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{where}: {exc}") from None


def _hs_rule(table: str, spec: Any, base: Path) -> HsClassifier:
    where = f"tables.{table}.hs"
    if table != "risk_signals":
        raise MappingError(f"{where}: only risk_signals take an hs section")
    if not isinstance(spec, dict):
        raise MappingError(f"{where}: expected a mapping with text, rules, category, categories")
    unknown = set(spec) - HS_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(HS_KEYS)}")
    text = spec.get("text") or []
    text = [text] if isinstance(text, str) else list(text)
    if spec.get("rules") and not text:
        raise MappingError(f"{where}: rules need 'text' (the product text column(s))")
    if spec.get("categories") and not spec.get("category"):
        raise MappingError(f"{where}: categories need 'category' (the category column)")
    try:
        rules = tuple(keyword_rule(r, i) for i, r in enumerate(spec.get("rules") or []))
        cats_spec = spec.get("categories") or {}
        if isinstance(cats_spec, str):
            path = Path(cats_spec)
            cats = load_category_table(path if path.is_absolute() else base / path)
        elif isinstance(cats_spec, dict):
            cats = {str(k): parse_codes(v, f"{where}.categories.{k}") for k, v in cats_spec.items()}
        else:
            raise MappingError(f"{where}.categories: a CSV file name or an inline mapping")
    except ProductRuleError as exc:
        raise MappingError(f"{where}: {exc}") from None
    return HsClassifier(
        text_columns=tuple(str(t) for t in text),
        rules=rules,
        category_column=None if spec.get("category") is None else str(spec["category"]),
        categories={fold_category(k): (k, v) for k, v in cats.items()},
        code_column=None if spec.get("code") is None else str(spec["code"]),
    )


def _table_rule(table: str, spec: Any, base: Path | None = None) -> TableRule:
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
    hs = None
    if spec.get("hs") is not None:
        hs = _hs_rule(table, spec["hs"], base or Path("."))
        clash = [c.name for c in columns if c.name in HS_OUTPUTS]
        if clash:
            raise MappingError(
                f"tables.{table}.columns.{clash[0]}: written by the hs section (use hs.code for "
                "a source column of HS codes)"
            )
    return TableRule(table, tuple(columns), attributes, tuple(str(r) for r in rows_with), hs)


def parse_mapping(doc: Any, path: str = "") -> Mapping:
    """Check a loaded YAML document and build a :class:`Mapping`.

    File names inside it (a category table) are relative to the folder of ``path``.
    """
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
        base = Path(path).parent if path else Path(".")
        tables = tuple(_table_rule(t, spec, base) for t, spec in s["tables"].items())
        sources.append(SourceRule(str(s["file"]), tables))
    if not sources:
        raise MappingError("'sources' is empty")
    seen: set[str] = set()
    for s in sources:
        for t in s.tables:
            if t.table in seen:
                raise MappingError(f"table {t.table!r} is derived twice")
            seen.add(t.table)
    countries = doc.get("countries") or {}
    if not isinstance(countries, dict):
        raise MappingError("countries: expected a mapping of name -> alpha-2 code (or null)")
    for name, code in countries.items():
        if code is not None and not re.match(r"^[A-Z]{2}$", str(code)):
            raise MappingError(f"countries.{name}: {code!r} is not an alpha-2 code (or null)")
    return Mapping(
        tuple(sources),
        path,
        {str(k): None if v is None else str(v) for k, v in countries.items()},
    )


def load_mapping(path: Path) -> Mapping:
    """Read a YAML mapping file (``yaml.safe_load``: no Python objects, no code)."""
    try:
        doc = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"cannot read mapping: {exc}") from None
    return parse_mapping(doc, str(path))
