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
        # Per entity: the keys seen, and one array per column aligned to them.
        self._index: dict[str, pd.Index] = {}
        self._columns: dict[str, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        """Number of (entity, key) rows held."""
        return sum(len(i) for i in self._index.values())

    def entity(self, name: str, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Totals of one entity aligned to ``keys`` (a frame's key strings, indexed by code).

        Unknown keys get zero counts, ``first_t = LATE_TIME`` and ``last_nc_t = NO_TIME``.
        """
        n = len(keys)
        index = self._index.get(name)
        pos = (
            index.get_indexer(pd.Index(keys, dtype="str"))
            if index is not None
            else np.full(n, -1, dtype=np.int64)
        )
        known = pos >= 0
        res: dict[str, np.ndarray] = {}
        for c in COLUMNS:
            fill = {"first_t": LATE_TIME, "last_nc_t": NO_TIME}.get(c, 0)
            dtype = np.int64 if c in ("first_t", "last_nc_t") else np.float64
            values = np.full(n, fill, dtype=dtype)
            if index is not None:
                values[known] = self._columns[name][c][pos[known]]
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
        codes, uniques = pd.factorize(keys[ok])
        m = len(uniques)
        new: dict[str, np.ndarray] = {}
        if declared_at is not None:
            assert terms is not None
            new["decl"] = np.bincount(codes, minlength=m).astype(np.float64)
            for i, c in enumerate(BEHAVIOUR_SUM_NAMES):
                new[c] = np.bincount(codes, weights=terms[i][ok], minlength=m)
            first = np.full(m, LATE_TIME, dtype=np.int64)
            np.minimum.at(first, codes, declared_at[ok])
            new["first_t"] = first
        if inspected_at is not None:
            assert flags is not None
            for k in RESULT_KINDS:
                w = np.asarray(flags[k], dtype=np.float64)[ok]
                new[k] = np.bincount(codes, weights=w, minlength=m)
            nc = np.asarray(flags["nc"], dtype=bool)[ok]
            last = np.full(m, NO_TIME, dtype=np.int64)
            np.maximum.at(last, codes, np.where(nc, inspected_at[ok], NO_TIME))
            new["last_nc_t"] = last
        index = self._index.get(name, pd.Index([], dtype="str"))
        pos = index.get_indexer(pd.Index(uniques, dtype="str"))
        fresh = pos < 0
        cols = self._columns.setdefault(name, {})
        n_old, n_new = len(index), int(fresh.sum())
        for c in COLUMNS:
            fill = {"first_t": LATE_TIME, "last_nc_t": NO_TIME}.get(c, 0)
            dtype = np.int64 if c in ("first_t", "last_nc_t") else np.float64
            old = cols.get(c, np.zeros(0, dtype=dtype))
            grown = np.concatenate([old, np.full(n_new, fill, dtype=dtype)])
            if c in new:
                at = pos.copy()
                at[fresh] = n_old + np.arange(n_new)
                if c == "first_t":
                    np.minimum.at(grown, at, new[c])
                elif c == "last_nc_t":
                    np.maximum.at(grown, at, new[c])
                else:
                    grown[at] += new[c]
            cols[c] = grown
        self._index[name] = index.append(pd.Index(uniques[fresh], dtype="str"))

    def add_global(self, flags: Mapping[str, np.ndarray]) -> None:
        """Add results to the all-keys totals (the root prior of every smoothed rate)."""
        for k in RESULT_KINDS:
            self.global_counts[k] += int(np.asarray(flags[k]).sum())
