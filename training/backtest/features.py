"""Point-in-time features under a policy's own revealed results, built cheaply week by week.

A feature either depends on inspection results (counts, rates, shares and recency of results:
:data:`LABEL_AGGREGATIONS`) or not (the declaration itself, its value, credit, signals, earlier
declarations). The label-independent ones are the same under every policy and are built once,
for every declaration, with ``features.build.build_offline``. The label-dependent ones change
with what each policy has revealed; for a week they are computed by the same build code
(``features.build.build_partition``, the out-of-core build's entry point) with the week's
declarations as the rows to compute and the declarations whose results the policy knows at the
week's start as the *context* (events only: their keys carry the results), with exactly those
results as the inspections. A label-dependent feature of a declaration only reads results and
the keys of their declarations, so it comes out as the full build on the revealed results would
give it (``tests/training/backtest/test_features.py`` holds the two to equality). The other
columns of that build are not the full build's (the context holds only the revealed
declarations) and are not used.

The week's decisions are made at its start: a result counts for the week's declarations only
if it came back before the week began, so no decision of the week can depend on a result that a
decision of the same week revealed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.build import build_offline, build_partition
from features.partitioned import carried_from_frames
from features.registry import feature_specs

# Aggregations computed from inspection results (everything else reads declarations only).
LABEL_AGGREGATIONS = frozenset(
    {"insp_cnt", "nc_cnt", "ncmaj_cnt", "nc_rate_eb", "rand_share", "days_since_nc"}
)


def label_dependent(attributes: dict[str, str] | None = None) -> list[str]:
    """Names of the features (default key set) that read inspection results."""
    return [s.name for s in feature_specs(attributes) if s.aggregation in LABEL_AGGREGATIONS]


class FeatureSource:
    """Label-independent features of every declaration, and the week's label-dependent ones
    under a given set of revealed results.

    Parameters
    ----------
    tables
        Contract tables of the store.
    attributes, categories
        The store's model attributes and the code maps of the categorical features.
    history
        Inspection rows known to every policy (those of declarations declared before the
        backtest starts): the pre-start rows' features are built with them.
    """

    def __init__(
        self,
        tables: dict[str, pd.DataFrame],
        attributes: dict[str, str],
        categories: dict[str, list[str]],
        history: pd.DataFrame,
    ) -> None:
        self.attributes = attributes
        self.categories = categories
        self.declarations = tables["declarations"].reset_index(drop=True)
        self._ids = pd.Index(self.declarations["declaration_id"].astype("str"))
        # The week's build reads no signal, rating or enterprise (label-independent features):
        # empty tables of the store's own columns (else the build makes empty frames each time).
        self._unused: dict[str, pd.DataFrame] = {
            name: tables[name].iloc[:0]
            for name in ("risk_signals", "credit_ratings", "enterprises")
            if name in tables
        }
        base = build_offline(
            {**tables, "inspections": history}, attributes or None, categories=categories
        )
        self.names = [s.name for s in feature_specs(attributes or None)]
        self.matrix = base[self.names].to_numpy(dtype=np.float64, na_value=np.nan)
        del base
        label = set(label_dependent(attributes or None))
        self.label_index = np.array(
            [i for i, n in enumerate(self.names) if n in label], dtype=np.int64
        )
        self.label_names = [self.names[i] for i in self.label_index]

    def rows_of(self, declaration_ids: pd.Series) -> np.ndarray:
        """Row numbers of declaration ids (they must exist)."""
        rows = self._ids.get_indexer(pd.Index(declaration_ids.astype("str")))
        if (rows < 0).any():
            raise ValueError("inspections name declarations that are not in the store")
        return rows.astype(np.int64)

    def week(
        self, rows: np.ndarray, revealed: pd.DataFrame, event_rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Feature matrix of ``rows`` with the label-dependent features read from ``revealed``.

        Parameters
        ----------
        rows
            Declaration row numbers (the week's).
        revealed
            Contract ``inspections`` rows known at the week's start (nothing later may be in it:
            the engine filters by time), one per declaration.
        event_rows
            Row numbers of ``revealed``'s declarations, when the caller has them (else looked
            up by id).
        """
        X = self.matrix[rows].copy()
        if len(rows) == 0 or len(self.label_index) == 0:
            return X
        if event_rows is None:
            event_rows = self.rows_of(revealed["declaration_id"]) if len(revealed) else rows[:0]
        if np.isin(event_rows, rows).any():
            # A week's declaration cannot have a result before the week began.
            raise ValueError("a revealed result belongs to a declaration of the week")
        week = self.declarations.iloc[rows].reset_index(drop=True)
        carried = carried_from_frames(
            self.declarations.iloc[np.sort(event_rows)], week, revealed, self.attributes or None
        )
        tables: dict[str, pd.DataFrame] = {
            **self._unused,
            "declarations": week,
            "inspections": revealed.reset_index(drop=True),
        }
        built = build_partition(
            tables, carried, self.attributes or None, categories=self.categories
        )
        X[:, self.label_index] = built[self.label_names].to_numpy(dtype=np.float64, na_value=np.nan)
        return X
