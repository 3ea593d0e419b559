"""Keep the live snapshots of several worker processes in step through the shared database.

Each uvicorn worker holds its own in-memory :class:`serving.scoring.LiveSnapshot`. The events that
change it are already stored before the answer is sent: a scored declaration as a ``score_audit``
row (with its canonical JSON in ``declaration_json``), an inspection result as an
``inspection_results`` row. Every row carries the ``worker_id`` of the process that wrote it.

:class:`SnapshotSync` replays the rows written by the other workers into this worker's snapshot:

- at start-up (:meth:`SnapshotSync.catch_up`), every row created at or after the snapshot's
  ``as_of`` (the snapshot holds the events before it);
- then, in a background thread every ``Settings.snapshot_sync_seconds``
  (:meth:`SnapshotSync.poll_once`), the rows with an id above the highest one seen.

The request path pays nothing extra: the ``worker_id`` goes into the insert it already makes.
Ids that were skipped (on PostgreSQL a sequence value can commit after a larger one) are asked
for again for ``GAP_SECONDS``; an inspection whose declaration the snapshot does not know yet
(the two rows can be read in either order) is retried for as long.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from features.contract import DQ_ISSUE_COUNT
from features.rates import RateTable
from serving.audit import inspection_results, score_audit
from serving.periodic import PeriodicTask
from serving.schemas import Declaration
from serving.scoring import CurrencyError, LiveSnapshot, to_usd

log = logging.getLogger("guomen.serving.sync")

#: How long a skipped id (or an inspection waiting for its declaration) is asked for again.
GAP_SECONDS = 60.0
#: At most this many remembered gaps / waiting inspections (oldest dropped first).
MAX_PENDING = 10_000
#: Declarations applied per hold of the snapshot lock.
APPLY_CHUNK = 64
#: Rows read per query (a long catch-up is read in pages).
PAGE = 5_000

INSPECTION_FIELDS = (
    "declaration_id",
    "inspected_at",
    "selection",
    "result",
    "hazard_type",
    "severity",
    "disposal",
)


def new_worker_id() -> str:
    """A random token naming this process's rows (16 hex characters)."""
    return secrets.token_hex(8)


def declaration_row(declaration: Declaration, rates: RateTable | None) -> dict[str, Any]:
    """The declaration as the feature pipeline reads it (contract fields, USD value, attributes).

    Raises
    ------
    CurrencyError
        No ``declared_value_usd`` and no rate in force for the currency at ``declared_at``.
    """
    row = declaration.model_dump(exclude={"attributes"})
    row.update(declaration.attributes)
    # The feature decl_dq_issue_cnt_now: issues found by the contract's rules, as ingest counts.
    row[DQ_ISSUE_COUNT] = len(declaration.data_quality)
    if row["declared_value_usd"] is None:
        if rates is None:
            raise CurrencyError("no rate table loaded")
        row["declared_value_usd"] = to_usd(
            rates, declaration.declared_value, declaration.currency, declaration.declared_at
        )
    return row


class _Cursor:
    """The highest id seen in one table and the smaller ids not seen yet (with first-miss time)."""

    def __init__(self) -> None:
        self.max_id: int | None = None
        self.gaps: dict[int, float] = {}

    def advance(self, ids: Sequence[int], now: float) -> None:
        for i in ids:
            self.gaps.pop(i, None)
        if not ids:
            return
        top = max(ids)
        # Ids between the last top (or the first id read) and the new top not read: skipped.
        low = min(ids) - 1 if self.max_id is None else self.max_id
        if top > low:
            seen = set(ids)
            for missing in range(max(low + 1, top - MAX_PENDING), top):
                if missing not in seen:
                    self.gaps[missing] = now
        self.max_id = top if self.max_id is None else max(self.max_id, top)

    def expire(self, now: float) -> None:
        for i in [i for i, t in self.gaps.items() if now - t > GAP_SECONDS]:
            del self.gaps[i]
        if len(self.gaps) > MAX_PENDING:
            for i in sorted(self.gaps)[: len(self.gaps) - MAX_PENDING]:
                del self.gaps[i]

    def where(self, id_column: Any) -> Any:
        """Rows after the cursor (parameterised; gaps through an expanding IN)."""
        newer = id_column > (self.max_id if self.max_id is not None else -1)
        if not self.gaps:
            return newer
        return sa.or_(newer, id_column.in_(sorted(self.gaps)))


class SnapshotSync:
    """Replays the other workers' stored events into this worker's live snapshot.

    Parameters
    ----------
    engine
        The shared database.
    live
        Returns the process's live snapshot, or None while it is not loaded.
    worker_id
        This process's token (its own rows are already applied on the request path).
    rates
        The rate table (declarations sent without ``declared_value_usd``).
    interval
        Seconds between polls of the background thread.
    """

    def __init__(
        self,
        engine: Engine,
        live: Callable[[], LiveSnapshot | None],
        worker_id: str,
        rates: RateTable | None,
        interval: float = 1.0,
    ) -> None:
        self.engine = engine
        self.live = live
        self.worker_id = worker_id
        self.rates = rates
        self.interval = interval
        self.decl_cursor = _Cursor()
        self.insp_cursor = _Cursor()
        self.waiting: dict[str, tuple[dict[str, Any], float]] = {}  # declaration id -> row
        self.started = False  # catch-up done
        self.applied_declarations = 0
        self.applied_inspections = 0
        self._waiting_lock = threading.Lock()  # request threads defer, the poller retries
        self._lock = threading.Lock()  # one poll at a time (thread, tests, catch-up)
        self._poller = PeriodicTask("snapshot-sync", interval, self.poll_once, log)

    # -- reading -------------------------------------------------------------------------
    def _read(self, table: sa.Table, columns: Sequence[Any], where: Any) -> list[Any]:
        query = sa.select(table.c.id, table.c.worker_id, *columns).where(where)
        with self.engine.connect() as conn:
            return list(conn.execute(query.order_by(table.c.id).limit(PAGE)))

    def _pages(self, table: sa.Table, columns: Sequence[Any], cursor: _Cursor, extra: Any) -> list:
        """Every row after ``cursor`` (and matching ``extra``), advancing the cursor."""
        out: list[Any] = []
        while True:
            where = cursor.where(table.c.id)
            if extra is not None:
                where = sa.and_(where, extra)
            rows = self._read(table, columns, where)
            now = time.monotonic()
            cursor.advance([int(r.id) for r in rows], now)
            out.extend(rows)
            if len(rows) < PAGE:
                return out

    # -- applying ------------------------------------------------------------------------
    def _apply_declarations(self, live: LiveSnapshot, rows: Sequence[Any]) -> int:
        decls: list[dict[str, Any]] = []
        for r in rows:
            if r.worker_id == self.worker_id or r.declaration_json is None:
                continue  # ours (applied when scored), or written before replay existed
            try:
                decls.append(
                    declaration_row(Declaration.model_validate_json(r.declaration_json), self.rates)
                )
            except (ValidationError, CurrencyError) as exc:
                log.warning("audit row %s not replayed: %s", r.id, exc)
        # Short lock holds: a request waits for at most one chunk, not a whole page.
        for start in range(0, len(decls), APPLY_CHUNK):
            live.add_declarations(decls[start : start + APPLY_CHUNK])
        return len(decls)

    def _apply_inspection(self, live: LiveSnapshot, row: dict[str, Any]) -> bool:
        try:
            live.add_inspection(row)
        except (KeyError, ValueError):
            return False
        return True

    def _apply_inspections(self, live: LiveSnapshot, rows: Sequence[Any]) -> int:
        n = 0
        now = time.monotonic()
        for r in rows:
            if r.worker_id == self.worker_id:
                continue
            row = {f: getattr(r, f) for f in INSPECTION_FIELDS}
            if self._apply_inspection(live, row):
                n += 1
            else:
                self.defer_inspection(row, now)
        return n

    def _retry_waiting(self, live: LiveSnapshot) -> int:
        now = time.monotonic()
        n = 0
        with self._waiting_lock:
            waiting = list(self.waiting.items())
        for did, (row, since) in waiting:
            done = self._apply_inspection(live, row)
            if done:
                n += 1
            elif now - since > GAP_SECONDS:
                log.info("inspection %s never placed in the snapshot", did)
            if done or now - since > GAP_SECONDS:
                with self._waiting_lock:
                    self.waiting.pop(did, None)
        return n

    def defer_inspection(self, row: Mapping[str, Any], now: float | None = None) -> None:
        """Retry an inspection the snapshot could not place (its declaration may come later)."""
        with self._waiting_lock:
            if len(self.waiting) >= MAX_PENDING:
                self.waiting.pop(next(iter(self.waiting)))
            self.waiting[str(row["declaration_id"])] = (
                dict(row),
                time.monotonic() if now is None else now,
            )

    # -- the two entry points ------------------------------------------------------------
    def _sync(self, live: LiveSnapshot, since: datetime | None) -> tuple[int, int]:
        # Declarations first: an inspection row is written after its declaration's audit row.
        # This worker's own rows are applied already: their ids advance the cursor, but their
        # JSON (most of the bytes of a row) is not read back.
        others_json = sa.case(
            (score_audit.c.worker_id == self.worker_id, sa.null()),
            else_=score_audit.c.declaration_json,
        ).label("declaration_json")
        decl = self._pages(
            score_audit,
            [others_json],
            self.decl_cursor,
            None if since is None else score_audit.c.created_at >= since,
        )
        insp = self._pages(
            inspection_results,
            [inspection_results.c[f] for f in INSPECTION_FIELDS],
            self.insp_cursor,
            None if since is None else inspection_results.c.received_at >= since,
        )
        n_decl = self._apply_declarations(live, decl)
        n_insp = self._apply_inspections(live, insp) + self._retry_waiting(live)
        now = time.monotonic()
        self.decl_cursor.expire(now)
        self.insp_cursor.expire(now)
        self.applied_declarations += n_decl
        self.applied_inspections += n_insp
        return n_decl, n_insp

    def catch_up(self) -> tuple[int, int] | None:
        """Apply every stored event since the snapshot's ``as_of`` (once; None: no snapshot).

        Older rows are left out (ids below them are not gaps: the snapshot holds those events).
        """
        with self._lock:
            live = self.live()
            if live is None or self.started:
                return None
            with self.engine.connect() as conn:
                tops = [
                    conn.execute(sa.select(sa.func.max(t.c.id))).scalar_one()
                    for t in (score_audit, inspection_results)
                ]
            counts = self._sync(live, live.as_of)
            # Rows up to the current top id that were not read are older than the snapshot.
            for cursor, top in zip((self.decl_cursor, self.insp_cursor), tops, strict=True):
                if top is not None:
                    cursor.max_id = max(int(top), -1 if cursor.max_id is None else cursor.max_id)
            # Before the first row after as_of, nothing is missing: forget those "gaps".
            self.decl_cursor.gaps.clear()
            self.insp_cursor.gaps.clear()
            self.started = True
        log.info("snapshot caught up: %d declarations, %d inspections from other workers", *counts)
        return counts

    def poll_once(self) -> tuple[int, int]:
        """Apply the rows stored since the last poll by other workers: (declarations,
        inspections) applied. Runs the catch-up first if it has not run."""
        if not self.started:
            return self.catch_up() or (0, 0)
        with self._lock:
            live = self.live()
            if live is None:
                return 0, 0
            return self._sync(live, None)

    # -- the background thread -----------------------------------------------------------
    def start(self) -> None:
        """Start polling in a daemon thread."""
        self._poller.start()

    def stop(self) -> None:
        """Stop the thread (waits for a poll in progress)."""
        self._poller.stop()
