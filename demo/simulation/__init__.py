"""The demo simulation, by step (``demo.generate.write_demo_data`` runs it and writes the files).

:class:`Simulation` is one state (:mod:`demo.simulation.state`) and the steps over it, run in
the order of :data:`STEPS`:

- :mod:`demo.simulation.world`: calendar, enterprises, overseas parties;
- :mod:`demo.simulation.declarations`: declarations, goods and values, credit ratings, hidden
  risk (the planted world and outbreaks);
- :mod:`demo.simulation.signals`: risk signals;
- :mod:`demo.simulation.inspections`: inspections;
- :mod:`demo.simulation.tables`: contract tables and the ground truth.

Every draw comes from the one generator seeded once (and the world's own), in this order, so
the same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from demo import catalog as cat
from demo import worlds as wd
from demo.simulation.declarations import DeclarationSteps
from demo.simulation.inspections import InspectionSteps
from demo.simulation.signals import SignalSteps
from demo.simulation.tables import TableSteps
from demo.simulation.world import WorldSteps

#: (progress label, method name) of every step before the tables are built, in draw order.
STEPS: tuple[tuple[str, str], ...] = (
    ("calendar", "calendar"),
    ("enterprises", "enterprises"),
    ("overseas parties", "overseas"),
    ("declarations", "declarations"),
    ("goods and values", "goods"),
    ("credit ratings", "credit"),
    ("hidden risk", "risk"),
    ("risk signals", "signals"),
    ("inspections", "inspections"),
)


class Simulation(WorldSteps, DeclarationSteps, SignalSteps, InspectionSteps, TableSteps):
    """Three years of demo trade with a hidden ground truth (``docs/demo-data.md``)."""

    def __init__(self, n: int, seed: int, world: str = "default", intensity: float = 1.0) -> None:
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.world = wd.check_world(world).name
        # The world's own draws come from a separate generator so the trade stays the same.
        self.wrng = wd.world_rng(seed, self.world)
        self.k = wd.check_intensity(intensity)  # multiplier of every risk-signal rate
        self.suffix = None  # 8-digit line, drawn early by hs6_origin
        self.package = None  # the attribute world's extra column
        self.sectors = list(cat.SECTORS.values())
        self.sector_index = {s.name: i for i, s in enumerate(self.sectors)}
        self.products = cat.PRODUCTS
        self.countries = sorted(
            {c for s in self.sectors for c in s.origins}
            | set(cat.EXPORT_DESTINATIONS)
            | {c for o in cat.PRODUCT_ORIGINS.values() for c in o}
            | {"CN"}
        )
        self.cidx = {c: i for i, c in enumerate(self.countries)}
        self.ports = cat.PORTS
        self.port_index = {p[0]: i for i, p in enumerate(self.ports)}
        self.hs4s = sorted({p.hs6[:4] for p in self.products})
        self.hs4_index = {h: i for i, h in enumerate(self.hs4s)}
        self.tables = {}
        self.truth = None
        self.outbreaks = []
