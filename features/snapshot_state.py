"""Snapshot entity state: per key event times, counts and behaviour sums, as Arrow tables.

The pieces ``features.snapshot.Snapshot`` is made of (split from it by step, issue 15 item 5):
event series per kind (``Series``), per-key state (``EntityState``) materialised lazily from one
Arrow table per entity (``EntityTable``), the behaviour running sums (``Behaviour``,
``BehaviourTable``), their vectorised construction from the tables, and the scalar helpers the
online path shares (``flag_of``, ``_ns_of``).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import (
    BEHAVIOUR_SUMS,
)
from features.registry import (
    BEHAVIOUR_RATIOS,
    DAY_NS,
)

# 2: behaviour running sums (a format-1 snapshot lacks them: rebuild it with `guomen snapshot`).
SNAPSHOT_FORMAT = 2
# Queries may be up to this much older than as_of and still be exact.
GRACE_NS = 30 * DAY_NS
KINDS = ("decl", "insp", "nc", "ncmaj", "rand")
NONE_T = np.iinfo(np.int64).min
GLOBAL = "global"


class Series:
    """Times of one event kind for one key: older events counted, recent ones listed."""

    __slots__ = ("n_before", "last_before", "times")

    def __init__(self, n_before: int = 0, last_before: int | None = None, times=None) -> None:
        self.n_before = n_before
        self.last_before = last_before
        self.times: list[int] = times if times is not None else []

    def add(self, t: int, cutoff: int) -> None:
        if t < cutoff:
            self.n_before += 1
            if self.last_before is None or t > self.last_before:
                self.last_before = t
        else:
            insort(self.times, t)

    def count(self, t: int, start: int | None) -> int:
        """Events in ``[start, t)`` (``start=None``: all before ``t``)."""
        hi = bisect_left(self.times, t)
        if start is None:
            return self.n_before + hi
        return hi - bisect_left(self.times, start, 0, hi)

    def last(self, t: int) -> int | None:
        """Time of the last event before ``t``."""
        hi = bisect_left(self.times, t)
        return self.times[hi - 1] if hi else self.last_before


class EntityState:
    """All event series of one entity key."""

    __slots__ = ("first", "decl", "insp", "nc", "ncmaj", "rand")

    def __init__(self) -> None:
        self.first: int | None = None
        self.decl = Series()
        self.insp = Series()
        self.nc = Series()
        self.ncmaj = Series()
        self.rand = Series()


EMPTY_STATE = EntityState()


State = TypeVar("State")


class _KeyedStates(Generic[State]):
    """Per-key states kept columnar (from a build or a file) and materialised on first use:
    a snapshot of millions of keys loads fast, and only the keys requests touch become objects."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        keys = table.column("key").to_pylist()
        self.index: dict[str, int] = dict(zip(keys, range(len(keys)), strict=True))
        self.states: dict[str, State] = {}

    def _materialise(self, i: int) -> State:
        raise NotImplementedError

    def _empty(self) -> State:
        raise NotImplementedError

    def get(self, key: str) -> State | None:
        st = self.states.get(key)
        if st is not None:
            return st
        i = self.index.get(key)
        if i is None:
            return None
        st = self._materialise(i)
        self.states[key] = st
        return st

    def get_or_create(self, key: str) -> State:
        st = self.get(key)
        if st is None:
            st = self._empty()
            self.states[key] = st
        return st

    def _base_rows(self) -> pa.Table:
        """The table's rows whose key was never materialised (the others are in ``states``)."""
        keep = np.ones(self.table.num_rows, dtype=bool)
        for key in self.states:
            i = self.index.get(key)
            if i is not None:
                keep[i] = False
        return self.table.filter(pa.array(keep))


class EntityTable(_KeyedStates[EntityState]):
    """Columnar states of one entity."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__(table)
        self.first = table.column("first").to_numpy()
        self.cols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for k in KINDS:
            arr = table.column(f"{k}_times").combine_chunks()
            offsets = arr.offsets.to_numpy()
            values = arr.flatten().to_numpy()
            self.cols[k] = (table.column(f"{k}_n").to_numpy(), offsets - offsets[0], values)
        self.nc_last = table.column("nc_last").to_numpy()

    def _materialise(self, i: int) -> EntityState:
        st = EntityState()
        f = int(self.first[i])
        st.first = None if f == NONE_T else f
        for k in KINDS:
            n, off, val = self.cols[k]
            s: Series = getattr(st, k)
            s.n_before = int(n[i])
            s.times = val[off[i] : off[i + 1]].tolist()
        last = int(self.nc_last[i])
        st.nc.last_before = None if last == NONE_T else last
        return st

    def _empty(self) -> EntityState:
        return EntityState()

    def to_table(self) -> pa.Table:
        """Base rows not materialised, plus every materialised state."""
        base = self._base_rows()
        rows: dict[str, list[Any]] = {"key": [], "first": [], "nc_last": []}
        for k in KINDS:
            rows[f"{k}_n"] = []
            rows[f"{k}_times"] = []
        for key, st in self.states.items():
            rows["key"].append(key)
            rows["first"].append(NONE_T if st.first is None else st.first)
            last = st.nc.last_before
            rows["nc_last"].append(NONE_T if last is None else last)
            for k in KINDS:
                s = getattr(st, k)
                rows[f"{k}_n"].append(s.n_before)
                rows[f"{k}_times"].append(list(s.times))
        extra = pa.Table.from_pydict(rows, schema=_ENTITY_SCHEMA)
        return pa.concat_tables([base.select(_ENTITY_SCHEMA.names).cast(_ENTITY_SCHEMA), extra])


_ENTITY_SCHEMA = pa.schema(
    [("key", pa.string()), ("first", pa.int64()), ("nc_last", pa.int64())]
    + [f for k in KINDS for f in ((f"{k}_n", pa.int64()), (f"{k}_times", pa.list_(pa.int64())))]
)


class Behaviour:
    """Declaration behaviour of one key: running sums of its declarations' terms in time order.

    ``runs[k][j]`` is the sum of term ``k`` (``BEHAVIOUR_SUMS``) over the declarations before the
    snapshot's horizon plus the first ``j`` listed ones, so a query reads one entry per sum.
    """

    __slots__ = ("times", "terms", "runs")

    def __init__(self, base: Sequence[float], times: list[int], terms: list[list[float]]) -> None:
        self.times = times
        self.terms = terms
        self.runs: list[list[float]] = []
        for total, ts in zip(base, terms, strict=True):
            run = [float(total)]
            for x in ts:
                run.append(run[-1] + x)
            self.runs.append(run)

    @classmethod
    def empty(cls) -> Behaviour:
        """A key with no declaration yet."""
        return cls([0.0] * len(BEHAVIOUR_SUMS), [], [[] for _ in BEHAVIOUR_SUMS])

    def add(self, t: int, term: Sequence[float]) -> None:
        """Record a declaration at ``t``; running sums after it are recomputed (usually none)."""
        i = bisect_right(self.times, t)
        self.times.insert(i, t)
        for ts, run, x in zip(self.terms, self.runs, term, strict=True):
            ts.insert(i, x)
            del run[i + 1 :]
            for y in ts[i:]:
                run.append(run[-1] + y)

    def sums(self, t: int) -> list[float]:
        """Every sum over the declarations before ``t``."""
        times = self.times
        # Online queries come after the listed declarations: usually the end of the list.
        j = len(times) if not times or times[-1] < t else bisect_left(times, t)
        return [run[j] for run in self.runs]


NO_BEHAVIOUR = Behaviour.empty()  # read-only stand-in for unknown keys

_BEHAVIOUR_SCHEMA = pa.schema(
    [("key", pa.string()), ("times", pa.list_(pa.int64()))]
    + [(f"{k}_base", pa.float64()) for k in BEHAVIOUR_SUMS]
    + [(f"{k}_terms", pa.list_(pa.float64())) for k in BEHAVIOUR_SUMS]
)


class BehaviourTable(_KeyedStates[Behaviour]):
    """Columnar behaviour of one entity."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__(table)
        self.cols: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in ("times", *(f"{k}_terms" for k in BEHAVIOUR_SUMS)):
            arr = table.column(name).combine_chunks()
            offsets = arr.offsets.to_numpy()
            self.cols[name] = (offsets - offsets[0], arr.flatten().to_numpy())
        self.base = [table.column(f"{k}_base").to_numpy() for k in BEHAVIOUR_SUMS]

    def _list(self, name: str, i: int) -> list:
        off, values = self.cols[name]
        return values[off[i] : off[i + 1]].tolist()

    def _materialise(self, i: int) -> Behaviour:
        return Behaviour(
            [float(base[i]) for base in self.base],
            self._list("times", i),
            [self._list(f"{k}_terms", i) for k in BEHAVIOUR_SUMS],
        )

    def _empty(self) -> Behaviour:
        return Behaviour.empty()

    def to_table(self) -> pa.Table:
        """Base rows not materialised, plus every materialised state."""
        base = self._base_rows()
        rows: dict[str, list[Any]] = {"key": list(self.states), "times": []}
        for k in BEHAVIOUR_SUMS:
            rows[f"{k}_base"] = []
            rows[f"{k}_terms"] = []
        for b in self.states.values():
            rows["times"].append(list(b.times))
            for k, run, ts in zip(BEHAVIOUR_SUMS, b.runs, b.terms, strict=True):
                rows[f"{k}_base"].append(run[0])
                rows[f"{k}_terms"].append(list(ts))
        extra = pa.Table.from_pydict(rows, schema=_BEHAVIOUR_SCHEMA)
        return pa.concat_tables(
            [base.select(_BEHAVIOUR_SCHEMA.names).cast(_BEHAVIOUR_SCHEMA), extra]
        )


def _behaviour_table(
    keys: np.ndarray, code: np.ndarray, t: np.ndarray, terms: np.ndarray, horizon: int
) -> pa.Table:
    """Per key: term totals of declarations before ``horizon``, the later ones listed in time
    order (input order among equal times, as in the offline build)."""
    n_keys = len(keys)
    ok = code >= 0
    before = ok & (t < horizon)
    after = ok & ~before
    rc, rt = code[after], t[after]
    order = np.lexsort((rt, rc))
    offsets = pa.array(np.concatenate([[0], np.cumsum(np.bincount(rc, minlength=n_keys))]))
    cols: dict[str, Any] = {
        "key": pa.array(list(keys), type=pa.string()),
        "times": pa.ListArray.from_arrays(offsets, pa.array(rt[order])),
    }
    for i, k in enumerate(BEHAVIOUR_SUMS):
        cols[f"{k}_base"] = pa.array(
            np.bincount(code[before], weights=terms[i][before], minlength=n_keys)
        )
        cols[f"{k}_terms"] = pa.ListArray.from_arrays(offsets, pa.array(terms[i][after][order]))
    return pa.table(cols).select(_BEHAVIOUR_SCHEMA.names).cast(_BEHAVIOUR_SCHEMA)


def behaviour_entities(aggs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Entities with at least one behaviour aggregation."""
    return [name for name, a in aggs.items() if any(b in a for b in BEHAVIOUR_RATIOS)]


def _grouped(code: np.ndarray, t: np.ndarray, n_keys: int, cutoff: int):
    """Per key: count before ``cutoff`` and sorted times at or after it (offsets, values)."""
    ok = code >= 0
    code, t = code[ok], t[ok]
    before = t < cutoff
    n_before = np.bincount(code[before], minlength=n_keys).astype(np.int64)
    rc, rt = code[~before], t[~before]
    order = np.lexsort((rt, rc))
    offsets = np.zeros(n_keys + 1, dtype=np.int64)
    np.cumsum(np.bincount(rc, minlength=n_keys), out=offsets[1:])
    return n_before, offsets, rt[order]


def _entity_table(
    keys: np.ndarray,
    code: np.ndarray,
    t: np.ndarray,
    insp_code: np.ndarray,
    insp_t: np.ndarray,
    flags: dict[str, np.ndarray],
    cutoff: int,
) -> pa.Table:
    n_keys = len(keys)
    cols: dict[str, Any] = {"key": pa.array(list(keys), type=pa.string())}
    first = np.full(n_keys, np.iinfo(np.int64).max, dtype=np.int64)
    ok = code >= 0
    np.minimum.at(first, code[ok], t[ok])
    first[first == np.iinfo(np.int64).max] = NONE_T
    cols["first"] = pa.array(first)
    nc = flags["nc"].astype(bool) & (insp_code >= 0) & (insp_t < cutoff)
    last = np.full(n_keys, NONE_T, dtype=np.int64)
    np.maximum.at(last, insp_code[nc], insp_t[nc])
    cols["nc_last"] = pa.array(last)
    for k in KINDS:
        if k == "decl":
            n_before, offsets, values = _grouped(code, t, n_keys, cutoff)
        else:
            sel = flags[k].astype(bool)
            n_before, offsets, values = _grouped(insp_code[sel], insp_t[sel], n_keys, cutoff)
        cols[f"{k}_n"] = pa.array(n_before)
        cols[f"{k}_times"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))
    return pa.table(cols).select(_ENTITY_SCHEMA.names).cast(_ENTITY_SCHEMA)


def _ns_of(value: Any) -> int:
    """int64 ns (UTC) of a datetime, pandas Timestamp, ISO string or int ns."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, pd.Timestamp):
        ts = value
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            ts = pd.Timestamp(value).tz_localize(_local_tz())
        else:
            # Integer arithmetic keeps microseconds exact.
            delta = value - _EPOCH
            return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    else:
        ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(_local_tz())
    return int(ts.tz_convert("UTC").as_unit("ns").value)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _local_tz() -> str:
    from features.registry import CALENDAR_TZ

    return CALENDAR_TZ


def flag_of(value: Any) -> float:
    """1.0/0.0 of a boolean declaration field given as bool, number or text (missing: 0.0)."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        return 1.0 if value.strip().lower() in ("true", "1", "yes", "t", "y") else 0.0
    try:
        if value != value:  # NaN
            return 0.0
    except TypeError:
        pass
    return float(bool(value))


def month_start_of(t: int) -> int:
    """Start of the UTC calendar month of a time in int ns (whole seconds suffice)."""
    u = datetime.fromtimestamp(t // 1_000_000_000, tz=UTC)
    return int(datetime(u.year, u.month, 1, tzinfo=UTC).timestamp()) * 1_000_000_000


def _num(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x
