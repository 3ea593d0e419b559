"""Time split of declarations into train, validation and test (never random).

Test is the last ``test_months`` calendar months of declarations (the month of the last
declaration counts as one), validation the ``validation_months`` before it, train everything
earlier. A label is used only if it was known before the next segment starts
(``inspected_at < boundary``): a model trained at ``validation_start`` could not have seen a
result that arrived later.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

TRAIN, VALIDATION, TEST = "train", "validation", "test"


@dataclass(frozen=True)
class TimeSplit:
    """Boundaries of a time split (UTC timestamps; intervals are half-open ``[start, end)``)."""

    start: pd.Timestamp
    validation_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp  # exclusive: just after the last declaration

    def segment(self, declared_at: pd.Series) -> np.ndarray:
        """Segment name (``train``, ``validation``, ``test``) for each timestamp."""
        ts = _utc(declared_at)
        out = np.full(len(ts), TRAIN, dtype=object)
        out[np.asarray(ts >= self.validation_start)] = VALIDATION
        out[np.asarray(ts >= self.test_start)] = TEST
        return out

    def label_known(self, segment: np.ndarray, inspected_at: pd.Series) -> np.ndarray:
        """Whether each row's result was known before its segment's successor began.

        Test rows keep every result: evaluation happens after the fact.
        """
        ts = _utc(inspected_at)
        known = np.ones(len(segment), dtype=bool)
        tr = segment == TRAIN
        va = segment == VALIDATION
        known[tr] = np.asarray(ts[tr] < self.validation_start)
        known[va] = np.asarray(ts[va] < self.test_start)
        # NaT (not inspected) compares False; those rows carry no label anyway.
        return known

    def as_dict(self) -> dict[str, str]:
        """ISO boundaries, for bundles and MLflow params."""
        return {
            "train_start": self.start.isoformat(),
            "validation_start": self.validation_start.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.end.isoformat(),
        }


def _utc(values: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(values)
    return idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")


def time_split(
    declared_at: pd.Series, test_months: int = 4, validation_months: int = 3
) -> TimeSplit:
    """Compute calendar-month boundaries from the declaration timestamps.

    Parameters
    ----------
    declared_at
        Declaration timestamps (tz-aware or UTC-naive).
    test_months, validation_months
        Lengths of the last two segments in calendar months.

    Returns
    -------
    TimeSplit
        Boundaries; raises ``ValueError`` if the train segment would be empty.
    """
    ts = _utc(declared_at)
    if len(ts) == 0:
        raise ValueError("no declarations to split")
    first, last = ts.min(), ts.max()
    last_month = last.tz_convert(None).to_period("M").to_timestamp().tz_localize("UTC")
    test_start = last_month - pd.DateOffset(months=test_months - 1)
    validation_start = test_start - pd.DateOffset(months=validation_months)
    if first >= validation_start:
        raise ValueError(
            f"data from {first.date()} to {last.date()} is too short for "
            f"{validation_months}+{test_months} months of validation and test"
        )
    return TimeSplit(
        start=first,
        validation_start=pd.Timestamp(validation_start),
        test_start=pd.Timestamp(test_start),
        end=last + pd.Timedelta(1, "ns"),
    )
