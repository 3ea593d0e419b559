"""Execution engines: score the partitions of a run, locally or on ``dask.distributed``.

Both engines call the same :func:`score_partition`, which reads one partition's features,
scores them with :class:`~serving.rescore.explain.MatrixScorer`, writes the scored rows and the
per-enterprise aggregates atomically and finally the done-marker. A partition is therefore either
complete and verifiable, or absent and redone on the next attempt.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.bundle import ModelBundle, load_bundle
from serving.rescore.explain import MatrixScorer, ScoredMatrix, set_thread_limits
from serving.rescore.files import RunLayout, write_parquet_atomic
from serving.rescore.profiles import aggregate_partition, scored_frame

# Called after each partition: (partition, its done-marker).
OnPartition = Callable[[int, dict[str, Any]], None]

# Rows explained per task when the local engine splits a partition across threads.
CHUNK_ROWS = 4096


def _score_chunked(
    scorer: MatrixScorer, X: np.ndarray, pool: ThreadPoolExecutor | None
) -> ScoredMatrix:
    """Score ``X``; with a pool, explain row chunks in parallel (the TreeSHAP kernels release
    the GIL). Rows are independent, so the result does not depend on the chunking."""
    if pool is None or len(X) <= CHUNK_ROWS:
        return scorer.score(X)
    bounds = list(range(0, len(X), CHUNK_ROWS))
    parts = list(pool.map(lambda s: scorer.score(X[s : s + CHUNK_ROWS]), bounds))
    return ScoredMatrix(
        probability=np.concatenate([p.probability for p in parts]),
        logit=np.concatenate([p.logit for p in parts]),
        tier=np.concatenate([p.tier for p in parts]),
        contributions=np.concatenate([p.contributions for p in parts]),
        base=parts[0].base,
    )


def score_partition(
    scorer: MatrixScorer,
    layout: RunLayout,
    part: int,
    pool: ThreadPoolExecutor | None = None,
) -> dict[str, Any]:
    """Score one partition and write its files and done-marker; return the marker."""
    frame = pd.read_parquet(layout.features(part))
    X = frame[scorer.feature_names].to_numpy(dtype=np.float64)
    scored = _score_chunked(scorer, X, pool)
    names = scorer.feature_names
    write_parquet_atomic(scored_frame(frame, scored, names), layout.scored(part))
    aggregates = aggregate_partition(frame, scored, names)
    write_parquet_atomic(aggregates, layout.aggregates(part))
    marker = layout.mark_done(part, rows=len(frame), enterprises=len(aggregates))
    marker["base"] = scored.base
    marker["explainer"] = scorer.explainer_method
    return marker


def run_local(
    bundle: ModelBundle,
    layout: RunLayout,
    parts: Iterable[int],
    threads: int = 1,
    on_partition: OnPartition | None = None,
) -> str:
    """Score ``parts`` in this process with ``threads`` threads. Returns the explainer used.

    With ``threads > 1`` up to ``threads`` partitions are in flight at once: while one waits on
    Parquet reads and writes (pyarrow releases the GIL), the TreeSHAP row chunks of the others
    keep every core busy. Row chunks go to a separate pool of ``threads`` workers, so at most
    ``threads`` kernels run at a time and a partition waiting for its chunks never blocks a chunk
    (no nested waits on one pool). Each partition's files are written atomically and its marker
    last, so completion order does not matter for resuming or for the bytes.
    """
    scorer = MatrixScorer(bundle, threads=threads)
    parts = list(parts)
    if threads <= 1:
        for part in parts:
            marker = score_partition(scorer, layout, part)
            if on_partition is not None:
                on_partition(part, marker)
        return scorer.explainer_method
    chunks = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rescore-shap")
    partitions = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rescore-part")
    try:
        futures = {partitions.submit(score_partition, scorer, layout, p, chunks): p for p in parts}
        for future in as_completed(futures):
            marker = future.result()
            if on_partition is not None:
                on_partition(futures[future], marker)
    finally:
        partitions.shutdown(wait=True, cancel_futures=True)
        chunks.shutdown(wait=True)
    return scorer.explainer_method


# --------------------------------------------------------------------------- Dask

# One scorer per worker process, keyed by bundle path and manifest digest: the bundle is verified
# and loaded once per worker, not once per task.
_WORKER_SCORERS: dict[tuple[str, str | None, int], MatrixScorer] = {}
_WORKER_LOCK = threading.Lock()


def _worker_scorer(bundle_path: str, digest: str | None, threads: int) -> MatrixScorer:
    key = (bundle_path, digest, threads)
    with _WORKER_LOCK:
        scorer = _WORKER_SCORERS.get(key)
        if scorer is None:
            set_thread_limits(threads)
            scorer = MatrixScorer(load_bundle(Path(bundle_path), digest), threads=threads)
            _WORKER_SCORERS[key] = scorer
        return scorer


def worker_loads() -> int:
    """Number of bundles loaded in this worker process (tests check it is one per worker)."""
    return len(_WORKER_SCORERS)


def _dask_task(
    bundle_path: str, digest: str | None, root: str, part: int, threads: int
) -> dict[str, Any]:
    scorer = _worker_scorer(bundle_path, digest, threads)
    return score_partition(scorer, RunLayout(Path(root)), part)


def start_local_cluster(n_workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A ``LocalCluster`` of worker processes with their thread pools capped at start-up."""
    from distributed import LocalCluster

    env = {
        "OMP_NUM_THREADS": str(threads_per_worker),
        "NUMBA_NUM_THREADS": str(threads_per_worker),
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        # None would still start the scheduler's HTTP server on 8787 (taken when another
        # cluster runs): a free port on the loopback instead.
        dashboard_address="127.0.0.1:0",
        env=env,
    )


def run_dask(
    client: Any,
    bundle: ModelBundle,
    layout: RunLayout,
    parts: Iterable[int],
    bundle_digest: str | None,
    threads: int = 1,
    on_partition: OnPartition | None = None,
) -> str:
    """Score ``parts`` on the cluster behind ``client``.

    Workers load the bundle themselves from ``bundle.path`` (verified against ``bundle_digest``)
    and read and write the run folder directly, so that folder must be on a filesystem every
    worker sees (always true for a ``LocalCluster``).
    """
    from distributed import as_completed as dask_completed

    if bundle.path is None:
        raise ValueError("the Dask engine needs a bundle saved on disk (bundle.path)")
    parts = list(parts)
    if not parts:
        return "none"
    client.run(set_thread_limits, threads)
    futures = [
        client.submit(
            _dask_task,
            str(Path(bundle.path).resolve()),
            bundle_digest,
            str(layout.root.resolve()),
            part,
            threads,
            pure=False,
            retries=1,
        )
        for part in parts
    ]
    method = "none"
    for future in dask_completed(futures):
        marker = future.result()
        method = marker.get("explainer", method)
        if on_partition is not None:
            on_partition(int(marker["partition"]), marker)
    return method
