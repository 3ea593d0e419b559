"""Offline features out of core: time partitions in order, each entity's history carried forward.

``build_offline`` holds every declaration and every intermediate array at once (2.8 GB at 1M
declarations, growing linearly). :func:`build_partitioned` reads the declarations one partition
(``partition_months`` UTC months) at a time, in time order, and keeps only

- the **context**: key fields, flags and unit-value ratio of the 12 months before the partition
  (the 365-day windows reach that far back);
- the **history** (``features.history.History``): per entity key, the all-history totals of
  everything older than the context;
- the **ghosts**: key fields of older declarations whose inspection result is still to come;
- the log **unit values** of every earlier declaration (20 bytes each: the HS6 medians are over
  all history).

Each partition's features equal ``build_offline``'s rows on the whole store (tested: exactly, or
to float32) and are written to Parquet as float32, one file per partition, with the labels beside
them. Memory is bounded by ``partition_months`` plus the 12-month context, i.e. by the data rate,
not by the length of the history (``docs/scale.md``).

Layout written (``FEATURES/``)::

    manifest.json                    # format, feature names, entities, categories, partitions
    features/part-YYYY-MM.parquet    # declaration_id, declared_at, enterprise_id, float32 features
    labels/part-YYYY-MM.parquet      # build_labels rows of the same declarations
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.build import (
    ID_COLUMNS,
    Carried,
    behaviour_terms,
    build_labels,
    build_partition,
    declaration_flag,
    declared_value_usd,
    declared_weight_kg,
    final_inspections,
    hs6_unit_value_features,
    inspection_flags,
    unit_value_log,
    window_ns,
)
from features.categorical import code_maps_from_counts, value_counts
from features.entities import KEY_FIELDS, entities_for, frame_fields
from features.history import LATE_TIME, History
from features.progress import Progress
from features.registry import DAY_NS, WINDOWS, entity_aggregations, feature_specs
from features.windows import TimeRanks, to_ns

FORMAT = 1
MANIFEST = "manifest.json"
CONTEXT_MONTHS = 12  # 12 calendar months always cover the longest bounded window (365 days)
# Feature partitions: no dictionary pages for the float columns (they never pay: trying them cost
# 2.5x the write CPU and made reads slower, measured on a 1M build) and lz4, which reads fastest.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "lz4", "use_dictionary": ["enterprise_id"]}


class MonthSource(Protocol):
    """Declarations by UTC month, and the side tables whole (they are small)."""

    def months(self) -> list[str]:
        """Months (``YYYY-MM``) holding declarations, in order."""
        ...

    def declarations(self, months: list[str], columns: list[str] | None = None) -> pd.DataFrame:
        """The declarations of these months (canonical dtypes; ``columns``: only those)."""
        ...

    def side_tables(self) -> dict[str, pd.DataFrame]:
        """``inspections``, ``risk_signals``, ``credit_ratings`` and ``enterprises``."""
        ...


class StoreSource:
    """A ``features.store.Store`` read month by month."""

    def __init__(self, root: Path | str) -> None:
        from features.store import Store

        self.store = Store(Path(root))

    def months(self) -> list[str]:
        return self.store.months("declarations")

    def declarations(self, months: list[str], columns: list[str] | None = None) -> pd.DataFrame:
        return self.store.read("declarations", columns=columns, months=months)

    def side_tables(self) -> dict[str, pd.DataFrame]:
        names = ("inspections", "risk_signals", "credit_ratings", "enterprises")
        return {name: self.store.read(name) for name in names}

    def fingerprint(self) -> str:
        """sha256 of the store manifest (it lists the content hash of every loaded batch)."""
        import hashlib

        path = self.store.root / "manifest.json"
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""


class FrameSource:
    """Contract tables already in memory, split by month (tests, small worlds)."""

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        decl = tables["declarations"].reset_index(drop=True)
        self._decl = decl
        self._month = month_names(to_ns(decl["declared_at"]))
        self._side = {k: v for k, v in tables.items() if k != "declarations"}

    def months(self) -> list[str]:
        return sorted(set(self._month))

    def declarations(self, months: list[str], columns: list[str] | None = None) -> pd.DataFrame:
        rows = self._decl[np.isin(self._month, months)].reset_index(drop=True)
        return rows if columns is None else rows[[c for c in columns if c in rows]]

    def side_tables(self) -> dict[str, pd.DataFrame]:
        return dict(self._side)


def month_names(t_ns: np.ndarray) -> np.ndarray:
    """``YYYY-MM`` (UTC) of each time, as the store names its partitions."""
    return np.datetime_as_string(t_ns.astype("datetime64[ns]").astype("datetime64[M]"), unit="M")


def month_start(name: str) -> int:
    """int64 ns of the start of a ``YYYY-MM`` month (UTC)."""
    return int(np.datetime64(name, "M").astype("datetime64[ns]").astype(np.int64))


def add_months(name: str, k: int) -> str:
    """The month ``k`` months after ``name`` (negative: before)."""
    return str(np.datetime64(name, "M") + np.timedelta64(k, "M"))


class _Dictionary:
    """A growing value -> code mapping: a value keeps its code for the whole build."""

    def __init__(self, dtype: str) -> None:
        self.index: pd.Index = pd.Index([], dtype=dtype)

    def __len__(self) -> int:
        return len(self.index)

    def codes(self, values: pd.Index) -> np.ndarray:
        """Code of each of ``values`` (distinct, no NA); values never seen get the next codes."""
        pos = self.index.get_indexer(values)
        fresh = pos < 0
        if fresh.any():
            pos[fresh] = len(self.index) + np.arange(int(fresh.sum()))
            self.index = self.index.append(values[fresh])
        return pos.astype(np.int64)


class GlobalCodes:
    """Integer codes of entity keys that are the same in every partition of one build.

    A partition's key fields are factorized once (strings are touched once per declaration);
    each distinct field value gets a global code, and a cross entity's key the global code of its
    (code, code) pair. Everything the build carries from one partition to the next (the context,
    the ghosts, the history, the unit values) is held as these codes.
    """

    def __init__(self, entity_defs: dict[str, Any]) -> None:
        self.entity_defs = entity_defs
        self.fields: dict[str, _Dictionary] = {}
        self.pairs: dict[tuple[str, ...], _Dictionary] = {}

    def field(self, series: pd.Series, name: str) -> np.ndarray:
        """Global code of each value of one key field (-1: missing)."""
        local, uniques = pd.factorize(series, use_na_sentinel=True)
        dictionary = self.fields.setdefault(name, _Dictionary("str"))
        g = dictionary.codes(pd.Index(np.asarray(uniques, dtype=object), dtype="str"))
        return np.append(g, -1)[local]

    def code(self, fields: dict[str, pd.Series]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Global code of every entity key of a partition's rows (-1: a field is missing), and
        the rows' HS6 codes (the unit-value statistics group by them)."""
        wanted = {f for e in self.entity_defs.values() for f in e.fields} | {"hs6"}
        base = {f: self.field(fields[f], f) for f in sorted(wanted)}
        by_fields: dict[tuple[str, ...], np.ndarray] = {}
        out: dict[str, np.ndarray] = {}
        for name, entity in self.entity_defs.items():
            code = base[entity.fields[0]]
            for i in range(1, len(entity.fields)):
                prefix = tuple(entity.fields[: i + 1])
                if prefix not in by_fields:
                    other = base[entity.fields[i]]
                    ok = (code >= 0) & (other >= 0)
                    packed = (code[ok] << 32) | other[ok]  # both codes < 2**31
                    local, uniques = pd.factorize(packed)
                    pairs = self.pairs.setdefault(prefix, _Dictionary("int64"))
                    joined = np.full(len(code), -1, dtype=np.int64)
                    joined[ok] = pairs.codes(pd.Index(uniques))[local]
                    by_fields[prefix] = joined
                code = by_fields[prefix]
            if len(code) and int(code.max()) >= 2**31:
                raise OverflowError(f"entity {name}: more than 2**31 keys")
            out[name] = code.astype(np.int32)
        return out, base["hs6"]


@dataclass
class _CodedRows:
    """Declarations as the entity step reads them: times, flags, unit-value ratio, the row of
    their final result (-1: none) and every entity's global key code (int32, -1: no key)."""

    t: np.ndarray
    cert: np.ndarray
    legal: np.ndarray
    uv_log_ratio: np.ndarray
    result: np.ndarray
    codes: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.t)

    @staticmethod
    def of(
        decl: pd.DataFrame,
        codes: dict[str, np.ndarray],
        results: _Results,
        uv_log_ratio: np.ndarray | None = None,
        t: np.ndarray | None = None,
    ) -> _CodedRows:
        """The coded rows of declarations ``decl`` (their key ``codes`` already made), each
        pointed at its final result in ``results``; the unit-value ratio NaN when not given."""
        own = results.ids.get_indexer(pd.Index(decl["declaration_id"]))
        return _CodedRows(
            to_ns(decl["declared_at"]) if t is None else t,
            declaration_flag(decl, "third_party_certificate"),
            declaration_flag(decl, "legal_inspection"),
            np.full(len(decl), np.nan) if uv_log_ratio is None else uv_log_ratio,
            own.astype(np.int64),
            codes,
        )

    def select(self, rows: np.ndarray) -> _CodedRows:
        return _CodedRows(
            self.t[rows],
            self.cert[rows],
            self.legal[rows],
            self.uv_log_ratio[rows],
            self.result[rows],
            {k: v[rows] for k, v in self.codes.items()},
        )

    @staticmethod
    def concat(parts: list[_CodedRows], names: list[str]) -> _CodedRows:
        if not parts:
            return _CodedRows(
                np.zeros(0, np.int64),
                np.zeros(0, bool),
                np.zeros(0, bool),
                np.zeros(0),
                np.zeros(0, np.int64),
                {k: np.zeros(0, np.int32) for k in names},
            )
        if len(parts) == 1:
            return parts[0]
        return _CodedRows(
            np.concatenate([p.t for p in parts]),
            np.concatenate([p.cert for p in parts]),
            np.concatenate([p.legal for p in parts]),
            np.concatenate([p.uv_log_ratio for p in parts]),
            np.concatenate([p.result for p in parts]),
            {k: np.concatenate([p.codes[k] for p in parts]) for k in names},
        )


class _Results:
    """The final inspection results of the store as arrays (row = position in ``frame``)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.ids = pd.Index(frame["declaration_id"])
        self.t = to_ns(frame["inspected_at"]) if len(frame) else np.zeros(0, np.int64)
        self.flags = inspection_flags(frame)

    def time_of(self, rows: np.ndarray) -> np.ndarray:
        """Result time of each row (``LATE_TIME`` where there is none)."""
        out = np.full(len(rows), LATE_TIME, dtype=np.int64)
        has = rows >= 0
        out[has] = self.t[rows[has]]
        return out


class CodedEvents:
    """One partition's frame for ``features.build._entity_features``, all integers.

    It offers what that step reads of a ``Prepared`` frame: the context's declarations then the
    partition's (the queries), their flags and unit-value ratios, the results inside the frame's
    span with their declarations' keys (ghosts' included), shared time ranks, and a coder whose
    entity codes are dense codes local to this frame (``keys`` are those codes themselves: the
    carried :class:`~features.history.History` is re-indexed to them). Small enough to pickle
    to a Dask worker; the ranks are recomputed there.
    """

    def __init__(
        self,
        rows: _CodedRows,
        codes: dict[str, np.ndarray],
        key_counts: dict[str, int],
        insp_t: np.ndarray,
        insp_flags: dict[str, np.ndarray],
        insp_codes: dict[str, np.ndarray],
        attributes: dict[str, str],
        entities: list[str] | None,
        n_query: int,
    ) -> None:
        self.attributes = dict(attributes)
        self.entity_names = entities
        self.n = len(rows)
        self.n_query = n_query
        self.t = rows.t
        self.cert = rows.cert
        self.legal = rows.legal
        self.uv_log_ratio = rows.uv_log_ratio
        self.insp_t = insp_t
        self.insp_flags = insp_flags
        self._codes = codes
        self._key_counts = key_counts
        self._insp_codes = insp_codes
        self._setup()

    def _setup(self) -> None:
        self.entities = entities_for(self.attributes, self.entity_names)
        self.entity_aggs = entity_aggregations(self.attributes, self.entity_names, False)
        self.coder = self
        # Window starts are only ever read at the query rows (the partition's, the last
        # ``n_query``): the context's are not ranked (their slots hold 0, never read).
        q0 = self.n - self.n_query
        starts = {w: self.t[q0:] - window_ns(w) for w in WINDOWS if window_ns(w) is not None}
        ranks = TimeRanks([self.t, self.insp_t, *starts.values()])
        self.M = ranks.modulus
        self.rank_t = ranks.rank(self.t)
        self.rank_start: dict[str, np.ndarray | None] = {w: None for w in WINDOWS}
        for w, start in starts.items():
            full = np.zeros(self.n, dtype=np.int64)
            full[q0:] = ranks.rank(start)
            self.rank_start[w] = full
        self.rank_insp = ranks.rank(self.insp_t)

    def __getstate__(self) -> dict[str, Any]:
        drop = ("entities", "entity_aggs", "coder", "M", "rank_t", "rank_start", "rank_insp")
        return {k: v for k, v in self.__dict__.items() if k not in drop}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def codes(self, entity: Any) -> np.ndarray:
        """Local key code of every row (-1: no key)."""
        return self._codes[entity.name]

    def keys(self, entity: Any) -> np.ndarray:
        """The identity of each local code for the carried history: the code itself."""
        return np.arange(self._key_counts[entity.name], dtype=np.int64)

    def inspection_codes(self, entity: Any, code_in: np.ndarray) -> np.ndarray:
        """Local key code of every result's declaration (-1: no key, or a ghost's key that no
        row of the frame has, which no query can match)."""
        return self._insp_codes[entity.name]


def _frame(
    rows: _CodedRows,
    n_query: int,
    ghosts: _CodedRows,
    history: History,
    results: _Results,
    end: int,
    attributes: dict[str, str],
    entities: list[str] | None,
) -> tuple[CodedEvents, History]:
    """The partition's coded frame (context then the ``n_query`` partition rows) and the history
    re-indexed to its keys. Results count when inspected in ``[history.cut, end)``."""
    start = history.cut

    def inside(part: _CodedRows) -> np.ndarray:
        t = results.time_of(part.result)
        return np.flatnonzero((t >= start) & (t < end))

    own, ghost = inside(rows), inside(ghosts)
    res = np.concatenate([rows.result[own], ghosts.result[ghost]])
    codes: dict[str, np.ndarray] = {}
    key_counts: dict[str, int] = {}
    insp_codes: dict[str, np.ndarray] = {}
    keys: dict[str, np.ndarray] = {}
    for name, g in rows.codes.items():
        ok = g >= 0
        local = np.full(len(g), -1, dtype=np.int64)
        dense, uniques = pd.factorize(g[ok])
        local[ok] = dense
        codes[name] = local
        key_counts[name] = len(uniques)
        keys[name] = np.asarray(uniques, dtype=np.int64)
        # Global -> local code by a lookup array (no hash table per entity and partition).
        ghost_global = ghosts.codes[name][ghost].astype(np.int64)
        size = max(int(keys[name].max(initial=-1)), int(ghost_global.max(initial=-1))) + 2
        lookup = np.full(size, -1, dtype=np.int64)  # lookup[-1] = -1: a missing key stays -1
        lookup[keys[name]] = np.arange(len(uniques))
        insp_codes[name] = np.concatenate([local[own], lookup[ghost_global]])
    events = CodedEvents(
        rows,
        codes,
        key_counts,
        results.t[res],
        {k: v[res] for k, v in results.flags.items()},
        insp_codes,
        attributes,
        entities,
        n_query,
    )
    return events, history.subset(keys)


def carried_from_frames(
    context: pd.DataFrame,
    queries: pd.DataFrame,
    inspections: pd.DataFrame,
    attributes: dict[str, str] | None = None,
    entities: list[str] | None = None,
) -> Carried:
    """What :func:`~features.build.build_partition` needs for ``queries`` when every earlier
    event is a row of ``context`` and every known result a row of ``inspections`` (nothing
    older is carried). The selection-policy backtest builds a week's label-dependent features
    this way from the results its policy has revealed. The unit-value features of the queries
    are left NaN (they do not depend on results)."""
    attributes = dict(attributes or {})
    entity_defs = entities_for(attributes, entities)
    names = list(entity_defs)
    coder = GlobalCodes(entity_defs)
    results = _Results(final_inspections(inspections).reset_index(drop=True))

    def coded(decl: pd.DataFrame) -> _CodedRows:
        return _CodedRows.of(decl, coder.code(frame_fields(decl, attributes))[0], results)

    rows = coded(queries)
    frame = _CodedRows.concat([coded(context), rows], names)
    ghosts = _CodedRows.concat([], names)
    events, history = _frame(
        frame, len(rows), ghosts, History(), results, LATE_TIME, attributes, entities
    )
    nan = np.full(len(rows), np.nan)
    return Carried(events, history, (nan, nan.copy()))


@dataclass
class _UnitValues:
    """Log unit values of every declaration built so far, by global HS6 code."""

    codes: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    luv: list[np.ndarray] = field(default_factory=list)

    def add(self, hs6: np.ndarray, t: np.ndarray, luv: np.ndarray) -> None:
        ok = (hs6 >= 0) & np.isfinite(luv)
        self.codes.append(hs6[ok].astype(np.int32))
        self.times.append(t[ok])
        self.luv.append(luv[ok])
        if len(self.codes) > 1:  # one array each (concatenated once per partition)
            self.codes = [np.concatenate(self.codes)]
            self.times = [np.concatenate(self.times)]
            self.luv = [np.concatenate(self.luv)]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if not self.codes:
            return None
        return self.codes[0].astype(np.int64), self.times[0], self.luv[0]


@dataclass
class PartitionedFeatures:
    """What :func:`build_partitioned` wrote (also ``manifest.json``)."""

    directory: Path
    feature_names: list[str]
    partitions: list[dict[str, Any]]
    entities: list[str] | None
    attributes: dict[str, str]
    categories: dict[str, list[str]]

    @property
    def rows(self) -> int:
        return sum(int(p["rows"]) for p in self.partitions)


@dataclass
class _Static:
    """What every partition's computation shares (sent once to each Dask worker)."""

    attributes: dict[str, str]
    entities: list[str] | None
    categories: dict[str, list[str]]
    credit_ratings: pd.DataFrame
    enterprises: pd.DataFrame


@dataclass
class _Job:
    """One partition's computation: everything but its declarations, which it reads itself."""

    group: list[str]
    name: str
    carried: Carried
    results: pd.DataFrame  # the final results of the partition's own declarations (labels)
    signals: pd.DataFrame  # the signals its windows can see


def compute_partition(
    job: _Job, static: _Static, source: MonthSource, directory: Path
) -> dict[str, Any]:
    """Build one partition's features and labels and write them under ``directory`` (runs in
    the build's process, or on a Dask worker that reads the same store)."""
    decl = source.declarations(job.group)
    tables = {
        "declarations": decl,
        "inspections": job.results,
        "risk_signals": job.signals,
        "credit_ratings": static.credit_ratings,
        "enterprises": static.enterprises,
    }
    feats = build_partition(
        tables, job.carried, static.attributes, entities=static.entities,
        categories=static.categories,
    )  # fmt: skip
    labels = build_labels({"declarations": decl, "inspections": job.results})
    _write_float32(feats, directory / "features" / f"part-{job.name}.parquet")
    pq.write_table(
        pa.Table.from_pandas(labels, preserve_index=False),
        directory / "labels" / f"part-{job.name}.parquet",
        compression="lz4",
    )
    return {
        "name": job.name,
        "months": list(job.group),
        "rows": len(decl),
        "labelled": int(labels["inspected"].sum()),
    }


def build_partitioned(
    source: MonthSource,
    out_dir: Path | str,
    attributes: dict[str, str] | None = None,
    *,
    entities: list[str] | None = None,
    categories: dict[str, list[str]] | None = None,
    partition_months: int = 1,
    progress: Progress | None = None,
    client: Any = None,
    threads: int = 1,
) -> PartitionedFeatures:
    """Build every declaration's point-in-time features partition by partition into ``out_dir``.

    Parameters
    ----------
    source
        Where the declarations come from (:class:`StoreSource`, :class:`FrameSource`).
    out_dir
        Output folder (replaced atomically when the build succeeds).
    attributes, entities, categories
        As ``features.build.build_offline``; ``categories`` None: fitted on all declarations
        (counted in a first pass, partition by partition).
    partition_months
        UTC months per partition: the memory setting (peak memory grows with the declarations of
        ``partition_months`` months, plus the 12-month context as integer codes).
    progress
        Optional callback told each partition as it starts.
    client
        A ``distributed.Client``: each partition's features are computed on the cluster's
        workers (``source`` and ``out_dir`` must be readable and writable at the same paths
        there); the carried state is advanced here, partition by partition, as without one.
    threads
        Without a client: partitions computed at once in threads of this process (numpy's
        sorts and searches and Parquet writing release the GIL); memory grows with it.

    Returns
    -------
    PartitionedFeatures
    """
    if partition_months < 1:
        raise ValueError("partition_months must be at least 1")
    if threads < 1:
        raise ValueError("threads must be at least 1")
    attributes = dict(attributes or {})
    out_dir = Path(out_dir)
    months = source.months()
    if categories is None:
        categories = _fit_categories(source, months, attributes)
    side = source.side_tables()
    results = _Results(final_inspections(side["inspections"]).reset_index(drop=True))
    signals = side["risk_signals"].reset_index(drop=True)
    sig_t = to_ns(signals["reported_at"]) if len(signals) else np.zeros(0, np.int64)
    longest = max(d for d in WINDOWS.values() if d is not None) * DAY_NS
    names = [s.name for s in feature_specs(attributes, entities)]
    entity_defs = entities_for(attributes, entities)
    entity_names = list(entity_defs)
    coder = GlobalCodes(entity_defs)
    static = _Static(attributes, entities, categories, side["credit_ratings"], side["enterprises"])

    tmp = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp")
    (tmp / "features").mkdir(parents=True)
    (tmp / "labels").mkdir()
    context: deque[tuple[str, _CodedRows]] = deque()
    history: History | None = None
    ghosts = _CodedRows.concat([], entity_names)
    unit_values = _UnitValues()
    run = _Runner(client, threads, static, source, tmp)
    try:
        for group in _groups(months, partition_months):
            if progress:
                progress(f"partition {group[0]}..{group[-1]}")
            a, b = month_start(group[0]), month_start(add_months(group[-1], 1))
            cut = month_start(add_months(group[0], -CONTEXT_MONTHS))
            if history is None:
                history = History(cut)
            leaving = []
            while context and month_start(context[0][0]) < cut:
                leaving.append(context.popleft()[1])
            ghosts = _advance(history, cut, leaving, ghosts, results, entity_names)
            decl = source.declarations(group)
            codes, hs6 = coder.code(frame_fields(decl, attributes))
            t = to_ns(decl["declared_at"])
            luv = unit_value_log(declared_value_usd(decl), declared_weight_kg(decl))
            ratio, z = hs6_unit_value_features(hs6, t, luv, unit_values.arrays())
            rows = _CodedRows.of(decl, codes, results, ratio, t)
            frame = _CodedRows.concat([*(c for _, c in context), rows], entity_names)
            events, carried_history = _frame(
                frame, len(rows), ghosts, history, results, b, attributes, entities
            )
            name = group[0] if len(group) == 1 else f"{group[0]}_{group[-1]}"
            run.submit(
                _Job(
                    list(group),
                    name,
                    Carried(events, carried_history, (ratio, z)),
                    results.frame.iloc[rows.result[rows.result >= 0]],
                    signals[(sig_t >= a - longest) & (sig_t < b)],
                )
            )
            unit_values.add(hs6, t, luv)
            month_of = month_names(t)
            for m in group:
                context.append((m, rows.select(np.flatnonzero(month_of == m))))
            del decl, frame, events, carried_history
            release_free_heap()
        partitions = run.finish()
        manifest = {
            "format": FORMAT,
            "feature_names": names,
            "entities": entities,
            "attributes": attributes,
            "categories": categories,
            "partition_months": partition_months,
            "source_fingerprint": getattr(source, "fingerprint", lambda: "")(),
            "partitions": partitions,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _swap(tmp, out_dir)
    except BaseException:
        run.cancel()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PartitionedFeatures(out_dir, names, partitions, entities, attributes, categories)


class _Runner:
    """Computes the partitions here (one at a time, or ``threads`` at once) or on a Dask cluster,
    with a bounded number in flight (each holds its carried frame until it is computed)."""

    def __init__(
        self, client: Any, threads: int, static: _Static, source: MonthSource, tmp: Path
    ) -> None:
        self.client = client
        self.source, self.tmp = source, tmp
        self.done: list[dict[str, Any]] = []
        self.pending: deque[Any] = deque()
        self.pool: ThreadPoolExecutor | None = None
        if client is not None:
            self.static: Any = client.scatter(static, broadcast=True)
            self.limit = 2 * max(1, len(client.scheduler_info()["workers"]))
        else:
            self.static = static
            self.limit = threads
            if threads > 1:
                self.pool = ThreadPoolExecutor(threads, thread_name_prefix="partition")

    def submit(self, job: _Job) -> None:
        args = (job, self.static, self.source, self.tmp)
        if self.client is not None:
            self.pending.append(self.client.submit(compute_partition, *args, pure=False))
        elif self.pool is not None:
            self.pending.append(self.pool.submit(compute_partition, *args))
        else:
            self.done.append(compute_partition(*args))
        while len(self.pending) >= self.limit:
            self.done.append(self.pending.popleft().result())

    def finish(self) -> list[dict[str, Any]]:
        while self.pending:
            self.done.append(self.pending.popleft().result())
        self.close()
        return self.done

    def cancel(self) -> None:
        if self.client is not None and self.pending:
            self.client.cancel(list(self.pending))
        for future in self.pending:
            if hasattr(future, "cancel"):
                future.cancel()
        self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None


def _load_malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None where the C library has none: musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_heap() -> bool:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim(0)``).

    Each partition frees gigabytes of numpy temporaries (sorts, gathers) of varying sizes;
    glibc keeps the freed pages of its heap and arenas, so without this the build's RSS grew
    about 15 MB a month at 1M declarations (0.30 -> 1.03 GB over 37 one-month partitions)
    while the live Python and numpy memory grew 2 MB a month (the unit values and new keys).
    Returns whether the trim was available."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def _groups(months: list[str], k: int) -> Iterator[list[str]]:
    """Consecutive calendar months in groups of ``k`` (empty months still advance the clock)."""
    if not months:
        return
    m, last = months[0], months[-1]
    present = set(months)
    group: list[str] = []
    while m <= last:
        group.append(m)
        if len(group) == k:
            if any(g in present for g in group):
                yield group
            group = []
        m = add_months(m, 1)
    if group and any(g in present for g in group):
        yield group


def _fit_categories(
    source: MonthSource, months: list[str], attributes: dict[str, str]
) -> dict[str, list[str]]:
    """``features.categorical.fit_code_maps`` of all declarations, counted month by month."""
    totals: dict[str, list[pd.Series]] = {}
    # Only the key fields are read (the first pass is a fifth of the build's reading otherwise).
    columns = [*KEY_FIELDS, *(a for a, kind in attributes.items() if kind == "categorical")]
    for m in months:
        decl = source.declarations([m], columns=columns)
        for name, counts in value_counts(decl, attributes).items():
            totals.setdefault(name, []).append(counts)
    summed = {
        name: pd.concat(parts).groupby(level=0).sum() for name, parts in totals.items() if parts
    }
    return code_maps_from_counts(summed)


def _advance(
    history: History,
    cut: int,
    leaving: list[_CodedRows],
    ghosts: _CodedRows,
    results: _Results,
    names: list[str],
) -> _CodedRows:
    """Move the history's cut forward to ``cut``: the declarations of the months leaving the
    context and the results inspected before ``cut`` join the totals. Returns the new ghosts
    (declarations before the cut whose result is at or after it)."""
    if cut <= history.cut:
        return ghosts
    old_cut = history.cut
    decl = _CodedRows.concat(leaving, names)
    if len(decl):
        terms = behaviour_terms(decl.cert, decl.legal, decl.uv_log_ratio)
        for name in names:
            history.add(name, decl.codes[name], declared_at=decl.t, terms=terms)
    moving = (results.t >= old_cut) & (results.t < cut)
    if moving.any():
        history.add_global({k: v[moving] for k, v in results.flags.items()})
    pool = _CodedRows.concat([ghosts, decl], names) if len(decl) else ghosts
    rt = results.time_of(pool.result)
    now = np.flatnonzero((rt >= old_cut) & (rt < cut))
    if len(now):
        flags = {k: v[pool.result[now]] for k, v in results.flags.items()}
        for name in names:
            history.add(name, pool.codes[name][now], inspected_at=rt[now], flags=flags)
    history.cut = cut
    return pool.select(np.flatnonzero((rt >= cut) & (rt != LATE_TIME)))


def _write_float32(frame: pd.DataFrame, path: Path) -> None:
    """Ids as they are, every feature as float32 (half the bytes; LightGBM bins them anyway)."""
    columns = {c: pa.array(frame[c]) for c in ID_COLUMNS}
    for c in frame.columns[len(ID_COLUMNS) :]:
        columns[c] = pa.array(frame[c].to_numpy(dtype=np.float32))
    pq.write_table(pa.table(columns), path, **PARQUET_OPTIONS)


def _swap(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` (the old one removed after the rename)."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: Path | str) -> dict[str, Any]:
    """The ``manifest.json`` of a partitioned feature folder."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: not a partitioned feature folder (run `guomen features build`)"
        )
    data = json.loads(path.read_text("utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: feature folder format {data.get('format')}, expected {FORMAT}")
    return data
