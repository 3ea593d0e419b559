"""How a risk signal names the subjects it is about.

A signal (contract table ``risk_signals``) is about a subject when its own fields give that
subject's key (:data:`.subjects.SUBJECT_COLUMNS`): its ``hs_code`` prefix for an HS4 (a code of
fewer than four digits names no HS4), its ``origin_country``, its ``enterprise_id`` or its
``overseas_party_id``; HS4 x origin needs both. A signal without a field names no subject of
that kind. This is the one place the rule lives: the assessment counts signals per subject
through :func:`signal_keys` only.
"""

from __future__ import annotations

import pandas as pd

from policy.warnings.subjects import SUBJECT_COLUMNS

# signal severities that count as serious evidence
SERIOUS_SIGNAL_SEVERITIES = ("high", "serious")


def _signal_column(signals: pd.DataFrame, name: str) -> pd.Series:
    if name == "hs4":
        hs = signals["hs_code"].astype("str")
        return hs.where(hs.str.len() >= 4).str.slice(0, 4)
    return signals[name].astype("str")


def signal_keys(signals: pd.DataFrame, kind: str) -> pd.Series:
    """The subject key of each signal for a kind (NA where the signal names none)."""
    cols = [_signal_column(signals, c) for c in SUBJECT_COLUMNS[kind]]
    keys = cols[0]
    for c in cols[1:]:
        keys = keys + "/" + c
    if len(cols) > 1:
        # a missing part turned into text by astype("str") names no subject
        keys = keys.where(~keys.str.contains("<NA>|nan", regex=True).fillna(True))
    return keys
