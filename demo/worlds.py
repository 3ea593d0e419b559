"""Worlds the features were not designed for: where the demo generators plant their risk.

``default`` is the world ``demo/generate.py`` and ``demo/foreign.py`` have always made. Every
other world moves (part of) the risk to another grain, so a benchmark can ask whether the model
finds risk wherever it lives (issue 12) and whether warnings fire on every world (issue 17).

The parameters and the benchmark seeds below are fixed: they were set before anyone tuned a
feature or a warning rule on them (issue 17: "fix the variants and their seeds first, tune on some,
report on all"). Tune on ``TUNING_WORLDS``; report on all. Changing a number here invalidates every
result quoted on these worlds.

A world's mechanism never shows in a column or feature name: the planted grain is only visible
through outcomes (inspection results and reports), as in real data. The ground truth (which no
pipeline reads) records each row's planted log-odds as ``logit_<component>``.

World-specific random draws come from their own generator, seeded by ``(seed, WORLD_STREAM)``, so
the trade (calendar, enterprises, products, parties) of every world is the same for the same seed
and the default world's files stay byte-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class World:
    """One generator variant.

    Attributes
    ----------
    name : str
        The flag value (``guomen demo-data --world NAME``).
    planted : str
        The grain that carries the planted risk, in words.
    demo_component : str | None
        Name of the extra ``logit_*`` component in the demo ground truth (None: no extra one).
    flat_component : str | None
        The same for the flat foreign layout.
    """

    name: str
    planted: str
    demo_component: str | None
    flat_component: str | None


WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        World(
            "default",
            "today's world: enterprise, HS4 x origin, party, value, outbreaks",
            None,
            None,
        ),  # fmt: skip
        World(
            "hs6_origin",
            "finest product code x origin (demo: the 8-digit national line, since the demo "
            "catalogue has about one HS6 per HS4; flat: HS6 with sibling subheadings) replaces "
            "HS4 x origin",
            "hs6_origin",
            "hs6_origin",
        ),
        World("declarant", "the declarant (customs broker)", "declarant", "declarant"),
        World(
            "overseas_hs4",
            "overseas party x HS4 replaces the party's own quality",
            "overseas_hs4",
            "overseas_hs4",
        ),
        World("port_chapter", "port x HS chapter (HS2)", "port_chapter", "port_chapter"),
        World(
            "attribute",
            "a categorical column outside the contract, declared as a model attribute by the "
            "mapping (demo: package_type; flat: Import Use)",
            "attribute",
            "attribute",
        ),
        World(
            "weak_enterprise",
            "the enterprise effect (importer and seller in the flat layout) is a quarter of "
            "today's",
            None,
            None,
        ),
    )
}
WORLD_NAMES: tuple[str, ...] = tuple(WORLDS)
# Tune on these, report on all (issue 17).
TUNING_WORLDS: tuple[str, ...] = ("hs6_origin", "declarant")
# Seeds the benchmarks use, one per world (demo layout; flat layout = seed + 100).
BENCHMARK_SEEDS: dict[str, int] = {
    "default": 7,
    "hs6_origin": 101,
    "declarant": 102,
    "overseas_hs4": 103,
    "port_chapter": 104,
    "attribute": 105,
    "weak_enterprise": 106,
}
FLAT_SEED_OFFSET = 100
# Report intensities of issue 17 (multiplier of every risk-signal channel's rate).
SIGNAL_INTENSITIES: tuple[float, ...] = (0.5, 1.0, 2.0)
WORLD_STREAM = 1_000_003  # second seed word of the world's own generator

# ---------------------------------------------------------------------------------------------
# Fixed parameters (log-odds). "hot" cells: a share of the cells gets an extra uniform lift.
# ---------------------------------------------------------------------------------------------
# demo layout
HS6_ORIGIN = {"sd": 0.4, "hot_share": 0.10, "hot_low": 1.2, "hot_high": 2.2}
DECLARANT = {"sd": 0.5, "hot_share": 0.12, "hot_low": 1.2, "hot_high": 2.0}
OVERSEAS_HS4 = {"sd": 0.4, "hot_share": 0.10, "hot_low": 1.2, "hot_high": 2.2}
PORT_CHAPTER = {"sd": 0.4, "hot_share": 0.10, "hot_low": 1.0, "hot_high": 2.0}
WEAK_ENTERPRISE_SCALE = 0.25
# UN/ECE Recommendation 21 package codes: carton, package, bag, box, case, drum, pallet, bale,
# crate, barrel. Two codes are risky (log-odds lift), the rest small N(0, sd) effects.
PACKAGE_TYPES: tuple[str, ...] = ("CT", "PK", "BG", "BX", "CS", "DR", "PL", "BL", "CR", "BA")
ATTRIBUTE_SD = 0.25
ATTRIBUTE_RISKY: tuple[float, ...] = (1.4, 0.9)  # lifts of the two risky codes
ATTRIBUTE_HABIT_SHARE = 0.6  # share of an enterprise's declarations in its habitual package
ATTRIBUTE_COLUMN = "package_type"  # a neutral name, as a customs export would call it

# flat layout
FLAT_HS6_ORIGIN = {"sd": 0.35, "hot_share": 0.08, "hot_low": 1.2, "hot_high": 2.4}
FLAT_DECLARANT = {"sd": 0.6, "hot_share": 0.12, "hot_low": 1.2, "hot_high": 2.0}
FLAT_OVERSEAS_HS4 = {"sd": 0.4, "hot_share": 0.08, "hot_low": 1.2, "hot_high": 2.2}
FLAT_PORT_CHAPTER = {"sd": 0.4, "hot_share": 0.10, "hot_low": 1.0, "hot_high": 2.0}
# Import Use codes (the flat layout's existing column): log-odds lift by code.
FLAT_IMPORT_USE_EFFECT = {"11": 0.0, "12": 0.8, "21": -0.2, "22": 1.4, "29": 0.1}
# Sibling HS6 subheadings per HS4 in the flat hs6_origin world (last two digits).
FLAT_HS6_SIBLINGS = ("10", "20", "90")


def check_world(name: str) -> World:
    """The world called ``name``; ``ValueError`` listing the known names otherwise."""
    if name not in WORLDS:
        raise ValueError(f"unknown world {name!r}; choose one of {', '.join(WORLD_NAMES)}")
    return WORLDS[name]


def check_intensity(value: float) -> float:
    """A positive finite report-intensity multiplier."""
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"signal intensity must be a positive number, got {value!r}")
    return v


def world_rng(seed: int, name: str) -> np.random.Generator:
    """The world's own random generator (independent of the trade's)."""
    return np.random.default_rng([int(seed), WORLD_STREAM, WORLD_NAMES.index(name)])


def hot_effects(
    rng: np.random.Generator, shape: tuple[int, ...], p: dict[str, float]
) -> np.ndarray:
    """Cell effects: N(0, sd) everywhere plus U(hot_low, hot_high) on a ``hot_share`` of cells."""
    base = rng.normal(0.0, p["sd"], shape)
    hot = rng.random(shape) < p["hot_share"]
    return base + np.where(hot, rng.uniform(p["hot_low"], p["hot_high"], shape), 0.0)
