"""What the simulation knows, step by step: the arrays every step reads and writes.

Each step (``world``, ``declarations``, ``signals``, ``inspections``, ``tables``) is a class over
this one state, so a step reads the arrays of the steps before it by name. One row per
declaration unless the name says otherwise (``e_*`` enterprises, ``b_*`` declarants/brokers,
``o_*`` overseas parties, ``insp_*`` inspections, ``c_*`` credit-rating rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa


class SimState:
    """The attributes of :class:`demo.simulation.Simulation` (declared here for the type checker)."""

    # set by the constructor (`Simulation.__init__`)
    n: int
    rng: np.random.Generator
    world: str
    wrng: np.random.Generator
    k: float
    suffix: np.ndarray | None
    package: np.ndarray | None
    sectors: list[Any]
    sector_index: dict[str, int]
    products: tuple[Any, ...]
    countries: list[str]
    cidx: dict[str, int]
    ports: tuple[Any, ...]
    port_index: dict[str, int]
    hs4s: list[str]
    hs4_index: dict[str, int]
    tables: dict[str, pa.Table]
    truth: pa.Table | None
    outbreaks: list[dict[str, object]]

    # set by the world.py: calendar, enterprises, overseas parties
    t: np.ndarray
    day: np.ndarray
    ne: int
    e_type: np.ndarray
    e_platform: np.ndarray
    e_sector: np.ndarray
    e_import_p: np.ndarray
    e_home: np.ndarray
    e_region: np.ndarray
    e_weight: np.ndarray
    e_entry: np.ndarray
    e_registered: np.ndarray
    e_q0: np.ndarray
    e_delta: np.ndarray
    e_tc: np.ndarray
    e_manip: np.ndarray
    e_scale: np.ndarray
    e_pref_u: np.ndarray
    e_cert_bias: np.ndarray
    e_k: np.ndarray
    e_portfolio: np.ndarray
    nb: int
    b_weight: np.ndarray
    b_region: np.ndarray
    e_broker: np.ndarray
    group_lookup: np.ndarray
    o_group: np.ndarray
    o_country: np.ndarray
    no: int
    o_weight: np.ndarray
    o_q: np.ndarray
    o_supplier: np.ndarray
    hxo: np.ndarray

    # set by the declarations.py: declarations, goods, credit, hidden risk
    ent: np.ndarray
    is_import: np.ndarray
    prod: np.ndarray
    sector: np.ndarray
    origin: np.ndarray
    dest: np.ndarray
    party: np.ndarray
    has_party: np.ndarray
    mode: np.ndarray
    cbec: np.ndarray
    port: np.ndarray
    transport: np.ndarray
    broker: np.ndarray
    has_broker: np.ndarray
    weight: np.ndarray
    quantity: np.ndarray
    log_uv_ratio: np.ndarray
    currency: np.ndarray
    value: np.ndarray
    legal: np.ndarray
    food: np.ndarray
    cert: np.ndarray
    c_ent: np.ndarray
    c_t: np.ndarray
    c_rating: np.ndarray
    rating: np.ndarray
    hs4: np.ndarray
    comp: dict[str, np.ndarray]
    logit: np.ndarray
    p: np.ndarray
    ob_share: np.ndarray
    ob_id: np.ndarray
    p_crit_given_nc: np.ndarray
    p_crit: np.ndarray
    outbreak_defs: list[dict[str, Any]]

    # set by the signals.py
    sig: dict[str, Any]
    sig_sources: list[Any]
    hs_dict: list[Any]

    # set by the inspections.py
    legacy: np.ndarray
    sel: np.ndarray
    insp_idx: np.ndarray
    insp_t: np.ndarray
    insp_nc: np.ndarray
    insp_sev: np.ndarray
    insp_haz: np.ndarray
    insp_disp: np.ndarray
    insp_sel: np.ndarray
