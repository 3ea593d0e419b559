"""All-history state of every entity key before a cut: what the partitioned build carries forward.

The bounded windows (30, 90, 365 days) of a declaration at ``t`` only read events after
``t - 365 days``; everything older reaches a feature only through the all-history aggregations
(declarations, results, nonconformities, first declaration, last nonconformity, behaviour sums).
:class:`History` holds exactly those per key, so the partitioned build
(``features.partitioned``) needs one partition plus the year before it in memory, never the whole
past. The offline build (``features.build``) adds these totals to what it counts inside its frame.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# Declaration behaviour sums (``features.build.BEHAVIOUR_SUMS``), repeated here so this leaf
# module imports nothing from the build; ``tests/features/test_partitioned.py`` holds them equal.
BEHAVIOUR_SUM_NAMES = ("cert", "legal", "legal_cert", "uv_n", "uv_low", "uv_sum")
RESULT_KINDS = ("insp", "nc", "ncmaj", "rand")
NO_TIME = np.iinfo(np.int64).min
LATE_TIME = np.iinfo(np.int64).max
_SUMMED = ("decl", *RESULT_KINDS, *BEHAVIOUR_SUM_NAMES)
COLUMNS = (*_SUMMED, "first_t", "last_nc_t")


class History:
    """Per-key totals of everything before :attr:`cut` (int64 ns), for every entity.

    Parameters
    ----------
    cut
        Declarations with ``declared_at < cut`` and results with ``inspected_at < cut`` are in
        the totals; nothing later is.
    """

    def __init__(self, cut: int = NO_TIME) -> None:
        self.cut = cut
        self.global_counts: dict[str, int] = dict.fromkeys(RESULT_KINDS, 0)
        self._keys: dict[str, pd.DataFrame] = {}

    def __len__(self) -> int:
        """Number of (entity, key) rows held."""
        return sum(len(f) for f in self._keys.values())

    def entity(self, name: str, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Totals of one entity aligned to ``keys`` (a frame's key strings, indexed by code).

        Unknown keys get zero counts, ``first_t = LATE_TIME`` and ``last_nc_t = NO_TIME``.
        """
        frame = self._keys.get(name)
        n = len(keys)
        if frame is None or frame.empty:
            out = {c: np.zeros(n) for c in _SUMMED}
            out["first_t"] = np.full(n, LATE_TIME, dtype=np.int64)
            out["last_nc_t"] = np.full(n, NO_TIME, dtype=np.int64)
            return out
        pos = frame.index.get_indexer(pd.Index(keys, dtype="str"))
        known = pos >= 0
        res: dict[str, np.ndarray] = {}
        for c in COLUMNS:
            col = frame[c].to_numpy()
            fill = {"first_t": LATE_TIME, "last_nc_t": NO_TIME}.get(c, 0)
            values = np.full(n, fill, dtype=col.dtype)
            values[known] = col[pos[known]]
            res[c] = values
        return res

    def add(
        self,
        name: str,
        keys: pd.Series,
        *,
        declared_at: np.ndarray | None = None,
        terms: np.ndarray | None = None,
        inspected_at: np.ndarray | None = None,
        flags: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Add declarations (``declared_at`` and their behaviour ``terms``, shape
        ``(len(BEHAVIOUR_SUM_NAMES), n)``) or results (``inspected_at`` and 0/1 ``flags``) of
        one entity; rows whose key is NA are skipped."""
        ok = keys.notna().to_numpy()
        if not ok.any():
            return
        data: dict[str, np.ndarray] = {}
        n = int(ok.sum())
        if declared_at is not None:
            assert terms is not None
            data["decl"] = np.ones(n)
            for i, c in enumerate(BEHAVIOUR_SUM_NAMES):
                data[c] = terms[i][ok]
            data["first_t"] = declared_at[ok]
        if inspected_at is not None:
            assert flags is not None
            for k in RESULT_KINDS:
                data[k] = np.asarray(flags[k], dtype=np.float64)[ok]
            nc = np.asarray(flags["nc"], dtype=bool)[ok]
            data["last_nc_t"] = np.where(nc, inspected_at[ok], NO_TIME)
        new = pd.DataFrame(data, index=pd.Index(keys[ok].to_numpy(), dtype="str"))
        for c in _SUMMED:
            if c not in new:
                new[c] = 0.0
        if "first_t" not in new:
            new["first_t"] = LATE_TIME
        if "last_nc_t" not in new:
            new["last_nc_t"] = NO_TIME
        old = self._keys.get(name)
        both = new if old is None else pd.concat([old, new])
        agg = {**dict.fromkeys(_SUMMED, "sum"), "first_t": "min", "last_nc_t": "max"}
        merged = both.groupby(level=0, sort=False).agg(agg)
        merged["first_t"] = merged["first_t"].astype(np.int64)
        merged["last_nc_t"] = merged["last_nc_t"].astype(np.int64)
        self._keys[name] = merged[list(COLUMNS)]

    def add_global(self, flags: Mapping[str, np.ndarray]) -> None:
        """Add results to the all-keys totals (the root prior of every smoothed rate)."""
        for k in RESULT_KINDS:
            self.global_counts[k] += int(np.asarray(flags[k]).sum())
