"""Index every benchmark's result table in the README and in ``benchmarks/results/README.md``.

The README shows the targets at a glance and links here; the full tables (several hundred lines)
stay in ``benchmarks/results/*.md``, each written by its own script. Run after the benchmarks:
``.venv/bin/python benchmarks/report.py``.
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
    "worlds",
    "treeshap",
    "api",
    "rescore",
    "pages",
    "warnings",
]


def _tables() -> list[Path]:
    found = [p for p in RESULTS.glob("*.md") if p.name != "README.md"]
    return sorted(found, key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))


def _title(path: Path) -> str:
    """The table's first heading, without its markdown hashes."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return path.stem


def index(link_prefix: str) -> str:
    """A markdown list linking every result table, in benchmark order."""
    rows = [f"- [{_title(p)}]({link_prefix}{p.name}) (`{p.stem}`)" for p in _tables()]
    return "\n".join(rows) if rows else "_No benchmark has been run yet._"


def main() -> None:
    (RESULTS / "README.md").write_text(
        "# Benchmark results\n\nWritten by `make bench` (each `benchmarks/bench_*.py` writes its "
        "own JSON and markdown here).\n\n" + index("") + "\n",
        encoding="utf-8",
    )
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = f"{START}\n{index('benchmarks/results/')}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    readme.write_text(text, encoding="utf-8")
    print(f"README benchmark index updated from {RESULTS}")


if __name__ == "__main__":
    main()
