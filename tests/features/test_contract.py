"""The contract's value rules: one set, two implementations that must agree.

Ingest applies the rules vectorised over a file (``features.ingest.check_columns``); the API
applies them one value at a time (``features.contract.check_value``). For every column of every
table and every raw value (hand-picked edge cases, then random text), both give the same verdict:
the same reason (or none) and the same value kept.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import (
    COUNTRY_CODES,
    R_MISSING,
    TABLES,
    USER_ASSIGNED_CODES,
    ColumnSpec,
    check_value,
)
from features.ingest import check_columns

COLUMNS = [(t.name, c) for t in TABLES.values() for c in t.columns]
EDGE = [
    None,
    "",
    "  ",
    "0",
    "-0",
    "0.0",
    "-1",
    "1e-3",
    "35.5",
    " 12 ",
    "1e400",
    "-1e400",
    "1e-400",
    "abc",
    "12,5",
    "inf",
    "nan",
    "true",
    "FALSE",
    "maybe",
    "import",
    "IMPORT",
    "sea",
    "ship",
    "nonconforming",
    "CN",
    "cn",
    "CHN",
    "ZZ",
    "XX",
    "QU",
    "EU",
    "AB",
    "NA",
    "USD",
    "usd",
    "0303",
    "030389",
    "03O3",
    "12345678901",
    "2024-03-01",
    "2024-03-01T10:00:00+08:00",
    "2024-02-30T10:00:00",
    "2024/01/02",
    "yesterday",
]


def _ingest_verdict(table: str, col: ColumnSpec, values: list[str | None]) -> list[tuple]:
    """(reason or None, value) of each value as ingest's vectorised rules see it."""
    data = pa.table({col.name: pa.array(values, pa.string())})
    checked = check_columns(TABLES[table], data, "Asia/Shanghai")
    failures = checked.problems if col.required else checked.issues
    out = []
    typed = checked.typed[col.name].to_pylist()
    for i in range(len(values)):
        reasons = [r for c, r, m in failures if c == col.name and m[i] and r != R_MISSING]
        assert len(reasons) <= 1, (col.name, values[i], reasons)
        out.append((reasons[0] if reasons else None, typed[i]))
    return out


def _same_value(kind: str, ingest_value, api_value) -> bool:
    if ingest_value is None or api_value is None:
        return ingest_value is None and api_value is None
    if kind == "float":
        return math.isclose(ingest_value, api_value, rel_tol=0, abs_tol=0)
    if kind == "timestamp":
        return True  # both parsed (time zones are ingest's business)
    return ingest_value == api_value


def _assert_agree(table: str, col: ColumnSpec, values: list[str | None]) -> None:
    for raw, (reason, value) in zip(values, _ingest_verdict(table, col, values), strict=True):
        api = check_value(col, raw)
        assert api.reason == reason, (table, col.name, raw)
        if reason is not None and col.required:
            continue  # the row is quarantined: no value is kept
        if reason is not None:
            # The row is kept with the value missing (a bool: its default).
            assert api.value == (col.default if col.kind == "bool" else None)
        assert _same_value(col.kind, value, api.value), (table, col.name, raw, value, api.value)


@pytest.mark.parametrize(("table", "col"), COLUMNS, ids=[f"{t}.{c.name}" for t, c in COLUMNS])
def test_ingest_and_api_rules_agree_on_edge_cases(table: str, col: ColumnSpec) -> None:
    _assert_agree(table, col, EDGE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.text(alphabet="0123456789.-+eE ", max_size=8),
            st.text(alphabet="ABCXYZQUabc", min_size=1, max_size=4),
            st.text(max_size=6),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_ingest_and_api_rules_agree_on_random_text(values: list[str]) -> None:
    # NUL and lone surrogates cannot come out of a decoded CSV cell.
    values = [
        v for v in values if "\x00" not in v and not any(0xD800 <= ord(c) < 0xE000 for c in v)
    ]
    for table, col in COLUMNS:
        if col.kind not in ("id", "str"):
            _assert_agree(table, col, values)


def test_user_assigned_and_reserved_codes_are_valid_countries() -> None:
    origin = TABLES["declarations"].column("origin_country")
    for code in ("ZZ", "XX", "QU", "EU", "AA", "XK", "NA"):
        assert code in COUNTRY_CODES
        assert check_value(origin, code).reason is None
    assert {"ZZ", "XX", "QU", "QM", "QZ", "XA", "AA"} <= USER_ASSIGNED_CODES
    assert check_value(origin, "AB").reason == "unknown country code"
    assert check_value(origin, "QL").reason == "unknown country code"


def test_json_values_follow_the_same_rules() -> None:
    weight = TABLES["declarations"].column("net_weight_kg")
    assert check_value(weight, 0).reason == "must be > 0"
    assert check_value(weight, -1.5).reason == "must be > 0"
    assert check_value(weight, 12).value == 12.0
    assert check_value(weight, True).reason == "not a number"
    assert check_value(weight, "35.5").value == 35.5
    cert = TABLES["declarations"].column("third_party_certificate")
    assert check_value(cert, "maybe").value is False
    assert check_value(cert, True).value is True
