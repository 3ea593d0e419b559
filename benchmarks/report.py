"""Collect every benchmark's markdown table into the README, between the benchmark markers.

Run after the benchmarks: ``.venv/bin/python benchmarks/report.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
ORDER = [
    "demo_data",
    "ingest",
    "features",
    "training",
    "training_ceiling",
    "treeshap",
    "api",
    "rescore",
    "warnings",
]


def collect() -> str:
    tables = sorted(
        RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem)
    )
    parts = [p.read_text(encoding="utf-8").strip() for p in tables]
    return "\n\n".join(parts) if parts else "_No benchmark has been run yet._"


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = f"{START}\n{collect()}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    readme.write_text(text, encoding="utf-8")
    print(f"README benchmark section updated from {RESULTS}")


if __name__ == "__main__":
    main()
