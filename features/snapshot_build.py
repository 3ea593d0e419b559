"""Building a snapshot from the contract tables: the vectorised pass over the history.

:func:`build_snapshot_tables` computes, from events strictly before ``as_of``, the tables a
:class:`features.snapshot.Snapshot` is made of (``features.snapshot_format.SnapshotTables``):
per history key the event series (``features.snapshot_state``), risk signals of the last 365
days (+ grace) keyed per subject pattern, the credit history, enterprise attributes, HS6 unit
values, behaviour running sums and the declarations still waiting for a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import (
    behaviour_terms,
    declaration_flag,
    declared_value_usd,
    final_inspections,
    hs6_unit_value_features,
    inspection_flags,
    signal_categories,
    signal_patterns,
    unit_value_log,
)
from features.entities import KEY_FIELDS, KEY_SEP, EntityCoder, entities_for, frame_fields
from features.registry import (
    CREDIT_TIER_CODES,
    FEATURE_SET_VERSION,
    LONGEST_WINDOW_NS,
    SIGNAL_ROUTES,
    VOCABULARIES,
    entity_aggregations,
    resolve_entities,
)
from features.snapshot_format import SnapshotTables
from features.snapshot_state import (
    GLOBAL,
    GRACE_NS,
    KINDS,
    NONE_T,
    SNAPSHOT_FORMAT,
    BehaviourTable,
    EntityTable,
    _behaviour_table,
    _entity_table,
    _ns_of,
    behaviour_entities,
)
from features.windows import month_start_ns, to_ns


def build_snapshot_tables(
    tables: dict[str, pd.DataFrame],
    as_of: Any,
    attributes: dict[str, str] | None = None,
    entities: tuple[str, ...] | list[str] | None = None,
) -> SnapshotTables:
    """The state of every entity from events strictly before ``as_of``, as tables.

    Parameters
    ----------
    tables
        Contract tables in canonical dtypes.
    as_of
        Aware datetime, ISO string or pandas Timestamp.
    attributes
        Extra declaration attributes (as for ``build_offline``).
    entities
        History keys to keep (the union of the served bundles' ``entities``); None: the
        registry's default set. Parents needed for smoothing are added.

    Returns
    -------
    SnapshotTables
        What ``Snapshot.from_tables`` is made of (``Snapshot.build`` calls this).
    """
    attributes = dict(attributes or {})
    chosen = None if entities is None else list(resolve_entities(entities, attributes))
    as_of_ns = _ns_of(as_of)
    cutoff = as_of_ns - GRACE_NS - LONGEST_WINDOW_NS
    base_month = int(month_start_ns(np.array([as_of_ns - GRACE_NS], dtype=np.int64))[0])

    all_decl = tables["declarations"].reset_index(drop=True)
    dt = to_ns(all_decl["declared_at"])
    decl = all_decl[dt < as_of_ns].reset_index(drop=True)
    t = dt[dt < as_of_ns]
    fields = frame_fields(decl, attributes)
    coder = EntityCoder(fields)
    defs = entities_for(attributes, chosen)

    insp_all = tables.get("inspections")
    if insp_all is None or insp_all.empty:
        insp = pd.DataFrame(columns=["declaration_id", "inspected_at", "result", "selection"])
        it = np.zeros(0, dtype=np.int64)
    else:
        insp = final_inspections(insp_all.reset_index(drop=True))
        it = to_ns(insp["inspected_at"])
        insp, it = insp[it < as_of_ns], it[it < as_of_ns]
    row = pd.Index(decl["declaration_id"]).get_indexer(insp["declaration_id"])
    insp, it, row = insp[row >= 0], it[row >= 0], row[row >= 0]
    flags = inspection_flags(insp) if len(insp) else {k: np.zeros(0, np.int64) for k in KINDS[1:]}

    states: dict[str, EntityTable] = {}
    zero = np.zeros(len(decl), dtype=np.int64)
    states[GLOBAL] = EntityTable(
        _entity_table(np.array([""], dtype=object), zero, t, zero[row], it, flags, cutoff)
    )
    for name in entity_aggregations(attributes, chosen):
        ent = defs[name]
        code = coder.codes(ent)
        keys = coder.keys(ent)
        states[name] = EntityTable(_entity_table(keys, code, t, code[row], it, flags, cutoff))

    # Signals of the last 365 days + grace, keyed per subject pattern.
    sig = tables.get("risk_signals")
    sig_frame = pd.DataFrame({"pattern": [], "key": [], "t": [], "channel": [], "severity": []})
    patterns: list[tuple[tuple[str, ...], int]] = []
    if sig is not None and len(sig):
        sig = sig.reset_index(drop=True)
        st = to_ns(sig["reported_at"])
        keep = (st < as_of_ns) & (st >= cutoff)
        sig, st = sig[keep].reset_index(drop=True), st[keep]
        patterns, pat_of = signal_patterns(sig)
        if len(sig):
            ch, sev = signal_categories(sig)
            sig_frame = pd.DataFrame(
                {
                    "pattern": pat_of,
                    "key": signal_keys(sig, pat_of, patterns),
                    "t": st,
                    "channel": ch,
                    "severity": sev,
                }
            )

    cr = tables.get("credit_ratings")
    if cr is not None and len(cr):
        credit = pd.DataFrame(
            {
                "enterprise_id": cr["enterprise_id"].astype("str").to_numpy(dtype=object),
                "t": to_ns(cr["effective_from"]),
                "tier": cr["rating"]
                .map(CREDIT_TIER_CODES)
                .to_numpy(dtype=np.float64, na_value=np.nan),
            }
        )
    else:
        credit = pd.DataFrame({"enterprise_id": [], "t": [], "tier": []})
    enterprises = _enterprise_frame(tables.get("enterprises"))

    # HS6 unit values: sorted values before the base month; later ones pending.
    usd = declared_value_usd(decl)
    kg = (
        decl["net_weight_kg"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "net_weight_kg" in decl
        else np.full(len(decl), np.nan)
    )
    luv = unit_value_log(usd, kg)
    hs6 = fields["hs6"].to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    valid = np.isfinite(luv) & pd.notna(fields["hs6"]).to_numpy()
    old = valid & (t < base_month)
    frame = pd.DataFrame({"hs6": hs6[old], "luv": luv[old]}).sort_values(
        ["hs6", "luv"], kind="stable"
    )
    grouped = frame.groupby("hs6", sort=True)["luv"]
    uv_keys = list(grouped.groups.keys())
    counts = grouped.size().to_numpy()
    offsets = np.zeros(len(uv_keys) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    uv_base = pa.table(
        {
            "hs6": pa.array(uv_keys, type=pa.string()),
            "values": pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(frame["luv"].to_numpy(dtype=np.float64))
            ),
        }
    )
    new = valid & (t >= base_month)
    uv_pending = pd.DataFrame({"hs6": hs6[new], "t": t[new], "luv": luv[new]})

    # Behaviour: each declaration's terms, as the offline build computes them.
    behaviour: dict[str, BehaviourTable] = {}
    names = behaviour_entities(entity_aggregations(attributes, chosen))
    if names:
        ratio, _ = hs6_unit_value_features(coder.field("hs6")[0], t, luv)
        terms = behaviour_terms(
            declaration_flag(decl, "third_party_certificate"),
            declaration_flag(decl, "legal_inspection"),
            ratio,
        )
        for name in names:
            ent = defs[name]
            behaviour[name] = BehaviourTable(
                _behaviour_table(coder.keys(ent), coder.codes(ent), t, terms, as_of_ns - GRACE_NS)
            )

    inspected = set(insp["declaration_id"].tolist())
    waiting = ~decl["declaration_id"].isin(inspected).to_numpy()
    pending = _pending_frame(decl[waiting], attributes)

    meta = {
        "format": SNAPSHOT_FORMAT,
        "feature_set_version": FEATURE_SET_VERSION,
        "as_of": pd.Timestamp(as_of_ns, tz="UTC").isoformat(),
        "as_of_ns": as_of_ns,
        "cutoff_ns": cutoff,
        "base_month_ns": base_month,
        "attributes": attributes,
        "entities": chosen,
        "signal_patterns": [[list(f), n] for f, n in patterns],
        "vocabularies": {k: list(v) for k, v in VOCABULARIES.items()},
    }
    return SnapshotTables(
        meta, states, sig_frame, credit, enterprises, uv_base, uv_pending, pending, behaviour
    )


def _enterprise_frame(ent: pd.DataFrame | None) -> pd.DataFrame:
    if ent is None or ent.empty:
        return pd.DataFrame({"enterprise_id": [], "type_code": [], "registered": []})
    e = ent.drop_duplicates("enterprise_id", keep="last").reset_index(drop=True)
    if "enterprise_type" in e:
        codes = pd.Categorical(
            e["enterprise_type"].astype("str"), categories=list(VOCABULARIES["enterprise_type"])
        ).codes.astype(np.float64)
        codes[codes < 0] = np.nan
    else:
        codes = np.full(len(e), np.nan)
    if "registered_at" in e:
        reg = to_ns(e["registered_at"])
        reg[pd.isna(pd.DatetimeIndex(e["registered_at"]))] = NONE_T
    else:
        reg = np.full(len(e), NONE_T, dtype=np.int64)
    return pd.DataFrame(
        {
            "enterprise_id": e["enterprise_id"].astype("str").to_numpy(dtype=object),
            "type_code": codes,
            "registered": reg,
        }
    )


def _pending_frame(decl: pd.DataFrame, attributes: dict[str, str]) -> pd.DataFrame:
    cols = ["declaration_id", *KEY_FIELDS] + [
        n for n, k in sorted(attributes.items()) if k == "categorical"
    ]
    out = pd.DataFrame(index=range(len(decl)))
    for c in cols:
        out[c] = (
            decl[c].astype("str").reset_index(drop=True)
            if c in decl
            else pd.Series(pd.NA, index=out.index, dtype="str")
        )
    return out


def signal_keys(
    signals: pd.DataFrame, pat_of: np.ndarray, patterns: list[tuple[tuple[str, ...], int]]
) -> list[str]:
    """Key string of each signal under its pattern (field values joined; HS prefix last)."""
    out: list[str] = []
    cols = {
        c: signals[c].astype("str").to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
        for c, *_ in SIGNAL_ROUTES.values()
        if c in signals
    }
    for i, p in enumerate(pat_of.tolist()):
        fields, hs_len = patterns[p]
        parts = [cols[f][i] for f in fields]
        if hs_len:
            parts.append(cols["hs_code"][i])
        out.append(KEY_SEP.join(parts))
    return out
