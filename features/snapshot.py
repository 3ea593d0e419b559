"""The state of every entity as of a time: built from the tables, saved without pickle, loaded by
the API, updated incrementally as declarations, results and signals arrive.

Per entity key and event kind (declarations; results; nonconforming; major/critical; random) the
snapshot keeps the event times that any query at or after ``as_of - GRACE`` can still see inside
its longest finite window, plus the count of older events (for all-history counts), the first
declaration time and the last older nonconformity. Besides: risk signals of the last 365 days
(+ grace), the credit history, enterprise attributes, HS6 unit values, and the key fields of
declarations still waiting for a result (so ``add_inspection`` knows which histories it moves);
and per key of an entity with behaviour aggregations (the enterprise), running sums of its
declarations' behaviour terms (``features.build.BEHAVIOUR_SUMS``): totals before ``as_of - GRACE``
and, after it, each declaration's time and terms.

The files of a saved snapshot (no pickle) are ``features.snapshot_format``'s.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import (
    behaviour_terms,
    signal_categories,
    signal_patterns,
)
from features.contract import SIGNAL_CHANNELS, SIGNAL_SEVERITIES
from features.entities import (
    KEY_FIELDS,
    entities_for,
    row_fields,
    row_key,
)
from features.registry import (
    MIN_UNIT_VALUE_COUNT,
    entity_aggregations,
)
from features.snapshot_build import build_snapshot_tables, signal_keys
from features.snapshot_format import SnapshotTables, read_snapshot, write_snapshot
from features.snapshot_state import (
    GLOBAL,
    GRACE_NS,
    NONE_T,
    BehaviourTable,
    EntityTable,
    _ns_of,
    _num,
    flag_of,
    month_start_of,
)


class Snapshot:
    """Entity histories as of a time (see the module docstring for what is kept).

    Build with :meth:`build` or :meth:`load`; update with :meth:`add_declaration`,
    :meth:`add_inspection` and :meth:`add_signal`; read with ``features.online.OnlineFeatures``.
    Queries at times ``t >= as_of - GRACE_NS`` are exact.
    """

    def __init__(
        self,
        meta: dict[str, Any],
        entities: dict[str, EntityTable],
        signals: pd.DataFrame,
        credit: pd.DataFrame,
        enterprises: pd.DataFrame,
        uv_base: pa.Table,
        uv_pending: pd.DataFrame,
        pending: pd.DataFrame,
        behaviour: dict[str, BehaviourTable],
    ) -> None:
        self.meta = meta
        self.attributes: dict[str, str] = dict(meta["attributes"])
        self.as_of_ns: int = int(meta["as_of_ns"])
        self.cutoff: int = int(meta["cutoff_ns"])
        self.base_month: int = int(meta["base_month_ns"])
        self.entities = entities
        # The history keys kept (a bundle's chosen set; None in older snapshots: the default).
        chosen = meta.get("entities")
        self.entity_names: tuple[str, ...] | None = None if chosen is None else tuple(chosen)
        self.entity_defs = entities_for(self.attributes, self.entity_names)
        self.entity_aggs = entity_aggregations(self.attributes, self.entity_names)
        self.behaviour = behaviour
        self.patterns: list[tuple[tuple[str, ...], int]] = [
            (tuple(p[0]), int(p[1])) for p in meta["signal_patterns"]
        ]
        # pattern index -> key -> ([times], [channel], [severity]) sorted by time
        self.signals: list[dict[str, tuple[list[int], list[int], list[int]]]] = [
            {} for _ in self.patterns
        ]
        if len(signals):
            s = signals.sort_values(["pattern", "t"], kind="stable")
            for p, key, t, ch, sev in zip(
                s["pattern"].tolist(),
                s["key"].tolist(),
                s["t"].tolist(),
                s["channel"].tolist(),
                s["severity"].tolist(),
                strict=True,
            ):
                entry = self.signals[p].setdefault(key, ([], [], []))
                entry[0].append(t)
                entry[1].append(ch)
                entry[2].append(sev)
        # Per pattern and key, cumulative channel / severity counts (built on first use).
        self.signal_cums: list[dict[str, tuple[list[list[int]], list[list[int]]]]] = [
            {} for _ in self.patterns
        ]
        self.credit: dict[str, tuple[list[int], list[float]]] = {}
        for ent, t, tier in zip(
            credit["enterprise_id"].tolist(),
            credit["t"].tolist(),
            credit["tier"].tolist(),
            strict=True,
        ):
            times, tiers = self.credit.setdefault(ent, ([], []))
            i = bisect_right(times, t)
            times.insert(i, t)
            tiers.insert(i, tier)
        self.enterprises: dict[str, tuple[float, int | None]] = {
            e: (float(c), None if r == NONE_T else int(r))
            for e, c, r in zip(
                enterprises["enterprise_id"].tolist(),
                enterprises["type_code"].tolist(),
                enterprises["registered"].tolist(),
                strict=True,
            )
        }
        self._uv_base_table = uv_base
        hs = uv_base.column("hs6").to_pylist()
        self._uv_index = dict(zip(hs, range(len(hs)), strict=True))
        arr = uv_base.column("values").combine_chunks()
        off = arr.offsets.to_numpy()
        self._uv_off = off - off[0]
        self._uv_vals = arr.flatten().to_numpy()
        self.uv_pending: dict[str, list[tuple[int, float]]] = {}
        for h, t, v in zip(
            uv_pending["hs6"].tolist(),
            uv_pending["t"].tolist(),
            uv_pending["luv"].tolist(),
            strict=True,
        ):
            self.uv_pending.setdefault(h, []).append((t, v))
        self._uv_cache: dict[str, dict[int, tuple[float, float, float, int]]] = {}
        self._pending_frame = pending.reset_index(drop=True)
        self._pending_index: dict[str, int] | None = None
        self._pending_added: dict[str, dict[str, Any]] = {}
        self._pending_removed: set[str] = set()

    # ------------------------------------------------------------------ build / save / load
    @classmethod
    def build(
        cls,
        tables: dict[str, pd.DataFrame],
        as_of: Any,
        attributes: dict[str, str] | None = None,
        entities: tuple[str, ...] | list[str] | None = None,
    ) -> Snapshot:
        """State of every entity from events strictly before ``as_of``.

        The arguments are those of :func:`features.snapshot_build.build_snapshot_tables`
        (contract tables, as-of time, extra attributes, history keys kept).
        """
        return cls.from_tables(build_snapshot_tables(tables, as_of, attributes, entities))

    def save(self, directory: Path | str) -> None:
        """Write the snapshot (Parquet + JSON; no pickle; ``features.snapshot_format``)."""
        write_snapshot(directory, self.to_tables())

    @classmethod
    def load(cls, directory: Path | str) -> Snapshot:
        """Read a snapshot written by :meth:`save`."""
        return cls.from_tables(read_snapshot(directory))

    @classmethod
    def from_tables(cls, t: SnapshotTables) -> Snapshot:
        """The snapshot of tables built (``features.snapshot_build``) or read from disk."""
        return cls(
            t.meta,
            t.entities,
            t.signals,
            t.credit,
            t.enterprises,
            t.uv_base,
            t.uv_pending,
            t.pending,
            t.behaviour,
        )

    def to_tables(self) -> SnapshotTables:
        """The state as the tables a saved snapshot holds (incremental updates included)."""
        rows = [
            (p, key, t, c, s)
            for p, by_key in enumerate(self.signals)
            for key, (ts, cs, ss) in by_key.items()
            for t, c, s in zip(ts, cs, ss, strict=True)
        ]
        credit_rows = [
            (e, t, tier)
            for e, (ts, tiers) in self.credit.items()
            for t, tier in zip(ts, tiers, strict=True)
        ]
        meta = dict(self.meta)
        meta["signal_patterns"] = [[list(f), n] for f, n in self.patterns]
        return SnapshotTables(
            meta=meta,
            entities=self.entities,
            signals=pd.DataFrame(rows, columns=["pattern", "key", "t", "channel", "severity"]),
            credit=pd.DataFrame(credit_rows, columns=["enterprise_id", "t", "tier"]),
            enterprises=pd.DataFrame(
                [(e, c, NONE_T if r is None else r) for e, (c, r) in self.enterprises.items()],
                columns=["enterprise_id", "type_code", "registered"],
            ),
            uv_base=self._uv_base_table,
            uv_pending=pd.DataFrame(
                [(h, t, v) for h, items in self.uv_pending.items() for t, v in items],
                columns=["hs6", "t", "luv"],
            ),
            pending=self._pending_snapshot(),
            behaviour=self.behaviour,
        )

    @property
    def as_of(self) -> pd.Timestamp:
        """The snapshot time: it holds events strictly before it (plus later incremental ones)."""
        return pd.Timestamp(self.as_of_ns, tz="UTC")

    # ------------------------------------------------------------------ incremental updates
    def add_declaration(self, row: Mapping[str, Any], rates: Any = None) -> None:
        """Record a declaration: it counts for declarations strictly after its ``declared_at``.

        ``row`` has contract fields (``declared_at`` aware datetime or ISO string);
        ``declared_value_usd`` is used if given, else converted with ``rates`` (a
        ``features.rates.RateTable``; default table if None). Its behaviour terms use its own
        ``hs6_uv_log_ratio_month`` as of now: a declaration recorded after a later-month one of
        the same HS6 does not revise that one's ratio (declarations arrive in time order).

        Raises
        ------
        ValueError
            A unit value older than the snapshot's unit-value base month (nothing is recorded).
        """
        t = _ns_of(row["declared_at"])
        fields = row_fields(row, self.attributes)
        luv = unit_value_of(row, rates)
        hs6 = fields.get("hs6")
        has_uv = hs6 is not None and math.isfinite(luv)
        # Refused before anything changes, so a refused declaration leaves no partial trace.
        if has_uv and t < self.base_month:
            raise ValueError("declaration older than the snapshot's unit-value base month")
        term: list[float] = []
        if self.behaviour:
            # Its own hs6_uv_log_ratio_month: HS6 values before its month, so not itself.
            ratio, _ = self.unit_value_features(hs6, t, luv)
            term = behaviour_terms(
                np.array([flag_of(row.get("third_party_certificate"))], dtype=bool),
                np.array([flag_of(row.get("legal_inspection"))], dtype=bool),
                np.array([ratio]),
            )[:, 0].tolist()
        for name, table in self.entities.items():
            if name == GLOBAL:
                continue
            key = row_key(fields, self.entity_defs[name])
            if key is None:
                continue
            st = table.get_or_create(key)
            st.decl.add(t, self.cutoff)
            if st.first is None or t < st.first:
                st.first = t
        self.entities[GLOBAL].get_or_create("").decl.add(t, self.cutoff)
        for name, btable in self.behaviour.items():
            key = row_key(fields, self.entity_defs[name])
            if key is not None:
                btable.get_or_create(key).add(t, term)
        if has_uv:
            assert hs6 is not None
            self.uv_pending.setdefault(hs6, []).append((t, luv))
            # Month stats count values before the month start: only later months change.
            cache = self._uv_cache.get(hs6)
            if cache:
                for month in [m for m in cache if m > t]:
                    del cache[month]
        did = str(row["declaration_id"])
        self._pending_added[did] = {f: row.get(f) for f in self._pending_columns()}
        self._pending_removed.discard(did)

    def add_inspection(self, row: Mapping[str, Any]) -> None:
        """Record a result: it informs declarations strictly after its ``inspected_at``.

        Raises
        ------
        KeyError
            The declaration is unknown to the snapshot or already has a result.
        """
        did = str(row["declaration_id"])
        fields_row = self._pending_lookup(did)
        t = _ns_of(row["inspected_at"])
        nc = row.get("result") == "nonconforming"
        flags = {
            "insp": True,
            "nc": nc,
            "ncmaj": nc and row.get("severity") in ("major", "critical"),
            "rand": row.get("selection") == "random",
        }
        fields = row_fields(fields_row, self.attributes)
        for name, table in self.entities.items():
            key = "" if name == GLOBAL else row_key(fields, self.entity_defs[name])
            if key is None:
                continue
            st = table.get_or_create(key)
            for k, on in flags.items():
                if on:
                    getattr(st, k).add(t, self.cutoff)
        self._pending_removed.add(did)
        self._pending_added.pop(did, None)

    def add_signal(self, row: Mapping[str, Any]) -> None:
        """Record a risk signal: it counts for declarations strictly after its ``reported_at``."""
        frame = pd.DataFrame([dict(row)])
        for col in ("enterprise_id", "overseas_party_id", "hs_code", "origin_country", "severity"):
            if col not in frame:
                frame[col] = None
            frame[col] = frame[col].astype("str")
        pats, _ = signal_patterns(frame)
        if not pats:
            raise ValueError("a risk signal must name a subject")
        pattern = pats[0]
        if pattern not in self.patterns:
            self.patterns.append(pattern)
            self.signals.append({})
            self.signal_cums.append({})
        p = self.patterns.index(pattern)
        key = signal_keys(frame, np.zeros(1, dtype=np.int64), [pattern])[0]
        ch, sev = signal_categories(frame)
        t = _ns_of(row["reported_at"])
        times, chs, sevs = self.signals[p].setdefault(key, ([], [], []))
        i = bisect_right(times, t)
        times.insert(i, t)
        chs.insert(i, int(ch[0]))
        sevs.insert(i, int(sev[0]))
        self.signal_cums[p].pop(key, None)

    def signal_cum(
        self,
        cums: dict[str, tuple[list[list[int]], list[list[int]]]],
        key: str,
        entry: tuple[list[int], list[int], list[int]],
    ) -> tuple[list[list[int]], list[list[int]]]:
        """Cumulative counts per channel and per severity of one signal key (cached).

        ``cums[c][j]`` is the number of signals of channel ``c`` among the first ``j`` of the key
        (likewise severities), so a window count is two list reads, not a loop over signals.
        """
        got = cums.get(key)
        if got is None:
            got = (
                _cumulate(entry[1], len(SIGNAL_CHANNELS)),
                _cumulate(entry[2], len(SIGNAL_SEVERITIES)),
            )
            cums[key] = got
        return got

    # ------------------------------------------------------------------ helpers
    def _pending_columns(self) -> list[str]:
        extra = [n for n, k in sorted(self.attributes.items()) if k == "categorical"]
        return ["declaration_id", *KEY_FIELDS, *extra]

    def _pending_lookup(self, did: str) -> dict[str, Any]:
        if did in self._pending_removed:
            raise KeyError(f"declaration {did!r} already has a result")
        if did in self._pending_added:
            return self._pending_added[did]
        if self._pending_index is None:
            ids = self._pending_frame["declaration_id"].tolist()
            self._pending_index = dict(zip(ids, range(len(ids)), strict=True))
        i = self._pending_index.get(did)
        if i is None:
            raise KeyError(
                f"declaration {did!r} is unknown to the snapshot or already has a result"
            )
        # The pending frame has str column labels.
        rec = cast(dict[str, Any], self._pending_frame.iloc[i].to_dict())
        return {k: (None if _isna(v) else v) for k, v in rec.items()}

    def _pending_snapshot(self) -> pd.DataFrame:
        base = self._pending_frame
        if self._pending_removed:
            base = base[~base["declaration_id"].isin(self._pending_removed)]
        if self._pending_added:
            added = pd.DataFrame(
                list(self._pending_added.values()), columns=self._pending_columns()
            )
            base = pd.concat([base, added.astype("str")], ignore_index=True)
        return base.astype({c: "str" for c in base.columns})

    def unit_value_features(self, hs6: str | None, t: int, luv: float) -> tuple[float, float]:
        """``hs6_uv_log_ratio_month`` and ``hs6_uv_z_month`` of a declaration at ``t`` (ns)."""
        if hs6 is None or luv != luv:
            return math.nan, math.nan
        med, mean, std, k = self.unit_value_stats(hs6, month_start_of(t))
        if k < MIN_UNIT_VALUE_COUNT:
            return math.nan, math.nan
        return luv - med, ((luv - mean) / std if std > 0 else math.nan)

    def unit_value_stats(self, hs6: str, month: int) -> tuple[float, float, float, int]:
        """(median, mean, population std, count) of log unit values of ``hs6`` before ``month``."""
        cache = self._uv_cache.setdefault(hs6, {})
        got = cache.get(month)
        if got is not None:
            return got
        i = self._uv_index.get(hs6)
        vals = (
            self._uv_vals[self._uv_off[i] : self._uv_off[i + 1]].tolist() if i is not None else []
        )
        if month < self.base_month:
            raise ValueError("query older than the snapshot's unit-value base month")
        if month > self.base_month:
            vals = sorted(vals + [v for t, v in self.uv_pending.get(hs6, ()) if t < month])
        k = len(vals)
        if k == 0:
            out = (math.nan, math.nan, math.nan, 0)
        else:
            med = 0.5 * (vals[(k - 1) // 2] + vals[k // 2])
            mean = sum(vals) / k
            std = math.sqrt(sum((v - mean) ** 2 for v in vals) / k)
            out = (med, mean, std, k)
        cache[month] = out
        return out


def _cumulate(codes: list[int], n_codes: int) -> list[list[int]]:
    """Per code ``c``: running count of ``codes == c`` (length ``len(codes) + 1``)."""
    out = []
    for c in range(n_codes):
        run = [0]
        k = 0
        for x in codes:
            k += x == c
            run.append(k)
        out.append(run)
    return out


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def unit_value_of(row: Mapping[str, Any], rates: Any = None) -> float:
    """ln(USD/kg) of one declaration dict (NaN unless both are positive)."""
    usd = declaration_usd(row, rates)
    kg = _num(row.get("net_weight_kg"))
    if usd > 0 and kg > 0:
        return float(np.log(usd / kg))
    return math.nan


def declaration_usd(row: Mapping[str, Any], rates: Any = None) -> float:
    """``declared_value_usd`` if given, else ``declared_value`` converted with the rate table."""
    usd = _num(row.get("declared_value_usd"))
    if not math.isnan(usd) or row.get("declared_value_usd") is not None:
        return usd
    value = _num(row.get("declared_value"))
    if math.isnan(value):
        return math.nan
    if rates is None:
        from features.rates import load_rates

        rates = load_rates()
    out, _ = rates.to_usd(
        np.array([value]),
        np.array([row.get("currency")], dtype=object),
        np.array([_ns_of(row["declared_at"])], dtype=np.int64).view("datetime64[ns]"),
    )
    return float(out[0])


__all__ = [
    "GRACE_NS",
    "Snapshot",
    "declaration_usd",
    "unit_value_of",
    "SIGNAL_CHANNELS",
    "SIGNAL_SEVERITIES",
]
