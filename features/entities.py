"""Entity keys of declarations: the same key strings offline, in the snapshot and online.

A key is the entity's field values joined with ``KEY_SEP``; a declaration with a missing field has
no key for that entity (its features are NaN). HS prefixes come from ``hs_code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.registry import Entity, entity_definition, resolve_entities
from features.windows import combine_codes

KEY_SEP = "\x1f"
# Declaration fields entity keys are made of, read as they are (HS prefixes derive from hs_code).
KEY_FIELDS = (
    "enterprise_id",
    "declarant_id",
    "overseas_party_id",
    "origin_country",
    "port_code",
    "hs_code",
    "transport_mode",
    "trade_mode",
)
BASE_FIELDS = (*KEY_FIELDS, "hs2", "hs4", "hs6")


def entities_for(
    attributes: dict[str, str] | None, entities: tuple[str, ...] | list[str] | None = None
) -> dict[str, Entity]:
    """Definitions of the entity set built from ``entities`` (None: the default set), parents
    included (``features.registry.resolve_entities``)."""
    return {
        name: entity_definition(name, attributes) for name in resolve_entities(entities, attributes)
    }


def _as_str(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:  # the common case, without pd.isna
        return value if value != "" else None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    s = str(value)
    return s if s != "" else None


def row_fields(row: Mapping[str, Any], attributes: dict[str, str] | None) -> dict[str, str | None]:
    """Key fields of one declaration dict (online and incremental snapshot updates)."""
    out: dict[str, str | None] = {f: _as_str(row.get(f)) for f in KEY_FIELDS}
    hs = out["hs_code"] or ""
    out["hs2"] = hs[:2] if len(hs) >= 2 else None
    out["hs4"] = hs[:4] if len(hs) >= 4 else None
    out["hs6"] = hs[:6] if len(hs) >= 6 else None
    for name, kind in (attributes or {}).items():
        if kind == "categorical":
            out[name] = _as_str(row.get(name))
    return out


def row_key(fields: Mapping[str, str | None], entity: Entity) -> str | None:
    """Key string of one entity for one declaration (None if a field is missing)."""
    parts = [fields.get(f) for f in entity.fields]
    if any(p is None for p in parts):
        return None
    return KEY_SEP.join(parts)  # type: ignore[arg-type]


def frame_fields(decl: pd.DataFrame, attributes: dict[str, str] | None) -> dict[str, pd.Series]:
    """Key fields of a declarations frame as ``str`` Series with NA (empty strings become NA)."""
    hs = decl["hs_code"].astype("str")
    cols: dict[str, pd.Series] = {}
    for f in KEY_FIELDS:
        cols[f] = (
            decl[f].astype("str") if f in decl else pd.Series(pd.NA, index=decl.index, dtype="str")
        )
    length = hs.str.len()
    for n in (2, 4, 6):
        cols[f"hs{n}"] = hs.str.slice(0, n).where(length >= n)
    for name, kind in (attributes or {}).items():
        if kind == "categorical":
            cols[name] = decl[name].astype("str")
    for f, s in cols.items():
        cols[f] = s.where(s != "")
    return cols


def frame_keys(fields: Mapping[str, pd.Series], entity: Entity) -> pd.Series:
    """Key string of every row of a frame's fields (NA where a field is missing), as
    :meth:`EntityCoder.keys` spells them."""
    out = fields[entity.fields[0]].astype("str")
    for f in entity.fields[1:]:
        out = out + KEY_SEP + fields[f].astype("str")
    return out


class EntityCoder:
    """Integer codes (and, on demand, key strings) of every entity for a declarations frame."""

    def __init__(self, fields: dict[str, pd.Series]) -> None:
        self._field_codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for f, s in fields.items():
            codes, uniques = pd.factorize(s, use_na_sentinel=True)
            self._field_codes[f] = (codes.astype(np.int64), np.asarray(uniques, dtype=object))
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def field(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(codes, unique values) of one base field."""
        return self._field_codes[name]

    def codes(self, entity: Entity) -> np.ndarray:
        """int64 code per declaration (-1: a field is missing)."""
        if entity.fields not in self._cache:
            code = self._field_codes[entity.fields[0]][0]
            for f in entity.fields[1:]:
                code = combine_codes(code, self._field_codes[f][0])
            self._cache[entity.fields] = code
        return self._cache[entity.fields]

    def keys(self, entity: Entity) -> np.ndarray:
        """Key string per code (object array indexed by code)."""
        code = self.codes(entity)
        n = int(code.max()) + 1 if len(code) else 0
        first = np.full(n, -1, dtype=np.int64)
        ok = code >= 0
        rows = np.flatnonzero(ok)
        # One representative row per code gives its field values.
        first[code[rows[::-1]]] = rows[::-1]
        parts = []
        for f in entity.fields:
            fcodes, uniques = self._field_codes[f]
            parts.append(uniques[fcodes[first]] if n else np.array([], dtype=object))
        if len(parts) == 1:
            return np.asarray(parts[0], dtype=object)
        out = pd.Series(parts[0], dtype="str")
        for p in parts[1:]:
            out = out + KEY_SEP + pd.Series(p, dtype="str")
        return out.to_numpy(dtype=object)
