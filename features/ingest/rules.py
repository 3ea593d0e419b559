"""Column rules, vectorised: one boolean mask per rule over a file's rows, from
``features.contract`` (never re-typed here); a failed required value quarantines its row, a
failed optional one becomes missing with a data-quality issue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import (
    COUNTRY_CODES,
    COUNTRY_PATTERN,
    CURRENCY_PATTERN,
    DIGITS_PATTERN,
    DQ_ISSUE_COUNT,
    FALSE_TEXT,
    FLOAT_PATTERN,
    R_BOOL,
    R_COUNTRY_FMT,
    R_COUNTRY_UNKNOWN,
    R_CURRENCY_FMT,
    R_ENUM,
    R_HS_DIGITS,
    R_MISSING,
    R_NUMBER,
    R_TS,
    TIMESTAMP_PATTERN,
    TRUE_TEXT,
    ColumnSpec,
    TableSpec,
    expected_missing_reason,
)
from features.store import TS_TYPE

TS_RE = TIMESTAMP_PATTERN
TS_OFFSET_RE = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$"
R_NO_SUBJECT = "no subject"


Array: TypeAlias = pa.Array | pa.ChunkedArray


def as_mask(mask: Array) -> np.ndarray:
    """Arrow boolean (nulls = False) -> numpy bool."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _norm_str(col: Array) -> Array:
    """Any column -> trimmed strings, empty = null."""
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    s = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _parse_iso(strings: Array, target: pa.DataType) -> Array:
    """Arrow's ISO-8601 cast (fast); pandas per-value coercion when some value is impossible."""
    try:
        return pc.cast(strings, target)
    except pa.ArrowInvalid:
        s = pd.Series(strings.to_pandas(), dtype=object)
        utc = target.tz is not None
        parsed = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=utc)
        unit = "datetime64[ns, UTC]" if utc else "datetime64[ns]"
        return pa.array(parsed.astype(unit), type=target)  # type: ignore[call-overload]


def parse_timestamp(col: Array, tz: str) -> tuple[Array, np.ndarray]:
    """Column -> ``timestamp[ns, UTC]`` and a mask of present-but-unparseable values.

    Naive values (no offset) are local time of ``tz``; at a DST gap or overlap the earliest
    valid instant is taken.
    """
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.assume_timezone(
                pc.cast(col, pa.timestamp("ns")),
                timezone=tz,
                ambiguous="earliest",
                nonexistent="earliest",
            )
        return pc.cast(col, TS_TYPE), np.zeros(len(col), dtype=bool)
    if pa.types.is_date(t):
        naive = pc.cast(pc.cast(col, pa.timestamp("s")), pa.timestamp("ns"))
        local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
        return pc.cast(local, TS_TYPE), np.zeros(len(col), dtype=bool)
    s = _norm_str(col)
    shape_ok = pc.match_substring_regex(s, TS_RE)
    s = pc.if_else(shape_ok, s, pa.scalar(None, pa.string()))
    has_offset = as_mask(pc.match_substring_regex(s, TS_OFFSET_RE))
    s_np_valid = as_mask(pc.is_valid(s))
    naive_s = pc.if_else(pa.array(s_np_valid & ~has_offset), s, pa.scalar(None, pa.string()))
    naive = _parse_iso(naive_s, pa.timestamp("ns"))
    local = pc.cast(
        pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest"),
        TS_TYPE,
    )
    if has_offset.any():
        off_s = pc.if_else(pa.array(has_offset), s, pa.scalar(None, pa.string()))
        offset = _parse_iso(off_s, TS_TYPE)
        local = pc.if_else(pa.array(has_offset), offset, local)
    bad = as_mask(pc.is_valid(_norm_str(col))) & ~as_mask(pc.is_valid(local))
    return local, bad


def parse_float(col: Array) -> tuple[Array, np.ndarray]:
    """Column -> float64 and a mask of present-but-not-a-number values (inf/NaN text included)."""
    if (
        pa.types.is_integer(col.type)
        or pa.types.is_floating(col.type)
        or pa.types.is_decimal(col.type)
    ):
        f = pc.cast(col, pa.float64())
        nan = as_mask(pc.is_nan(f))
        inf = as_mask(pc.invert(pc.is_finite(f))) & ~nan
        f = pc.if_else(pa.array(nan | inf), pa.scalar(None, pa.float64()), f)
        return f, inf
    s = _norm_str(col)
    ok = pc.match_substring_regex(s, FLOAT_PATTERN)
    f = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    bad = as_mask(pc.is_valid(s)) & ~as_mask(ok)
    overflow = as_mask(pc.is_inf(f))  # "1e400": a number's shape, but no finite value
    if overflow.any():
        f = pc.if_else(pa.array(overflow), pa.scalar(None, pa.float64()), f)
        bad |= overflow
    return f, bad


def parse_bool(col: Array, default: bool) -> tuple[Array, np.ndarray]:
    """Column -> bool (nulls = contract default) and a mask of unparseable values."""
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, default), np.zeros(len(col), dtype=bool)
    s = pc.utf8_lower(_norm_str(col))
    is_true = pc.is_in(s, value_set=pa.array(list(TRUE_TEXT)))
    is_false = pc.is_in(s, value_set=pa.array(list(FALSE_TEXT)))
    bad = as_mask(pc.is_valid(s)) & ~as_mask(is_true) & ~as_mask(is_false)
    out = pc.if_else(pc.is_null(s), default, is_true)
    return pc.fill_null(out, default), bad


@dataclass
class Checked:
    """One table after the column rules: typed columns, failed rules and data-quality issues.

    ``problems`` (a required column's rule, or a table rule) quarantine their rows; ``issues``
    (an optional column's rule, contract 1.1) keep them, the value already set missing in
    ``typed``. Each is ``(column, reason, mask over the rows)``.
    """

    spec: TableSpec
    n: int
    typed: dict[str, Array]
    extras: dict[str, Array]
    problems: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    issues: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    # The values as received of the columns with issues (for the data_quality rows).
    raw: dict[str, Array] = field(default_factory=dict)

    def add(self, column: str, reason: str, mask: np.ndarray) -> None:
        if mask.any():
            self.problems.append((column, reason, mask))

    def add_issue(self, column: str, reason: str, mask: np.ndarray) -> None:
        if mask.any():
            self.issues.append((column, reason, mask))

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for _, _, m in self.problems:
            out |= m
        return out

    def issue_counts(self) -> np.ndarray:
        """Data-quality issues per row (int64)."""
        out = np.zeros(self.n, dtype=np.int64)
        for _, _, m in self.issues:
            out += m
        return out

    def series(self, name: str) -> pd.Series:
        return pd.Series(self.typed[name].to_pandas()).reset_index(drop=True)


def _set_missing(value: Array, col: ColumnSpec, mask: np.ndarray) -> Array:
    """``value`` with the rows of ``mask`` missing (a bool column: its contract default)."""
    if not mask.any():
        return value
    fill = pa.scalar(bool(col.default)) if col.kind == "bool" else pa.scalar(None, value.type)
    return pc.if_else(pa.array(mask), fill, value)


def _column_rules(col: ColumnSpec, raw: Array, tz: str) -> tuple[Array, np.ndarray, list]:
    """One column's contract rules: typed value, "present" mask, [(reason, mask)] of failures.

    The same rules as ``features.contract.check_value`` (a test holds them to the same verdict),
    vectorised. A failed value is null in the typed column (a bool: its default), except a number
    below its bound, which the caller sets missing.
    """
    n = len(raw)
    failed: list[tuple[str, np.ndarray]] = []
    kind = col.kind
    if kind == "timestamp":
        value, bad = parse_timestamp(raw, tz)
        failed.append((R_TS, bad))
        present = (
            as_mask(pc.is_valid(_norm_str(raw)))
            if not pa.types.is_timestamp(raw.type)
            else as_mask(pc.is_valid(raw))
        )
    elif kind == "float":
        value, bad = parse_float(raw)
        failed.append((R_NUMBER, bad))
        present = as_mask(pc.is_valid(value)) | bad
        if col.min_value is not None:
            below = (
                pc.less_equal(value, col.min_value)
                if col.min_exclusive
                else pc.less(value, col.min_value)
            )
            failed.append((col.bound_reason, as_mask(below)))
    elif kind == "bool":
        value, bad = parse_bool(raw, bool(col.default))
        failed.append((R_BOOL, bad))
        present = np.ones(n, dtype=bool)  # a null bool takes the contract default
    else:
        value = _norm_str(raw)
        present = as_mask(pc.is_valid(value))
        if kind == "enum":
            ok = pc.is_in(value, value_set=pa.array(list(col.values)))
            failed.append((R_ENUM, present & ~as_mask(ok)))
        elif kind == "hs":
            digits = as_mask(pc.match_substring_regex(value, DIGITS_PATTERN))
            failed.append((R_HS_DIGITS, present & ~digits))
            length = pc.utf8_length(value)
            ok_len = pc.and_(
                pc.greater_equal(length, col.hs_min), pc.less_equal(length, col.hs_max)
            )
            failed.append((col.hs_length_reason, present & digits & ~as_mask(ok_len)))
        elif kind == "hs_list":
            ok = as_mask(pc.match_substring_regex(value, col.hs_list_pattern))
            failed.append((col.hs_list_reason, present & ~ok))
        elif kind == "country":
            fmt = as_mask(pc.match_substring_regex(value, COUNTRY_PATTERN))
            failed.append((R_COUNTRY_FMT, present & ~fmt))
            known = as_mask(pc.is_in(value, value_set=pa.array(sorted(COUNTRY_CODES))))
            failed.append((R_COUNTRY_UNKNOWN, present & fmt & ~known))
        elif kind == "currency":
            fmt = as_mask(pc.match_substring_regex(value, CURRENCY_PATTERN))
            failed.append((R_CURRENCY_FMT, present & ~fmt))
    return value, present, failed


def check_columns(
    spec: TableSpec, data: pa.Table, tz: str, attributes: dict[str, str] | None = None
) -> Checked:
    """Apply every column rule of ``spec`` to ``data``; no per-row Python.

    ``data`` holds the source columns (strings from CSV, or typed from Parquet); missing optional
    columns are treated as all null. A failed rule on a required column is a problem (the row is
    quarantined); on an optional column an issue (the value becomes missing, the row is kept).
    Extra columns are kept (numeric ``attributes`` parsed, an unparseable value an issue).
    """
    n = data.num_rows
    out = Checked(spec, n, {}, {})
    for col in spec.columns:
        raw = data.column(col.name) if col.name in data.column_names else pa.nulls(n, pa.string())
        value, present, failed = _column_rules(col, raw, tz)
        if col.required:
            for reason, mask in failed:
                out.add(col.name, reason, mask)
            out.add(col.name, R_MISSING, ~present)
        else:
            dropped = np.zeros(n, dtype=bool)
            for reason, mask in failed:
                out.add_issue(col.name, reason, mask)
                dropped |= mask
            if dropped.any():
                out.raw[col.name] = raw
                value = _set_missing(value, col, dropped)
        out.typed[col.name] = value
    for col in spec.columns:
        if col.expected_when is None:
            continue
        other, wanted = col.expected_when
        # Missing as received (a value that broke a rule already has its issue).
        absent = (
            as_mask(pc.is_null(_norm_str(data.column(col.name))))
            if col.name in data.column_names
            else np.ones(n, dtype=bool)
        )
        when = as_mask(pc.equal(out.typed[other], wanted))
        out.add_issue(col.name, expected_missing_reason(col), when & absent)
    if spec.one_of_required:
        any_subject = np.zeros(n, dtype=bool)
        for name in spec.one_of_required:
            any_subject |= as_mask(pc.is_valid(out.typed[name]))
        out.add(",".join(spec.one_of_required), R_NO_SUBJECT, ~any_subject)
    derived = set(spec.names) | {"declared_value_usd", DQ_ISSUE_COUNT}
    for name in data.column_names:
        if name in derived:
            continue
        attr_kind = (attributes or {}).get(name)
        if attr_kind == "numeric":
            value, bad = parse_float(data.column(name))
            out.add_issue(name, R_NUMBER, bad)
            if bad.any():
                out.raw[name] = data.column(name)
            out.extras[name] = value
        else:
            col = data.column(name)
            out.extras[name] = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
    return out


def duplicated_in_file(keys: pd.DataFrame) -> np.ndarray:
    """Later repeats of a non-null key (the first occurrence in file order is kept)."""
    return (keys.duplicated(keep="first") & keys.notna().all(axis=1)).to_numpy()


def found_in_store(keys: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    if stored.empty or keys.empty:
        return np.zeros(len(keys), dtype=bool)
    if keys.shape[1] == 1:
        c = keys.columns[0]
        return keys[c].isin(stored[c]).to_numpy()
    merged = keys.merge(stored.drop_duplicates(), how="left", indicator=True)
    return (merged["_merge"] == "both").to_numpy()
