"""The universe of outcomes a backtest replays: what inspecting each declaration would have found,
and when the result would have come back.

Three kinds, chosen from what the data can tell (:func:`build_universe`):

``truth``
    The demo's ground truth (``declaration_truth.parquet``) gives every declaration its true
    nonconformity probability. Found nonconformities are *expected* counts (``p_true`` summed
    over the selected, ``critical_p_true`` for critical ones). What a policy *learns* from a
    selection is the recorded result when the declaration was inspected in the store (the
    generator drew it from ``p_true``), else one seeded draw from ``p_true``, returned after a
    lag drawn from the recorded lags of results of the same kind.
``all_inspected``
    Every declaration of the backtest period has a recorded result (a flat export of inspected
    rows): found nonconformities are the recorded results, revealed at their recorded time.
``inspected_only``
    An ordinary store: only inspected declarations have a result. Policies choose among the
    inspected declarations only (the budget is a share of them), so the comparison is restricted
    to rows the past targeting chose; the report says so.

Nothing here is handed to a policy: the engine reveals single outcomes of selected declarations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.build import final_inspections
from features.windows import to_ns

Mode = Literal["truth", "all_inspected", "inspected_only"]
DAY_NS = 86_400 * 1_000_000_000
# A period counts as "every declaration inspected" from this share up.
ALL_INSPECTED_SHARE = 0.99

MODE_NOTES: dict[str, str] = {
    "truth": (
        "Outcomes are the demo's ground truth: nonconformities found are expected counts "
        "(the true probabilities of the selected declarations summed), and every declaration "
        "could have been selected."
    ),
    "all_inspected": (
        "Every declaration of the period was inspected in the data: nonconformities found are "
        "the recorded results of the selected declarations, and every declaration could have "
        "been selected."
    ),
    "inspected_only": (
        "RESTRICTED COMPARISON: this store records results only for the declarations the past "
        "targeting inspected. Every policy chooses among those inspected declarations only (its "
        "budget is a share of them), so the figures compare policies on rows that were already "
        "chosen once, not on all trade; what none of them could see is not counted."
    ),
}


@dataclass
class Universe:
    """Outcomes of every declaration (rows in the declarations table's order)."""

    mode: Mode
    eligible: np.ndarray  # bool: can be selected (inspected_only: has a recorded result)
    nonconforming: np.ndarray  # bool: the outcome a selection reveals
    critical: np.ndarray  # bool: that outcome is a critical nonconformity
    expected_nc: np.ndarray  # float: what a selection finds (p_true, or the revealed 0/1)
    expected_critical: np.ndarray  # float
    reveal_ns: np.ndarray  # int64: when the result comes back (UTC ns)
    severity: np.ndarray  # object: minor / major / critical ("" when conforming)
    hazard_type: np.ndarray  # object ("" when conforming)
    held_aside: np.ndarray  # bool: the evaluator's random sample (never shown to policies)
    recorded: np.ndarray  # bool: the store has an inspection result for the row

    @property
    def note(self) -> str:
        """What the comparison covers, in one paragraph for the report."""
        return MODE_NOTES[self.mode]

    def inspection_rows(
        self, rows: np.ndarray, random: np.ndarray, ids: np.ndarray
    ) -> pd.DataFrame:
        """Contract ``inspections`` rows of the results that ``rows`` reveal.

        Parameters
        ----------
        rows
            Declaration row numbers.
        random
            Whether each was drawn at random (``selection`` = ``random``) or targeted.
        ids
            Declaration ids of all rows.
        """
        nc = self.nonconforming[rows]
        return pd.DataFrame(
            {
                "declaration_id": pd.Series(ids[rows], dtype="str"),
                "inspected_at": pd.to_datetime(self.reveal_ns[rows], utc=True),
                "selection": pd.Series(np.where(random, "random", "targeted"), dtype="str"),
                "result": pd.Series(np.where(nc, "nonconforming", "conforming"), dtype="str"),
                "hazard_type": pd.Series(np.where(nc, self.hazard_type[rows], None), dtype="str"),
                "severity": pd.Series(np.where(nc, self.severity[rows], None), dtype="str"),
            }
        )


def _recorded(decl: pd.DataFrame, inspections: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Row number of every final recorded inspection, and those inspections."""
    insp = final_inspections(inspections)
    row = pd.Index(decl["declaration_id"].astype("str")).get_indexer(
        pd.Index(insp["declaration_id"].astype("str"))
    )
    keep = row >= 0
    return row[keep].astype(np.int64), insp[keep].reset_index(drop=True)


def _lag_sampler(
    lags: np.ndarray, kinds: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Lags (ns) of the recorded results, conforming (kind False) and nonconforming (True)."""
    out = []
    for kind in (False, True):
        pool = lags[kinds == kind]
        if len(pool) == 0:
            pool = lags if len(lags) else np.array([DAY_NS], dtype=np.int64)
        out.append(np.sort(pool))
    return out[0], out[1]


def build_universe(
    tables: dict[str, pd.DataFrame],
    start_ns: int,
    end_ns: int,
    seed: int,
    truth: pd.DataFrame | None = None,
    held_aside_share: float = 0.10,
) -> Universe:
    """Outcomes of every declaration, and the kind of universe the data allows.

    Parameters
    ----------
    tables
        Contract tables of the store.
    start_ns, end_ns
        The backtest period (UTC ns, half-open): the share of inspected declarations in it
        decides between ``all_inspected`` and ``inspected_only`` when there is no truth.
    seed
        Seed of the draws (outcomes and lags of never-inspected declarations, the held-aside
        sample).
    truth
        ``declaration_id, p_true, critical_p_true`` (the demo's ground truth), or None.
    held_aside_share
        Share of declarations in the evaluator's random sample (``truth`` and
        ``all_inspected``); an ordinary store uses its recorded random-selection rows.
    """
    decl = tables["declarations"].reset_index(drop=True)
    n = len(decl)
    t = to_ns(decl["declared_at"])
    rows, insp = _recorded(decl, tables["inspections"])
    recorded = np.zeros(n, dtype=bool)
    recorded[rows] = True
    nc = np.zeros(n, dtype=bool)
    nc[rows] = (insp["result"] == "nonconforming").fillna(False).to_numpy(dtype=bool)
    sev = np.full(n, "", dtype=object)
    haz = np.full(n, "", dtype=object)
    sev[rows] = insp["severity"].astype("str").fillna("").to_numpy(dtype=object)
    haz[rows] = insp["hazard_type"].astype("str").fillna("").to_numpy(dtype=object)
    reveal = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    reveal[rows] = to_ns(insp["inspected_at"])
    random_recorded = np.zeros(n, dtype=bool)
    random_recorded[rows] = (insp["selection"] == "random").fillna(False).to_numpy(dtype=bool)
    rng = np.random.default_rng([seed, 0x0B5E])
    held_draw = np.random.default_rng([seed, 0x4E1D]).random(n)
    period = (t >= start_ns) & (t < end_ns)

    if truth is not None:
        aligned = (
            decl[["declaration_id"]]
            .astype("str")
            .merge(
                truth.assign(declaration_id=truth["declaration_id"].astype("str")),
                on="declaration_id",
                how="left",
            )
        )
        if aligned["p_true"].isna().any():
            raise ValueError("the ground truth lacks some declarations of the store")
        p = aligned["p_true"].to_numpy(dtype=np.float64)
        pc = aligned["critical_p_true"].to_numpy(dtype=np.float64)
        draw_nc = rng.random(n) < p
        crit_given = np.divide(pc, p, out=np.zeros(n), where=p > 0)
        draw_crit = draw_nc & (rng.random(n) < crit_given)
        draw_major = rng.random(n) < 0.35
        lag_ok, lag_bad = _lag_sampler(reveal[rows] - t[rows], nc[rows], rng)
        pick = rng.random(n)
        drawn_lag = np.where(
            draw_nc,
            lag_bad[np.minimum((pick * len(lag_bad)).astype(np.int64), len(lag_bad) - 1)],
            lag_ok[np.minimum((pick * len(lag_ok)).astype(np.int64), len(lag_ok) - 1)],
        )
        fresh = ~recorded
        nc = np.where(fresh, draw_nc, nc)
        reveal = np.where(fresh, t + drawn_lag, reveal)
        sev = np.where(
            fresh & nc,
            np.where(draw_crit, "critical", np.where(draw_major, "major", "minor")),
            np.where(fresh, "", sev),
        ).astype(object)
        haz = np.where(fresh & nc, _usual_hazard(decl, rows, insp), np.where(fresh, "", haz))
        crit = nc & (sev == "critical")
        return Universe(
            mode="truth",
            eligible=np.ones(n, dtype=bool),
            nonconforming=nc,
            critical=crit,
            expected_nc=p,
            expected_critical=pc,
            reveal_ns=reveal,
            severity=sev,
            hazard_type=haz.astype(object),
            held_aside=held_draw < held_aside_share,
            recorded=recorded,
        )

    crit = nc & (sev == "critical")
    in_period = int(period.sum())
    share = float(recorded[period].sum()) / in_period if in_period else 0.0
    all_inspected = share >= ALL_INSPECTED_SHARE
    mode: Mode = "all_inspected" if all_inspected else "inspected_only"
    held = held_draw < held_aside_share if all_inspected else random_recorded
    return Universe(
        mode=mode,
        eligible=recorded.copy(),
        nonconforming=nc,
        critical=crit,
        expected_nc=nc.astype(np.float64),
        expected_critical=crit.astype(np.float64),
        reveal_ns=reveal,
        severity=sev,
        hazard_type=haz,
        held_aside=held & recorded,
        recorded=recorded,
    )


def _usual_hazard(decl: pd.DataFrame, rows: np.ndarray, insp: pd.DataFrame) -> np.ndarray:
    """Per declaration, the most frequent recorded hazard of its HS4's nonconformities (else the
    most frequent overall, else ``other``): what a drawn nonconformity is recorded as."""
    hs4 = decl["hs_code"].astype("str").str.slice(0, 4).fillna("").to_numpy(dtype=object)
    bad = (insp["result"] == "nonconforming").fillna(False).to_numpy(dtype=bool)
    frame = pd.DataFrame(
        {"hs4": hs4[rows][bad], "hazard": insp["hazard_type"].astype("str").to_numpy()[bad]}
    ).dropna()
    overall = frame["hazard"].mode().iloc[0] if len(frame) else "other"
    by_hs4 = frame.groupby("hs4")["hazard"].agg(lambda s: s.mode().iloc[0]) if len(frame) else None
    if by_hs4 is None:
        return np.full(len(decl), overall, dtype=object)
    return pd.Series(hs4).map(by_hs4).fillna(overall).to_numpy(dtype=object)
