"""All-history state of every entity key before a cut: what the partitioned build carries forward.

The bounded windows (30, 90, 365 days) of a declaration at ``t`` only read events after
``t - 365 days``; everything older reaches a feature only through the all-history aggregations
(declarations, results, nonconformities, first declaration, last nonconformity, behaviour sums).
:class:`History` holds exactly those per key, so the partitioned build
(``features.partitioned``) needs one partition plus the year before it in memory, never the whole
past. The offline build (``features.build``) adds these totals to what it counts inside its frame.

Keys are the partitioned build's global integer codes (``features.partitioned.GlobalCodes``: the
same code for the same key in every partition), so the totals are plain arrays indexed by code:
no key strings are built or hashed after a partition's rows are coded.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Declaration behaviour sums (``features.build.BEHAVIOUR_SUMS``), repeated here so this leaf
# module imports nothing from the build; ``tests/features/test_partitioned.py`` holds them equal.
BEHAVIOUR_SUM_NAMES = ("cert", "legal", "legal_cert", "uv_n", "uv_low", "uv_sum")
RESULT_KINDS = ("insp", "nc", "ncmaj", "rand")
NO_TIME = np.iinfo(np.int64).min
LATE_TIME = np.iinfo(np.int64).max
_SUMMED = ("decl", *RESULT_KINDS, *BEHAVIOUR_SUM_NAMES)
COLUMNS = (*_SUMMED, "first_t", "last_nc_t")
_FILL = {"first_t": LATE_TIME, "last_nc_t": NO_TIME}


def _dtype(column: str) -> type:
    return np.int64 if column in _FILL else np.float64


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
        # Per entity: one array per column, indexed by the key's global code.
        self._columns: dict[str, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        """Number of (entity, key) rows held (codes up to the largest seen)."""
        return sum(len(cols["decl"]) for cols in self._columns.values())

    def entity(self, name: str, keys: np.ndarray) -> dict[str, np.ndarray]:
        """Totals of one entity aligned to ``keys`` (global key codes).

        Unknown keys get zero counts, ``first_t = LATE_TIME`` and ``last_nc_t = NO_TIME``.
        """
        keys = np.asarray(keys, dtype=np.int64)
        cols = self._columns.get(name)
        size = 0 if cols is None else len(cols["decl"])
        known = (keys >= 0) & (keys < size)
        res: dict[str, np.ndarray] = {}
        for c in COLUMNS:
            values: np.ndarray = np.full(len(keys), _FILL.get(c, 0), dtype=_dtype(c))
            if cols is not None:
                values[known] = cols[c][keys[known]]
            res[c] = values
        return res

    def _grown(self, name: str, size: int) -> dict[str, np.ndarray]:
        cols = self._columns.setdefault(name, {})
        old = len(cols["decl"]) if cols else 0
        if size > old:
            for c in COLUMNS:
                pad: np.ndarray = np.full(size - old, _FILL.get(c, 0), dtype=_dtype(c))
                cols[c] = np.concatenate([cols[c], pad]) if c in cols else pad
        return cols

    def add(
        self,
        name: str,
        keys: np.ndarray,
        *,
        declared_at: np.ndarray | None = None,
        terms: np.ndarray | None = None,
        inspected_at: np.ndarray | None = None,
        flags: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Add declarations (``declared_at`` and their behaviour ``terms``, shape
        ``(len(BEHAVIOUR_SUM_NAMES), n)``) or results (``inspected_at`` and 0/1 ``flags``) of
        one entity, by global key code; rows whose code is -1 (a missing field) are skipped."""
        keys = np.asarray(keys, dtype=np.int64)
        ok = keys >= 0
        if not ok.any():
            return
        codes = keys[ok]
        size = max(int(codes.max()) + 1, len(self._columns.get(name, {}).get("decl", ())))
        cols = self._grown(name, size)
        if declared_at is not None:
            assert terms is not None
            cols["decl"] += np.bincount(codes, minlength=size)
            for i, c in enumerate(BEHAVIOUR_SUM_NAMES):
                cols[c] += np.bincount(codes, weights=terms[i][ok], minlength=size)
            np.minimum.at(cols["first_t"], codes, declared_at[ok])
        if inspected_at is not None:
            assert flags is not None
            for k in RESULT_KINDS:
                w = np.asarray(flags[k], dtype=np.float64)[ok]
                cols[k] += np.bincount(codes, weights=w, minlength=size)
            nc = np.asarray(flags["nc"], dtype=bool)[ok]
            np.maximum.at(cols["last_nc_t"], codes[nc], inspected_at[ok][nc])

    def add_global(self, flags: Mapping[str, np.ndarray]) -> None:
        """Add results to the all-keys totals (the root prior of every smoothed rate)."""
        for k in RESULT_KINDS:
            self.global_counts[k] += int(np.asarray(flags[k]).sum())

    def subset(self, keys: Mapping[str, np.ndarray]) -> History:
        """The totals of ``keys`` (global codes per entity) only, re-indexed ``0..k-1`` in the
        order given: what one partition's frame needs, small enough to send to a worker."""
        out = History(self.cut)
        out.global_counts = dict(self.global_counts)
        for name, k in keys.items():
            out._columns[name] = self.entity(name, k)
        return out
