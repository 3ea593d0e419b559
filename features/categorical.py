"""Native categorical features: code maps fitted on training data, frozen in the model bundle.

A code map lists the values of one key column (``features.registry.categorical_keys``) that were
frequent enough when the model was trained; a value's code is its position, and any value not in
the map (unseen, rare or missing) is NaN, so LightGBM sends it down the missing branch. The same
map serves the offline build, batch rescoring and the online row (``features.online``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.entities import frame_fields
from features.registry import categorical_keys

CodeMaps = dict[str, list[str]]
# A value needs this many declarations to get its own code (rarer ones are missing: LightGBM
# could not learn them anyway, min_data_per_group is 100 by default).
MIN_COUNT = 30
# At most this many codes per column, the most frequent first (medium cardinality: HS4 has
# about 1,200 headings).
MAX_VALUES = 1000


def fit_code_maps(
    declarations: pd.DataFrame,
    attributes: dict[str, str] | None = None,
    min_count: int = MIN_COUNT,
    max_values: int = MAX_VALUES,
) -> CodeMaps:
    """Code map of every categorical key column from ``declarations`` (labels are not read).

    Values are ordered by count (descending), ties by value, so the map is deterministic.
    """
    return code_maps_from_counts(value_counts(declarations, attributes), min_count, max_values)


def value_counts(
    declarations: pd.DataFrame, attributes: dict[str, str] | None = None
) -> dict[str, pd.Series]:
    """Declarations per value of every categorical key column (summable across partitions)."""
    fields = frame_fields(declarations, attributes)
    return {
        name: fields[key.field].value_counts(dropna=True)
        for name, key in categorical_keys(attributes).items()
    }


def code_maps_from_counts(
    counts: Mapping[str, pd.Series], min_count: int = MIN_COUNT, max_values: int = MAX_VALUES
) -> CodeMaps:
    """Code maps from :func:`value_counts` (of all declarations, or summed over partitions)."""
    maps: CodeMaps = {}
    for name, column in counts.items():
        column = column[column >= min_count]
        ordered = sorted(column.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        maps[name] = [str(v) for v, _ in ordered[:max_values]]
    return maps


def encode_frame(
    fields: Mapping[str, pd.Series], maps: CodeMaps, attributes: dict[str, str] | None
) -> dict[str, np.ndarray]:
    """float64 codes (NaN outside the map) of every categorical feature of a frame's fields."""
    out = {}
    for name, key in categorical_keys(attributes).items():
        codes = pd.Index(maps.get(name, []), dtype="str").get_indexer(pd.Index(fields[key.field]))
        values = codes.astype(np.float64)
        values[codes < 0] = np.nan
        out[name] = values
    return out


def lookups(maps: CodeMaps) -> dict[str, dict[str | None, float]]:
    """Value -> code dicts for one-row encoding (``features.online``)."""
    return {name: {v: float(i) for i, v in enumerate(values)} for name, values in maps.items()}
