"""Training inputs from partitioned features (``features.partitioned``), read partition by
partition, with a documented sample when a segment has more rows than memory allows.

``guomen train --features DIR`` reads the float32 partitions written by ``guomen features build``
instead of building every feature in memory. Each time segment (train, validation, test; see
``training.split``) keeps at most ``max_rows`` declarations: when a segment holds more, a uniform
random sample of its rows is kept, labelled and unlabelled alike, at one rate per segment
(``min(1, max_rows / rows)``), drawn from ``seed`` and the partition name, so the same folder and
seed give the same sample. A uniform sample keeps every rate the model, the inverse-propensity
correction and the budget metrics estimate unbiased; only their variance grows. The rates are
recorded in the training report (``metrics.json``: ``sample``). Below the cap nothing is sampled
and the rows are exactly the in-memory build's (as float32).

The baselines read raw declarations: the scan keeps those of the kept rows (the plain LightGBM
baseline fits and scores on them) and each enterprise's first declaration (the legacy rule's "new
enterprise"), so both baselines are exact without the whole table.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from features.progress import Progress
from training.split import TEST, TRAIN, VALIDATION, TimeSplit, time_split

# At most this many declarations per segment, so at most three times as many in memory (train,
# validation and test are capped each). Training's peak follows the kept rows, about 4-5 KB
# each (float32 features, their sorted copy, float64 matrices, the raw declarations of the
# baselines; docs/scale.md, "Memory of training"), not the rows in the folder.
DEFAULT_MAX_ROWS = 3_000_000


@dataclass
class SampleReport:
    """Rows per segment in the folder and kept for training, and the sampling rates."""

    rows: dict[str, int]
    kept: dict[str, int]
    rates: dict[str, float]
    max_rows: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "kept": self.kept,
            "rates": self.rates,
            "max_rows": self.max_rows,
            "seed": self.seed,
            "rule": "uniform per segment, labelled and unlabelled alike",
        }


@dataclass
class PartitionedInputs:
    """What ``training.pipeline.run_training`` needs, read from a partitioned feature folder."""

    features: pd.DataFrame
    labels: pd.DataFrame
    specs: list[Any]
    attributes: dict[str, str]
    entities: list[str] | None
    categories: dict[str, list[str]]
    declarations: pd.DataFrame  # the kept rows plus each enterprise's first declaration
    credit_ratings: pd.DataFrame
    store_fingerprint: str
    sample: SampleReport


def _partition_files(directory: Path, name: str) -> tuple[Path, Path]:
    return (
        directory / "features" / f"part-{name}.parquet",
        directory / "labels" / f"part-{name}.parquet",
    )


def _split_of(
    directory: Path, names: list[str], test_months: int, validation_months: int
) -> TimeSplit:
    """The time split of every declaration in the folder (one column read per partition)."""
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    for name in names:
        t = pq.read_table(_partition_files(directory, name)[0], columns=["declared_at"])
        col = t.column("declared_at").to_pandas()
        if len(col):
            first = col.min() if first is None else min(first, col.min())
            last = col.max() if last is None else max(last, col.max())
    if first is None or last is None:
        raise ValueError(f"{directory}: no declarations in the partitions")
    return time_split(pd.Series([first, last]), test_months, validation_months)


def _uniform(seed: int, name: str, n: int) -> np.ndarray:
    """Uniform draws for one partition's rows (stable for a given seed and partition)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())]).random(n)


def load_partitioned_inputs(
    features_dir: Path | str,
    store_dir: Path | str,
    *,
    test_months: int,
    validation_months: int,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    progress: Progress | None = None,
) -> PartitionedInputs:
    """Read the partitions a training run needs (sampled per segment above ``max_rows``).

    Parameters
    ----------
    features_dir
        A folder written by ``features.partitioned.build_partitioned``.
    store_dir
        The store it was built from (credit ratings, declarations for the legacy baseline).
    test_months, validation_months
        The training config's split.
    max_rows
        Most declarations kept per segment.
    seed
        Seed of the sample.

    Returns
    -------
    PartitionedInputs
    """
    from features.partitioned import read_manifest
    from features.registry import feature_specs
    from features.store import Store

    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    directory = Path(features_dir)
    manifest = read_manifest(directory)
    names = [p["name"] for p in manifest["partitions"]]
    split = _split_of(directory, names, test_months, validation_months)
    rows = {TRAIN: 0, VALIDATION: 0, TEST: 0}
    for name in names:
        t = pq.read_table(_partition_files(directory, name)[0], columns=["declared_at"])
        seg = split.segment(t.column("declared_at").to_pandas())
        for s in rows:
            rows[s] += int((seg == s).sum())
    rates = {s: min(1.0, max_rows / n) if n else 1.0 for s, n in rows.items()}
    store = Store(Path(store_dir))
    frames: list[pd.DataFrame] = []
    label_frames: list[pd.DataFrame] = []
    decl_kept: list[pd.DataFrame] = []
    first_rows: pd.DataFrame | None = None
    for name in names:
        if progress:
            progress(f"read {name}")
        feat_path, label_path = _partition_files(directory, name)
        when = pq.read_table(feat_path, columns=["declared_at"]).column("declared_at")
        seg = split.segment(when.to_pandas())
        rate = np.vectorize(rates.__getitem__, otypes=[float])(seg) if len(seg) else np.zeros(0)
        # Only the kept rows become pandas frames (the Arrow tables are freed partition by
        # partition): above the cap most of a partition is never converted.
        keep = np.flatnonzero(_uniform(seed, name, len(when)) < rate)
        feats = pq.read_table(feat_path).take(keep).to_pandas()
        frames.append(feats.reset_index(drop=True))
        label_frames.append(pq.read_table(label_path).take(keep).to_pandas().reset_index(drop=True))
        months = [p["months"] for p in manifest["partitions"] if p["name"] == name][0]
        decl = store.read("declarations", months=months)
        # Each enterprise's first declaration so far: only this partition's rows earlier than
        # their enterprise's first one yet (or of a new enterprise) can replace it, so the
        # carried rows are one per enterprise and the partition is never sorted whole.
        if first_rows is None:
            candidates = decl
        else:
            current = first_rows.set_index("enterprise_id")["declared_at"]
            before = decl["enterprise_id"].map(current)
            candidates = decl[before.isna().to_numpy() | (decl["declared_at"] < before).to_numpy()]
        own = candidates.sort_values("declared_at", kind="stable").drop_duplicates(
            "enterprise_id", keep="first"
        )
        if first_rows is None:
            first_rows = own
        elif len(own):
            replaced = first_rows["enterprise_id"].isin(own["enterprise_id"]).to_numpy()
            first_rows = pd.concat([first_rows[~replaced], own], ignore_index=True)
        decl_kept.append(decl[decl["declaration_id"].isin(feats["declaration_id"])])
        del feats, decl, candidates, own
    features = pd.concat(frames, ignore_index=True)
    kept = {s: int((split.segment(features["declared_at"]) == s).sum()) for s in rows}
    if first_rows is not None:
        first_rows = first_rows.sort_values("declared_at", kind="stable")
    declarations = pd.concat([*decl_kept, first_rows], ignore_index=True).drop_duplicates(
        "declaration_id"
    )
    manifest_path = Path(store_dir) / "manifest.json"
    fingerprint = (
        hashlib.sha256(manifest_path.read_bytes()).hexdigest() if manifest_path.exists() else ""
    )
    attributes = dict(manifest["attributes"])
    entities = manifest["entities"]
    return PartitionedInputs(
        features=features,
        labels=pd.concat(label_frames, ignore_index=True),
        specs=feature_specs(attributes, entities),
        attributes=attributes,
        entities=entities,
        categories=manifest["categories"],
        declarations=declarations.reset_index(drop=True),
        credit_ratings=store.read("credit_ratings"),
        store_fingerprint=fingerprint,
        sample=SampleReport(rows, kept, rates, max_rows, seed),
    )
