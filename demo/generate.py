"""Realistic demo trade in the data contract, with a hidden ground truth.

``write_demo_data`` simulates about three years of declarations at a dozen Chinese ports ending
2026-10-31 (Asia/Shanghai), the enterprises, declarants and overseas parties behind them, credit
ratings, risk signals from the nine channels and the port's inspections. The true probability of a
nonconformity of every declaration is a logistic function of hidden components (see
``docs/demo-data.md``); it is written, with the planted outbreaks, to ``out/ground_truth/``, which
no pipeline reads. The simulation itself is :mod:`demo.simulation`, by step; this module runs it
and writes the files.

Everything is vectorised numpy: loops run over months, sectors or outbreaks, never over
declarations. Same seed, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from demo.simulation import STEPS, Simulation
from demo.simulation.common import NOISE_SD, TZ, TZ_OFFSET_S
from features.progress import Progress, no_progress

__all__ = ["NOISE_SD", "write_demo_data"]


def _to_csv_table(table: pa.Table) -> pa.Table:
    """Timestamps as ISO-8601 local time with the +08:00 offset, as the contract shows them."""
    cols = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_timestamp(col.type):
            sec = (
                pc.cast(col, pa.timestamp("s", tz=TZ))
                .cast(pa.int64())
                .to_numpy(zero_copy_only=False)
            )
            text = np.datetime_as_string((sec + TZ_OFFSET_S).astype("datetime64[s]"), unit="s")
            col = pc.binary_join_element_wise(pa.array(text), "+08:00", "")
        cols.append(col)
    return pa.table(cols, names=table.column_names)


def _write(table: pa.Table, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        pacsv.write_csv(_to_csv_table(table), path)


def write_demo_data(
    out: Path,
    n_declarations: int,
    seed: int,
    fmt: str = "parquet",
    progress: Progress | None = None,
    world: str = "default",
    signal_intensity: float = 1.0,
) -> dict[str, int]:
    """Write demo contract tables and a separate ground-truth folder.

    Parameters
    ----------
    out
        Folder to write into (created if missing). Gets ``declarations``, ``inspections``,
        ``enterprises``, ``credit_ratings`` and ``risk_signals`` as ``.parquet`` or ``.csv``, and
        ``ground_truth/declaration_truth.parquet`` plus ``ground_truth/outbreaks.json``.
    n_declarations
        Number of declarations (about three years ending 2026-10-31, Asia/Shanghai).
    seed
        Random seed; the same seed gives byte-identical files.
    fmt
        ``"parquet"`` (timestamps tz-aware) or ``"csv"`` (ISO-8601 with ``+08:00``).
    progress
        Told each generation step as it starts (counted form); ``None`` tells nobody.
    world
        Where the risk is planted (``demo/worlds.py``, ``docs/demo-data.md``); ``"default"`` is
        today's world, byte for byte.
    signal_intensity
        Multiplier of the rate of every risk-signal channel, the reports about planted outbreaks
        included (issue 17 replays 0.5, 1 and 2); 1 is today's.

    Returns
    -------
    dict[str, int]
        Rows written per contract table.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    if n_declarations < 100:
        raise ValueError("n_declarations must be at least 100")
    out = Path(out)
    sim = Simulation(int(n_declarations), int(seed), world, signal_intensity)

    def write_all() -> None:
        sim.build_tables()
        out.mkdir(parents=True, exist_ok=True)
        for name, table in sim.tables.items():
            _write(table, out / f"{name}.{fmt}", fmt)
        gt = out / "ground_truth"
        gt.mkdir(exist_ok=True)
        assert sim.truth is not None
        pq.write_table(sim.truth, gt / "declaration_truth.parquet", compression="zstd")
        (gt / "outbreaks.json").write_text(
            json.dumps(sim.outbreaks, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    steps: list[tuple[str, Callable[[], None]]] = [
        *((label, getattr(sim, method)) for label, method in STEPS),
        ("writing tables", write_all),
    ]
    say = progress or no_progress
    for done, (label, fn) in enumerate(steps):
        say(label, done, len(steps))
        fn()
    say("done", len(steps), len(steps))
    return {name: table.num_rows for name, table in sim.tables.items()}
