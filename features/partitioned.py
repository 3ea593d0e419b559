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

import json
import os
import shutil
import uuid
from collections import deque
from collections.abc import Iterator
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
    final_inspections,
    inspection_flags,
)
from features.categorical import code_maps_from_counts, value_counts
from features.entities import entities_for, frame_fields, frame_keys
from features.history import History
from features.progress import Progress
from features.registry import DAY_NS, WINDOWS, feature_specs
from features.windows import to_ns

FORMAT = 1
MANIFEST = "manifest.json"
CONTEXT_MONTHS = 12  # 12 calendar months always cover the longest bounded window (365 days)
# Declaration columns the context keeps (besides the categorical attributes).
CONTEXT_COLUMNS = (
    "declaration_id",
    "declared_at",
    "enterprise_id",
    "declarant_id",
    "overseas_party_id",
    "origin_country",
    "port_code",
    "hs_code",
    "transport_mode",
    "trade_mode",
    "legal_inspection",
    "third_party_certificate",
)


class MonthSource(Protocol):
    """Declarations by UTC month, and the side tables whole (they are small)."""

    def months(self) -> list[str]:
        """Months (``YYYY-MM``) holding declarations, in order."""
        ...

    def declarations(self, months: list[str]) -> pd.DataFrame:
        """The declarations of these months (canonical dtypes)."""
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

    def declarations(self, months: list[str]) -> pd.DataFrame:
        return self.store.read("declarations", months=months)

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

    def declarations(self, months: list[str]) -> pd.DataFrame:
        return self._decl[np.isin(self._month, months)].reset_index(drop=True)

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


@dataclass
class _ContextMonth:
    month: str
    frame: pd.DataFrame
    uv_log_ratio: np.ndarray


@dataclass
class _UnitValues:
    """Log unit values of every declaration built so far, HS6 as codes into ``values``."""

    values: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    codes: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    luv: list[np.ndarray] = field(default_factory=list)

    def add(self, hs6: pd.Series, t: np.ndarray, luv: np.ndarray) -> None:
        ok = hs6.notna().to_numpy() & np.isfinite(luv)
        codes = np.empty(int(ok.sum()), dtype=np.int32)
        for i, v in enumerate(hs6[ok].to_numpy(dtype=object)):
            c = self.index.get(v)
            if c is None:
                c = self.index[v] = len(self.values)
                self.values.append(v)
            codes[i] = c
        self.codes.append(codes)
        self.times.append(t[ok])
        self.luv.append(luv[ok])
        if len(self.codes) > 16:  # keep few arrays (concatenation per partition stays cheap)
            self._compact()

    def _compact(self) -> None:
        self.codes = [np.concatenate(self.codes)]
        self.times = [np.concatenate(self.times)]
        self.luv = [np.concatenate(self.luv)]

    def as_tuple(self) -> tuple[pd.Index, np.ndarray, np.ndarray, np.ndarray]:
        if self.codes:
            self._compact()
            return pd.Index(self.values, dtype="str"), self.codes[0], self.times[0], self.luv[0]
        empty = np.zeros(0, dtype=np.int64)
        return pd.Index([], dtype="str"), empty.astype(np.int32), empty, empty.astype(float)


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


def build_partitioned(
    source: MonthSource,
    out_dir: Path | str,
    attributes: dict[str, str] | None = None,
    *,
    entities: list[str] | None = None,
    categories: dict[str, list[str]] | None = None,
    partition_months: int = 1,
    progress: Progress | None = None,
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
        ``partition_months + 12`` months).
    progress
        Optional callback told each partition as it starts.

    Returns
    -------
    PartitionedFeatures
    """
    if partition_months < 1:
        raise ValueError("partition_months must be at least 1")
    attributes = dict(attributes or {})
    out_dir = Path(out_dir)
    months = source.months()
    if categories is None:
        categories = _fit_categories(source, months, attributes)
    side = source.side_tables()
    insp = final_inspections(side["inspections"]).reset_index(drop=True)
    insp_t = to_ns(insp["inspected_at"]) if len(insp) else np.zeros(0, np.int64)
    insp_ids = pd.Index(insp["declaration_id"])
    signals = side["risk_signals"].reset_index(drop=True)
    sig_t = to_ns(signals["reported_at"]) if len(signals) else np.zeros(0, np.int64)
    longest = max(d for d in WINDOWS.values() if d is not None) * DAY_NS
    names = [s.name for s in feature_specs(attributes, entities)]
    key_columns = [*CONTEXT_COLUMNS, *(a for a, k in attributes.items() if k == "categorical")]
    entity_defs = entities_for(attributes, entities)

    tmp = out_dir.with_name(f".{out_dir.name}.{uuid.uuid4().hex[:8]}.tmp")
    (tmp / "features").mkdir(parents=True)
    (tmp / "labels").mkdir()
    context: deque[_ContextMonth] = deque()
    history: History | None = None
    ghosts = pd.DataFrame({c: pd.Series(dtype="str") for c in key_columns})
    unit_values = _UnitValues()
    partitions: list[dict[str, Any]] = []
    try:
        for group in _groups(months, partition_months):
            if progress:
                progress(f"partition {group[0]}..{group[-1]}")
            a, b = month_start(group[0]), month_start(add_months(group[-1], 1))
            cut = month_start(add_months(group[0], -CONTEXT_MONTHS))
            if history is None:
                history = History(cut)
            leaving = []
            while context and month_start(context[0].month) < cut:
                leaving.append(context.popleft())
            ghosts = _advance(
                history, cut, leaving, ghosts, insp, insp_t, insp_ids, entity_defs, attributes
            )
            decl = source.declarations(group)
            in_ctx = (insp_t >= history.cut) & (insp_t < b)
            sig_in = (sig_t >= a - longest) & (sig_t < b)
            tables = {
                "declarations": decl,
                "inspections": insp[in_ctx],
                "risk_signals": signals[sig_in],
                "credit_ratings": side["credit_ratings"],
                "enterprises": side["enterprises"],
            }
            ctx_frames = [c.frame for c in context]
            carried = Carried(
                context=(
                    pd.concat(ctx_frames, ignore_index=True)
                    if ctx_frames
                    else decl.iloc[:0][[c for c in key_columns if c in decl]]
                ),
                context_uv_log_ratio=(
                    np.concatenate([c.uv_log_ratio for c in context]) if context else np.zeros(0)
                ),
                ghosts=ghosts,
                history=history,
                unit_values=unit_values.as_tuple(),
            )
            feats, _ = build_partition(
                tables, carried, attributes, entities=entities, categories=categories
            )
            own = insp_ids.get_indexer(pd.Index(decl["declaration_id"]))
            labels = build_labels({"declarations": decl, "inspections": insp.iloc[own[own >= 0]]})
            name = group[0] if len(group) == 1 else f"{group[0]}_{group[-1]}"
            _write_float32(feats, tmp / "features" / f"part-{name}.parquet")
            labels.to_parquet(tmp / "labels" / f"part-{name}.parquet", index=False)
            fields = frame_fields(decl, attributes)
            unit_values.add(
                fields["hs6"],
                to_ns(decl["declared_at"]),
                feats["decl_log_unit_value_now"].to_numpy(),
            )
            keep = [c for c in key_columns if c in decl]
            for m in group:
                rows = (decl["declared_at"] >= pd.Timestamp(month_start(m), tz="UTC")) & (
                    decl["declared_at"] < pd.Timestamp(month_start(add_months(m, 1)), tz="UTC")
                )
                context.append(
                    _ContextMonth(
                        m,
                        decl.loc[rows, keep].reset_index(drop=True),
                        feats.loc[rows.to_numpy(), "hs6_uv_log_ratio_month"].to_numpy(),
                    )
                )
            partitions.append(
                {
                    "name": name,
                    "months": list(group),
                    "rows": len(decl),
                    "labelled": int(labels["inspected"].sum()),
                }
            )
            del feats, labels, decl, tables, carried
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
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PartitionedFeatures(out_dir, names, partitions, entities, attributes, categories)


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
    for m in months:
        for name, counts in value_counts(source.declarations([m]), attributes).items():
            totals.setdefault(name, []).append(counts)
    summed = {
        name: pd.concat(parts).groupby(level=0).sum() for name, parts in totals.items() if parts
    }
    return code_maps_from_counts(summed)


def _advance(
    history: History,
    cut: int,
    leaving: list[_ContextMonth],
    ghosts: pd.DataFrame,
    insp: pd.DataFrame,
    insp_t: np.ndarray,
    insp_ids: pd.Index,
    entity_defs: dict[str, Any],
    attributes: dict[str, str],
) -> pd.DataFrame:
    """Move the history's cut forward to ``cut``: the declarations of the months leaving the
    context and the results inspected before ``cut`` join the totals. Returns the new ghosts."""
    if cut <= history.cut:
        return ghosts
    old_cut = history.cut
    frames = [m.frame for m in leaving]
    decl = pd.concat(frames, ignore_index=True) if frames else None
    if decl is not None and len(decl):
        ratio = np.concatenate([m.uv_log_ratio for m in leaving])
        terms = behaviour_terms(
            declaration_flag(decl, "third_party_certificate"),
            declaration_flag(decl, "legal_inspection"),
            ratio,
        )
        fields = frame_fields(decl, attributes)
        t = to_ns(decl["declared_at"])
        for name, entity in entity_defs.items():
            history.add(name, frame_keys(fields, entity), declared_at=t, terms=terms)
    # Results inspected in [old cut, cut): their declarations are leaving now or ghosts.
    moving = (insp_t >= old_cut) & (insp_t < cut)
    pool = ghosts if decl is None else pd.concat([ghosts, decl], ignore_index=True)
    if moving.any() and len(pool):
        res = insp[moving]
        row = pd.Index(pool["declaration_id"]).get_indexer(res["declaration_id"])
        found = row >= 0
        res, row = res[found], row[found]
        flags = inspection_flags(res)
        history.add_global(inspection_flags(insp[moving]))
        owners = pool.iloc[row].reset_index(drop=True)
        fields = frame_fields(owners, attributes)
        rt = to_ns(res["inspected_at"])
        for name, entity in entity_defs.items():
            history.add(name, frame_keys(fields, entity), inspected_at=rt, flags=flags)
    elif moving.any():
        history.add_global(inspection_flags(insp[moving]))
    history.cut = cut
    # Ghosts: declarations before the cut whose result is at or after it.
    if not len(pool):
        return ghosts
    pos = insp_ids.get_indexer(pd.Index(pool["declaration_id"]))
    later = np.zeros(len(pool), dtype=bool)
    later[pos >= 0] = insp_t[pos[pos >= 0]] >= cut
    return pool[later].reset_index(drop=True)


def _write_float32(frame: pd.DataFrame, path: Path) -> None:
    """Ids as they are, every feature as float32 (half the bytes; LightGBM bins them anyway)."""
    columns = {c: pa.array(frame[c]) for c in ID_COLUMNS}
    for c in frame.columns[len(ID_COLUMNS) :]:
        columns[c] = pa.array(frame[c].to_numpy(dtype=np.float32))
    pq.write_table(pa.table(columns), path)


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
