"""A flat, foreign-layout file of inspected declarations, for the bring-your-own-format path.

The layout is the one at the end of the data contract (a Korean-customs-style export): one row per
inspected import declaration, ``Item Price`` in KRW, dates like ``2020-01-02``, and two label
columns, ``Fraud`` (0/1) and ``Critical Fraud`` (0/1/2, 0 when there is no fraud). It is loaded with
``docs/examples/foreign_flat_mapping.yaml`` (walked through in ``docs/mapping.md``).

The fraud mechanism is learnable, so a model trained on the mapped tables has signal:

- latent risk of importers and sellers (heavy-tailed volumes, normal latent risk);
- an HS6 x origin hazard (a few risky product/origin pairs);
- two categorical columns matter: ``Payment Type`` ``43`` and ``Import Type`` ``29`` raise risk;
- postal shipments are a little riskier;
- fraud shows up as undervaluation: most fraudulent rows declare a price well below the HS6 norm.

Other worlds (``world=``, ``demo/worlds.py``) move the risk to another grain: HS6 x origin with
sibling subheadings, the declarant, seller x HS4, office x HS chapter, the ``Import Use`` column, or
a weak importer/seller effect. With ``truth=True`` the true probability and its log-odds
components (and ``critical_p_true``) are written to ``ground_truth/foreign_truth.parquet`` next
to the CSV (no mapping reads that folder). The default world's CSV is the same, byte for byte, as before worlds existed.

With ``unknown_values=True`` (``guomen demo-data --layout flat --unknown-values``) a few rows carry
values an office records but the contract reads as "unknown", like the real exports this imitates:
a ``Net Mass`` of 0 (``ZERO_MASS_SHARE``) and the user-assigned origin ``ZZ``
(``UNKNOWN_ORIGIN_SHARE``), together about 0.8 % of rows, as in a public customs dataset of this
layout. Ingest keeps them (contract 1.1: zero weight is a data-quality issue, ``ZZ`` a valid code).

Deterministic by seed. Vectorised numpy; no loop over rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from demo import worlds as wd

COLUMNS = (
    "Declaration ID",
    "Date",
    "Office ID",
    "Process Type",
    "Import Type",
    "Import Use",
    "Payment Type",
    "Mode of Transport",
    "Declarant ID",
    "Importer ID",
    "Seller ID",
    "Courier ID",
    "HS6 Code",
    "Country of Departure",
    "Country of Origin",
    "Tax Rate",
    "Tax Type",
    "Country of Origin Indicator",
    "Net Mass",
    "Item Price",
    "Fraud",
    "Critical Fraud",
)

# HS6 code, typical KRW per kg, typical kg per item line, tariff rate (%).
HS6 = (
    ("020130", 14_000, 800, 40.0),  # bovine meat, fresh
    ("030389", 6_000, 1_500, 10.0),  # frozen fish
    ("030617", 18_000, 600, 20.0),  # frozen shrimp
    ("040690", 11_000, 300, 36.0),  # cheese
    ("070200", 2_000, 2_000, 27.0),  # tomatoes
    ("080810", 2_500, 2_500, 45.0),  # apples
    ("090111", 6_500, 900, 2.0),  # coffee, not roasted
    ("090210", 20_000, 150, 40.0),  # green tea
    ("330499", 60_000, 60, 6.5),  # cosmetics
    ("392690", 9_000, 200, 6.5),  # plastic articles
    ("420221", 90_000, 20, 8.0),  # handbags, leather
    ("610910", 25_000, 80, 13.0),  # T-shirts, cotton
    ("620342", 30_000, 100, 13.0),  # trousers, cotton
    ("640399", 45_000, 60, 13.0),  # footwear, leather
    ("847130", 400_000, 10, 0.0),  # laptops
    ("851762", 350_000, 15, 0.0),  # network equipment
    ("852872", 250_000, 40, 8.0),  # televisions
    ("870899", 20_000, 300, 8.0),  # car parts
    ("950300", 15_000, 120, 8.0),  # toys
    ("960321", 8_000, 50, 8.0),  # toothbrushes
)
ORIGINS = ("CN", "US", "JP", "VN", "DE", "TH", "AU", "NZ", "CL", "IN", "ID", "IT", "FR", "MY", "BR")
ORIGIN_WEIGHTS = (30, 10, 9, 8, 5, 5, 4, 3, 3, 4, 4, 3, 3, 4, 5)
OFFICES = ("010", "020", "030", "040", "041", "050", "060", "070")
PROCESS_TYPES = ("A", "B", "C")
IMPORT_TYPES = ("11", "21", "29", "51")
IMPORT_USES = ("11", "12", "21", "22", "29")
PAYMENT_TYPES = ("11", "13", "43", "99")
TRANSPORT_CODES = ("1", "2", "3", "4", "5")  # sea, rail, road, air, post
TRANSPORT_WEIGHTS = (0.55, 0.02, 0.03, 0.33, 0.07)
TAX_TYPES = ("A", "C", "E", "FCN1", "FEU1")
ORIGIN_INDICATORS = ("Y", "N", "B", "E", "G")
DATE_START = np.datetime64("2020-01-01")
PRICE_SD = 0.25  # log-sd of the true price around the HS6 norm
UNDERVALUED_SHARE = 0.75  # of frauds, declared below the norm
UNDERVALUED_FACTOR = (0.2, 0.6)  # uniform factor of an under-declared price
# With ``unknown_values``: shares of rows with a zero Net Mass and with origin "ZZ" (drawn from a
# generator of their own, so every other column is what the seed gives without them).
ZERO_MASS_SHARE = 0.005
UNKNOWN_ORIGIN_SHARE = 0.003
N_DAYS = 731


def _ids(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    """n distinct random-looking 7-character ids (prefix letter + 6 base-36 characters)."""
    alphabet = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    codes = rng.choice(36**6, size=n, replace=False)
    chars = np.stack([alphabet[(codes // 36**k) % 36] for k in range(6)], axis=1)
    return np.char.add(prefix, np.array(["".join(r) for r in chars]))


def _heavy(rng: np.random.Generator, n: int, sigma: float = 1.3) -> np.ndarray:
    w = rng.lognormal(0.0, sigma, n)
    return w / w.sum()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def write_foreign_flat(
    path: Path,
    n: int,
    seed: int,
    world: str = "default",
    truth: bool = False,
    unknown_values: bool = False,
) -> None:
    """Write ``n`` inspected declarations in the flat foreign layout to a CSV file.

    Parameters
    ----------
    path : Path
        Output CSV (UTF-8, header row). Parent folders are created.
    n : int
        Number of rows (declarations).
    seed : int
        Random seed; the same seed gives the same bytes.
    world : str
        Where the risk is planted (``demo/worlds.py``); ``"default"`` is today's file.
    truth : bool
        Also write ``ground_truth/foreign_truth.parquet`` beside the CSV: ``declaration_id``
        (the ``Declaration ID``), ``p_true`` = P(fraud | the row's risk and its declared price;
        the price is an effect of fraud, so its likelihood ratio is the ``logit_price_evidence``
        component), ``critical_p_true`` (a critical fraud, ``Critical Fraud`` = 2), ``logit`` and
        every ``logit_*`` component (they sum to ``logit``).
    unknown_values : bool
        Write about 0.8 % of rows with ``Net Mass`` 0 or ``Country of Origin`` ``ZZ``, as real
        exports of this layout have them (the labels and every other column are unchanged).
    """
    w = wd.check_world(world).name
    wr = wd.world_rng(seed, w)  # the world's own draws; the default world makes none
    rng = np.random.default_rng(seed)
    n_imp = max(20, n // 40)
    n_sel = max(20, n // 30)
    n_dec = max(5, n // 400)
    importers = _ids(rng, n_imp, "I")
    sellers = _ids(rng, n_sel, "S")
    declarants = _ids(rng, n_dec, "D")
    couriers = _ids(rng, 12, "C")
    imp_risk = rng.normal(0.0, 1.0, n_imp)
    sel_risk = rng.normal(0.0, 1.0, n_sel)

    imp = rng.choice(n_imp, size=n, p=_heavy(rng, n_imp))
    sel = rng.choice(n_sel, size=n, p=_heavy(rng, n_sel))
    dec = rng.choice(n_dec, size=n, p=_heavy(rng, n_dec, 0.8))
    hs_i = rng.choice(len(HS6), size=n, p=_heavy(rng, len(HS6), 0.6))
    ow = np.array(ORIGIN_WEIGHTS, dtype=float)
    org_i = rng.choice(len(ORIGINS), size=n, p=ow / ow.sum())
    days = np.sort(rng.integers(0, N_DAYS, size=n))
    dates = np.datetime_as_string(DATE_START + days.astype("timedelta64[D]"), unit="D")

    # HS6 x origin hazard: a few pairs are much riskier than the rest.
    hazard = rng.normal(0.0, 0.3, (len(HS6), len(ORIGINS)))
    risky = rng.choice(hazard.size, size=max(3, hazard.size // 25), replace=False)
    hazard.flat[risky] += rng.uniform(1.2, 2.2, risky.size)

    payment = rng.choice(len(PAYMENT_TYPES), size=n, p=(0.55, 0.25, 0.12, 0.08))
    import_type = rng.choice(len(IMPORT_TYPES), size=n, p=(0.6, 0.2, 0.12, 0.08))
    transport = rng.choice(len(TRANSPORT_CODES), size=n, p=TRANSPORT_WEIGHTS)
    # Office and Import Use are drawn here from the world's generator when the world needs them
    # before the outcome; the trade's own draws below still happen, so the rest stays aligned.
    office = wr.integers(0, len(OFFICES), n) if w == "port_chapter" else None
    import_use = wr.integers(0, len(IMPORT_USES), n) if w == "attribute" else None
    hs6_codes = np.array([h[0] for h in HS6])
    if w == "hs6_origin":
        # Each HS4 gets sibling subheadings; risk lives at the subheading x origin.
        sib = wr.integers(0, len(wd.FLAT_HS6_SIBLINGS) + 1, n)  # last value: the code itself
        ends = np.array([*wd.FLAT_HS6_SIBLINGS, ""])
        hs6_codes = np.char.add(np.array([h[0][:4] for h in HS6])[hs_i], ends[sib])
        hs6_codes = np.where(sib == len(wd.FLAT_HS6_SIBLINGS), np.array([h[0] for h in HS6])[hs_i],
                             hs6_codes)  # fmt: skip
    comp = {
        "intercept": np.full(n, -3.0),
        "importer": 0.9 * imp_risk[imp],
        "seller": 0.6 * sel_risk[sel],
        "hs6_origin_base": hazard[hs_i, org_i],
        "payment_type": 0.9 * (np.array(PAYMENT_TYPES)[payment] == "43"),
        "import_type": 0.7 * (np.array(IMPORT_TYPES)[import_type] == "29"),
        "post": 0.4 * (np.array(TRANSPORT_CODES)[transport] == "5"),
    }
    _plant_flat_world(w, wr, comp, n, imp, sel, dec, hs_i, org_i, office, import_use, hs6_codes,
                      n_sel, n_dec)  # fmt: skip
    logit = (
        comp["intercept"]
        + comp["importer"]
        + comp["seller"]
        + comp["hs6_origin_base"]
        + comp["payment_type"]
        + comp["import_type"]
        + comp["post"]
    )
    for extra in set(comp) - _FLAT_BASE_COMPONENTS:
        logit = logit + comp[extra]
    fraud = rng.random(n) < _sigmoid(logit)
    # Severity among frauds grows with the product/origin hazard.
    p_crit = _sigmoid(-1.5 + 1.2 * hazard[hs_i, org_i])
    u = rng.random(n)
    critical = np.where(fraud, np.where(u < p_crit, 2, np.where(u < p_crit + 0.35, 1, 0)), 0)

    norm_kg = np.array([h[1] for h in HS6], dtype=float)
    typ_kg = np.array([h[2] for h in HS6], dtype=float)
    tax = np.array([h[3] for h in HS6])
    mass = np.round(typ_kg[hs_i] * rng.lognormal(0.0, 0.8, n) + 0.1, 1)
    price = mass * norm_kg[hs_i] * rng.lognormal(0.0, PRICE_SD, n)
    # Fraud is mostly undervaluation: the declared price falls well below the HS6 norm.
    underval = fraud & (rng.random(n) < UNDERVALUED_SHARE)
    price = np.where(underval, price * rng.uniform(*UNDERVALUED_FACTOR, n), price)
    price = np.round(price, -1)
    if truth:
        # The price is an effect of the fraud, so the truth conditions on it (as any predictor
        # can): p_true = P(fraud | risk, price) adds the price's log likelihood ratio.
        comp["price_evidence"] = price_log_likelihood_ratio(
            np.maximum(price, 5.0) / (mass * norm_kg[hs_i])
        )
        logit = logit + comp["price_evidence"]

    departure = np.where(rng.random(n) < 0.85, org_i, rng.integers(0, len(ORIGINS), n))
    courier = np.where(
        np.array(TRANSPORT_CODES)[transport] == "4", couriers[rng.integers(0, 12, n)], ""
    )
    frame = pd.DataFrame(
        {
            "Declaration ID": [f"{97000000 + i:08d}" for i in range(n)],
            "Date": dates,
            "Office ID": np.array(OFFICES)[_either(office, rng.integers(0, len(OFFICES), n))],
            "Process Type": np.array(PROCESS_TYPES)[rng.choice(3, n, p=(0.7, 0.2, 0.1))],
            "Import Type": np.array(IMPORT_TYPES)[import_type],
            "Import Use": np.array(IMPORT_USES)[
                _either(import_use, rng.integers(0, len(IMPORT_USES), n))
            ],
            "Payment Type": np.array(PAYMENT_TYPES)[payment],
            "Mode of Transport": np.array(TRANSPORT_CODES)[transport],
            "Declarant ID": declarants[dec],
            "Importer ID": importers[imp],
            "Seller ID": sellers[sel],
            "Courier ID": courier,
            "HS6 Code": hs6_codes if w == "hs6_origin" else np.array([h[0] for h in HS6])[hs_i],
            "Country of Departure": np.array(ORIGINS)[departure],
            "Country of Origin": np.array(ORIGINS)[org_i],
            "Tax Rate": tax[hs_i],
            "Tax Type": np.array(TAX_TYPES)[rng.integers(0, len(TAX_TYPES), n)],
            "Country of Origin Indicator": np.array(ORIGIN_INDICATORS)[
                rng.integers(0, len(ORIGIN_INDICATORS), n)
            ],
            "Net Mass": mass,
            "Item Price": price.astype(np.int64),
            "Fraud": fraud.astype(int),
            "Critical Fraud": critical,
        },
        columns=list(COLUMNS),
    )
    if unknown_values:
        dirt = np.random.default_rng([seed, 1])
        frame.loc[dirt.random(n) < ZERO_MASS_SHARE, "Net Mass"] = 0.0
        frame.loc[dirt.random(n) < UNKNOWN_ORIGIN_SHARE, "Country of Origin"] = "ZZ"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    if truth:
        gt = path.parent / "ground_truth"
        gt.mkdir(exist_ok=True)
        table = {
            "declaration_id": frame["Declaration ID"],
            "p_true": _sigmoid(logit),
            "critical_p_true": _sigmoid(logit) * p_crit,  # Critical Fraud = 2 given fraud
            "logit": logit,
        }
        table.update({f"logit_{k}": v for k, v in comp.items()})
        pd.DataFrame(table).to_parquet(gt / "foreign_truth.parquet", index=False)


_FLAT_BASE_COMPONENTS = frozenset(
    {"intercept", "importer", "seller", "hs6_origin_base", "payment_type", "import_type", "post"}
)


def price_log_likelihood_ratio(ratio: np.ndarray) -> np.ndarray:
    """log f(price ratio | fraud) - log f(price ratio | no fraud), ratio = price / HS6 norm.

    Without fraud log(ratio) ~ N(0, PRICE_SD); with fraud it is that, times U(0.2, 0.6) for the
    ``UNDERVALUED_SHARE`` that are under-declared: the density of N(0, s) + log U in closed form,
    e^(z + s^2/2) / (b - a) [Phi((log b - z - s^2) / s) - Phi((log a - z - s^2) / s)].
    """
    from scipy.special import ndtr

    s = PRICE_SD
    a, b = UNDERVALUED_FACTOR
    z = np.log(np.maximum(ratio, 1e-9))
    f0 = np.exp(-0.5 * (z / s) ** 2) / (s * np.sqrt(2 * np.pi))
    g = (
        np.exp(z + s**2 / 2)
        / (b - a)
        * (ndtr((np.log(b) - z - s**2) / s) - ndtr((np.log(a) - z - s**2) / s))
    )
    f1 = (1 - UNDERVALUED_SHARE) * f0 + UNDERVALUED_SHARE * g
    return np.asarray(np.log(np.maximum(f1, 1e-300)) - np.log(np.maximum(f0, 1e-300)))


def _either(pre: np.ndarray | None, drawn: np.ndarray) -> np.ndarray:
    """The world's early draw when there is one, else the trade's own (drawn either way)."""
    return drawn if pre is None else pre


def _plant_flat_world(
    w: str,
    wr: np.random.Generator,
    comp: dict[str, np.ndarray],
    n: int,
    imp: np.ndarray,
    sel: np.ndarray,
    dec: np.ndarray,
    hs_i: np.ndarray,
    org_i: np.ndarray,
    office: np.ndarray | None,
    import_use: np.ndarray | None,
    hs6_codes: np.ndarray,
    n_sel: int,
    n_dec: int,
) -> None:
    """Add (or rescale) the world's log-odds components in ``comp``; default changes nothing."""
    if w == "default":
        return
    if w == "weak_enterprise":
        comp["importer"] = wd.WEAK_ENTERPRISE_SCALE * comp["importer"]
        comp["seller"] = wd.WEAK_ENTERPRISE_SCALE * comp["seller"]
    elif w == "hs6_origin":
        codes, code_i = np.unique(hs6_codes, return_inverse=True)
        eff = wd.hot_effects(wr, (len(codes), len(ORIGINS)), wd.FLAT_HS6_ORIGIN)
        comp["hs6_origin_base"] = np.zeros(n)  # the subheading effect replaces the HS6 one
        comp["hs6_origin"] = eff[code_i, org_i]
    elif w == "declarant":
        comp["declarant"] = wd.hot_effects(wr, (n_dec,), wd.FLAT_DECLARANT)[dec]
    elif w == "overseas_hs4":
        eff = wd.hot_effects(wr, (n_sel, len(HS6)), wd.FLAT_OVERSEAS_HS4)  # one HS6 per HS4
        comp["seller"] = np.zeros(n)
        comp["overseas_hs4"] = eff[sel, hs_i]
    elif w == "port_chapter":
        assert office is not None
        chapters, ch_i = np.unique([h[0][:2] for h in HS6], return_inverse=True)
        eff = wd.hot_effects(wr, (len(OFFICES), len(chapters)), wd.FLAT_PORT_CHAPTER)
        comp["port_chapter"] = eff[office, ch_i[hs_i]]
    elif w == "attribute":
        assert import_use is not None
        lift = np.array([wd.FLAT_IMPORT_USE_EFFECT[u] for u in IMPORT_USES])
        comp["attribute"] = lift[import_use]
    else:  # pragma: no cover - check_world guards the names
        raise AssertionError(w)
