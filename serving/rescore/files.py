"""Files of a rescoring run: atomic Parquet writes, done-markers and the run directory layout.

::

    <out>/rescore/<as_of>/
      run.json                       # run id and parameters; a different run id wipes the folder
      features/part-NNNNN.parquet    # feature rows of each partition
      features/_SUCCESS.json         # written last: the feature stage is complete
      scored/part-NNNNN.parquet      # declaration scores, tier and calibrated contributions
      aggregates/part-NNNNN.parquet  # per-enterprise sums of that partition
      done/part-NNNNN.json           # written last: rows and sha256 of both files above
      profiles.parquet               # one row per enterprise (the result)
      summary.json                   # counts, score quantiles, MLflow run id

Every file is written to a temporary name in the same folder and renamed into place, so a reader
(or a resumed run) sees either the whole file or nothing. A partition is done only when its marker
exists and the files it names still have the recorded sha256.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.files import commit_file, sha256_file, temporary_beside, write_json_atomic
from serving.rescore.partition import partition_name

FEATURES_DIR = "features"
SCORED_DIR = "scored"
AGGREGATES_DIR = "aggregates"
DONE_DIR = "done"
FEATURES_SUCCESS = "_SUCCESS.json"
RUN_FILE = "run.json"
PROFILES_FILE = "profiles.parquet"
SUMMARY_FILE = "summary.json"


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (no index) to ``path`` through a temporary file and a rename.

    The writer options are fixed so that the same frame gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Dictionary pages only for the columns that repeat (ids, tiers, times): for the float
    # columns (probabilities, contributions) they cost most of the write and save nothing.
    dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    tmp = temporary_beside(path)
    try:
        pq.write_table(
            table, tmp, compression="zstd", write_statistics=True, use_dictionary=dictionary
        )
        commit_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError):
        return None


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run directory (``<out>/rescore/<as_of>``)."""

    root: Path

    @classmethod
    def for_run(cls, out_dir: Path, as_of: str) -> RunLayout:
        return cls(Path(out_dir) / "rescore" / as_of)

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def features_success(self) -> Path:
        return self.root / FEATURES_DIR / FEATURES_SUCCESS

    @property
    def profiles(self) -> Path:
        return self.root / PROFILES_FILE

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    def features(self, part: int) -> Path:
        return self.root / FEATURES_DIR / f"{partition_name(part)}.parquet"

    def scored(self, part: int) -> Path:
        return self.root / SCORED_DIR / f"{partition_name(part)}.parquet"

    def aggregates(self, part: int) -> Path:
        return self.root / AGGREGATES_DIR / f"{partition_name(part)}.parquet"

    def done(self, part: int) -> Path:
        return self.root / DONE_DIR / f"{partition_name(part)}.json"

    def prepare(self, run: dict[str, Any]) -> bool:
        """Create the folder for ``run``; return True when an earlier attempt of the same run is
        there to resume. Outputs of a different run (another model or parameters) are removed:
        they are derived data and would otherwise be mixed with this run's."""
        existing = read_json(self.run_file)
        if existing is not None and existing.get("run_id") == run["run_id"]:
            # Temporary files of a killed attempt: never renamed, so never part of the result.
            for tmp in self.root.rglob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            return True
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        write_json_atomic(self.run_file, run, sort_keys=True)
        return False

    def is_done(self, part: int) -> bool:
        """True when the partition's marker exists and its files match the recorded sha256."""
        marker = read_json(self.done(part))
        if marker is None:
            return False
        for path in (self.scored(part), self.aggregates(part)):
            key = str(path.relative_to(self.root))
            if not path.is_file() or sha256_file(path) != marker.get("files", {}).get(key):
                return False
        return True

    def mark_done(self, part: int, rows: int, enterprises: int) -> dict[str, Any]:
        marker = {
            "partition": part,
            "rows": rows,
            "enterprises": enterprises,
            "files": {
                str(p.relative_to(self.root)): sha256_file(p)
                for p in (self.scored(part), self.aggregates(part))
            },
        }
        write_json_atomic(self.done(part), marker, sort_keys=True)
        return marker


def previous_profiles(out_dir: Path, as_of: str) -> tuple[str, pd.DataFrame] | None:
    """The completed run with the latest as-of date before ``as_of`` under ``out_dir``, if any."""
    base = Path(out_dir) / "rescore"
    if not base.is_dir():
        return None
    earlier = sorted(
        p.name
        for p in base.iterdir()
        if p.is_dir() and p.name < as_of and (p / PROFILES_FILE).is_file()
    )
    if not earlier:
        return None
    prev = earlier[-1]
    return prev, pd.read_parquet(base / prev / PROFILES_FILE)
