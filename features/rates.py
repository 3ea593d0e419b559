"""Currency rate table: USD per unit of a currency, by date of validity.

A rate table is a CSV with columns ``currency, usd_per_unit, valid_from``. Several rows per
currency are allowed; the rate in force at time ``t`` is the row with the latest
``valid_from <= t`` (``valid_from`` is a date or ISO timestamp, read as UTC). A default table ships
in ``features/data/rates_usd.csv``; users pass their own with ``guomen ingest --rates FILE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_RATES_FILE = Path(__file__).parent / "data" / "rates_usd.csv"
_CODE = re.compile(r"^[A-Z]{3}$")


class RateTableError(ValueError):
    """The rate table itself is malformed (bad column, code, number or date)."""


@dataclass(frozen=True)
class RateTable:
    """Rates per currency, each sorted by ``valid_from``.

    Attributes
    ----------
    source : str
        Where the table was read from (shown in reports).
    by_currency : dict[str, tuple[np.ndarray, np.ndarray]]
        Currency -> (``valid_from`` as int64 ns since epoch UTC, sorted; USD per unit).
    """

    source: str
    by_currency: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def currencies(self) -> list[str]:
        return sorted(self.by_currency)

    def to_usd(
        self, values: np.ndarray, currencies: np.ndarray, at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Convert amounts to USD with the rate in force at each time.

        Parameters
        ----------
        values : np.ndarray
            float64 amounts.
        currencies : np.ndarray
            Currency codes (object array; missing entries are ignored).
        at : np.ndarray
            ``datetime64[ns]`` (UTC) times; NaT gives no rate.

        Returns
        -------
        usd : np.ndarray
            float64 amounts in USD (NaN where no rate applies).
        no_rate : np.ndarray
            bool mask: a currency was given but the table has no rate in force for it at ``at``.
        """
        n = len(values)
        usd = np.full(n, np.nan)
        has_rate = np.zeros(n, dtype=bool)
        at_ns = at.astype("datetime64[ns]").astype(np.int64)
        nat = np.isnat(at)
        cur = pd.Series(currencies, dtype="str")
        present = cur.notna().to_numpy()
        # One searchsorted per currency, never a loop per row.
        for code, idx in cur[present].groupby(cur[present], sort=False).indices.items():
            rows = np.flatnonzero(present)[idx]
            table = self.by_currency.get(str(code))
            if table is None:
                continue
            starts, rates = table
            pos = np.searchsorted(starts, at_ns[rows], side="right") - 1
            ok = (pos >= 0) & ~nat[rows]
            usd[rows[ok]] = values[rows[ok]] * rates[pos[ok]]
            has_rate[rows[ok]] = True
        return usd, present & ~has_rate & ~nat


def load_rates(path: Path | None = None) -> RateTable:
    """Read and check a rate table.

    Parameters
    ----------
    path : Path or None
        CSV with ``currency, usd_per_unit, valid_from``; ``None`` reads the default table.

    Returns
    -------
    RateTable

    Raises
    ------
    RateTableError
        On a missing column, a bad code, a non-positive rate or an unparseable date.
    """
    path = Path(path) if path is not None else DEFAULT_RATES_FILE
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RateTableError(f"rate table {path}: cannot read ({exc})") from exc
    df.columns = [c.strip().lstrip("\ufeff") for c in df.columns]
    for col in ("currency", "usd_per_unit", "valid_from"):
        if col not in df.columns:
            raise RateTableError(f"rate table {path}: missing column {col!r}")
    codes = df["currency"].str.strip()
    bad_code = ~codes.str.fullmatch(_CODE.pattern)
    if bad_code.any():
        raise RateTableError(
            f"rate table {path}: column 'currency' has a bad code {codes[bad_code].iloc[0]!r}"
        )
    rate = pd.to_numeric(df["usd_per_unit"].str.strip(), errors="coerce")
    if rate.isna().any() or (rate <= 0).any():
        raise RateTableError(f"rate table {path}: column 'usd_per_unit' must be a number > 0")
    start = pd.to_datetime(
        df["valid_from"].str.strip(), format="ISO8601", errors="coerce", utc=True
    )
    if start.isna().any():
        raise RateTableError(f"rate table {path}: column 'valid_from' has an unparseable date")
    frame = pd.DataFrame(
        {
            "currency": codes,
            "rate": rate.astype("float64"),
            "start": start.astype("datetime64[ns, UTC]"),
        }
    ).sort_values(["currency", "start"], kind="stable")
    if frame.duplicated(["currency", "start"]).any():
        raise RateTableError(f"rate table {path}: two rates for one currency and valid_from")
    by_currency: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for code, part in frame.groupby("currency", sort=True):
        starts = (
            part["start"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
        )
        by_currency[str(code)] = (starts, part["rate"].to_numpy())
    return RateTable(source=str(path), by_currency=by_currency)
