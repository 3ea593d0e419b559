"""How a risk signal names the subjects it is about, and with what weight.

A signal (contract table ``risk_signals``) is about a subject when its own fields give that
subject's key (:data:`.subjects.SUBJECT_COLUMNS`): its ``origin_country``, its ``enterprise_id``
or its ``overseas_party_id``, and for products its HS codes. HS4 x origin needs both. This is the
one place the rule lives: the assessment counts signals per subject through
:func:`signal_matches` only.

Products. A signal's HS codes are its ``hs_codes`` set (``;``-joined, written by a feed mapping,
``features.products``) or else its ``hs_code``. Codes of four digits or more name HS4 subjects;
a signal naming several HS4 (a category that maps to a set, "beef" to 0201 and 0202) counts for
each of them with its weight split evenly, so that one notification is never counted as several.
A code of two or three digits names a chapter only: it names no HS4, but the chapter subject
(``hs_chapter``), as do the chapters of its HS4 codes, again with the weight split among the
chapters it names. Every other field names one subject with weight 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from policy.warnings.subjects import HS_PREFIX_DIGITS, SUBJECT_COLUMNS

# signal severities that count as serious evidence
SERIOUS_SIGNAL_SEVERITIES = ("high", "serious")


def signal_codes(signals: pd.DataFrame) -> pd.Series:
    """Each signal's HS codes as one ``;``-joined string (``hs_codes``, else ``hs_code``)."""
    code = signals["hs_code"] if "hs_code" in signals else pd.Series(pd.NA, index=signals.index)
    codes = signals["hs_codes"] if "hs_codes" in signals else pd.Series(pd.NA, index=signals.index)
    out = codes.astype("object").where(codes.notna(), code.astype("object"))
    return out.where(out.notna() & (out.astype("str") != ""))


def _products(signals: pd.DataFrame, digits: int) -> pd.DataFrame:
    """(row position, product key, weight): the HS4 or chapters each signal names."""
    codes = signal_codes(signals).reset_index(drop=True)
    long = codes.dropna().astype("str").str.split(";").explode().str.strip()
    long = long[long.str.fullmatch(r"\d+").fillna(False) & (long.str.len() >= digits)]
    frame = pd.DataFrame({"pos": long.index.to_numpy(), "key": long.str.slice(0, digits)})
    frame = frame.drop_duplicates()
    frame["weight"] = 1.0 / frame.groupby("pos")["key"].transform("size").astype("float64")
    return frame


def signal_matches(signals: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The signals of ``signals`` that name a subject of ``kind``, one row per (signal, subject).

    Returns
    -------
    pd.DataFrame
        The signal's columns plus ``key`` (the subject's key string) and ``weight`` (its share
        of the signal: 1, or 1/n when it names n products).
    """
    cols = SUBJECT_COLUMNS[kind]
    base = signals.reset_index(drop=True)
    parts: pd.DataFrame | None = None
    for name in cols:
        if name in HS_PREFIX_DIGITS:
            part = _products(base, HS_PREFIX_DIGITS[name])
        else:
            values = base[name] if name in base else pd.Series(pd.NA, index=base.index)
            ok = values.notna().to_numpy(bool)
            part = pd.DataFrame(
                {
                    "pos": np.flatnonzero(ok),
                    "key": values[ok].astype("str").to_numpy(),
                    "weight": 1.0,
                }
            )
        if parts is None:
            parts = part
        else:
            # both parts must be named; keys joined with "/" and the weights multiplied
            parts = parts.merge(part, on="pos", suffixes=("", "_b"))
            parts["key"] = parts["key"] + "/" + parts["key_b"]
            parts["weight"] = parts["weight"] * parts["weight_b"]
            parts = parts.drop(columns=["key_b", "weight_b"])
    assert parts is not None
    out = base.iloc[parts["pos"].to_numpy()].reset_index(drop=True)
    out["key"] = parts["key"].to_numpy()
    out["weight"] = parts["weight"].to_numpy(dtype="float64")
    return out


def report_voices(signals: pd.DataFrame, case_channels: list[str]) -> pd.Series:
    """Who is speaking in each report: two reports are independent when their voices differ.

    A report repeated by the agency or outlet that issued it is one voice: the voice of a
    report is its ``channel`` and ``source`` (a RASFF notification passed on twice, two Weibo
    posts, one brand owner's reports). Reports of the ``case_channels`` are filed one case at a
    time by different people (12315 consumer complaints, injury and foodborne-illness case
    reports): each is its own voice even when they share a channel and source, so its
    ``signal_id`` is part of its voice. Contract v1.1 has no reporter id; a complainant who
    files twice therefore counts twice (docs/warnings.md, "Independent reports").

    Parameters
    ----------
    signals
        Rows of ``risk_signals`` (with ``channel``; ``source`` and ``signal_id`` optional).
    case_channels
        Channels whose every report is a separate case.
    """
    channel = signals["channel"].astype("str")
    blank = pd.Series("", index=signals.index)
    source = signals["source"].astype("str").fillna("") if "source" in signals else blank
    case_id = signals["signal_id"].astype("str") if "signal_id" in signals else blank
    per_case = channel.isin(case_channels).to_numpy(bool)
    return channel + "|" + source + "|" + case_id.where(per_case, "")
