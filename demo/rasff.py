"""A RASFF-like foreign alert feed about the demo world's imports (worked example of issue 19).

The EU's Rapid Alert System for Food and Feed publishes notifications without HS codes: a
reference (``2026.1234``), a notification date written ``dd-mm-YYYY``, the notifying member state,
the origin as a country *name* in the feed's own spellings ("Türkiye", "Viet Nam", "Korea,
Republic of", "China (People's Republic of)"), a subject sentence and a product name in the
notifier's language, a product category from RASFF's list, hazards with a hazard category, and a
risk decision. This module writes such a file, seeded from a demo world written by
:func:`demo.generate.write_demo_data`:

- background notifications concern the world's imported food and food-contact products, drawn by
  their import volume per product x origin;
- each planted outbreak on a food product gets a burst of notifications soon after it begins
  (``ground_truth/outbreaks.json``);
- :class:`Burst` injects more, for tests and drills;
- a few notifications concern products the world does not trade (spices, supplements) or give no
  usable origin ("unknown origin"), as real exports do; the mapping reports them.

It is read through ``docs/examples/rasff_mapping.yaml`` (walk-through in ``docs/mapping.md``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pycountry

# The columns of a RASFF Window export, in its order.
COLUMNS = (
    "reference",
    "notification date",
    "notification type",
    "notification classification",
    "notifying country",
    "origin",
    "subject",
    "product",
    "product category",
    "hazards",
    "hazard category",
    "risk decision",
    "distribution",
)

# RASFF's product categories (those this feed uses; the full list is in the category table).
FISH = "fish and fish products"
CRUSTACEANS = "crustaceans and products thereof"
CEPHALOPODS = "cephalopods and products thereof"
MEAT = "meat and meat products (other than poultry)"
POULTRY = "poultry meat and poultry meat products"
MILK = "milk and milk products"
FRUIT = "fruits and vegetables"
NUTS = "nuts, nut products and seeds"
CONFECTIONERY = "confectionery"
COCOA = "cocoa and cocoa preparations, coffee and tea"
DIETETIC = "dietetic foods, food supplements and fortified foods"
CEREALS = "cereals and bakery products"
SOFT_DRINKS = "non-alcoholic beverages"
OTHER_FOOD = "other food product / mixed"
WINE = "wine"
FCM = "food contact materials"
SPICES = "herbs and spices"

# HS4 of the demo's food and food-contact products -> (RASFF category, product names by language)
PRODUCTS: dict[str, tuple[str, dict[str, list[str]]]] = {
    "0201": (MEAT, {"en": ["chilled boneless beef"], "de": ["Rindfleisch, gekühlt"]}),
    "0202": (MEAT, {"en": ["frozen boneless beef"], "fr": ["viande bovine congelée"]}),
    "0203": (
        MEAT,
        {"en": ["frozen pork cuts"], "de": ["Schweinefleisch, tiefgefroren"], "zh": ["冷冻猪肉"]},
    ),
    "0207": (
        POULTRY,
        {
            "en": ["frozen chicken cuts", "frozen chicken legs"],
            "nl": ["bevroren kippenpoten"],
            "pl": ["mrożone udka z kurczaka"],
            "zh": ["冷冻鸡爪"],
        },
    ),
    "0303": (
        FISH,
        {"en": ["frozen hake", "frozen fish fillets"], "es": ["merluza congelada"]},
    ),
    "0306": (
        CRUSTACEANS,
        {
            "en": ["frozen vannamei shrimps", "frozen prawns", "cooked peeled prawns"],
            "de": ["Garnelen, tiefgefroren"],
            "fr": ["crevettes congelées"],
            "it": ["gamberetti surgelati"],
            "zh": ["冷冻虾仁", "冻南美白对虾"],
        },
    ),
    "0307": (
        CEPHALOPODS,
        {"en": ["frozen squid"], "es": ["calamar congelado"], "zh": ["冷冻鱿鱼"]},
    ),
    "0402": (
        MILK,
        {
            "en": ["whole milk powder", "skimmed milk powder"],
            "de": ["Magermilchpulver"],
            "nl": ["melkpoeder"],
            "zh": ["全脂奶粉"],
        },
    ),
    "0404": (MILK, {"en": ["whey powder"], "fr": ["lactosérum en poudre"]}),
    "0406": (
        MILK,
        {"en": ["cheddar cheese", "soft cheese"], "fr": ["fromage au lait cru"], "de": ["Käse"]},
    ),
    "0802": (
        NUTS,
        {"en": ["shelled almonds", "almond kernels"], "de": ["Mandeln"], "zh": ["扁桃仁"]},
    ),
    "0803": (FRUIT, {"en": ["fresh bananas"], "es": ["plátanos frescos"]}),
    "0804": (FRUIT, {"en": ["fresh mangoes"], "fr": ["mangues fraîches"], "zh": ["芒果"]}),
    "0808": (FRUIT, {"en": ["fresh apples"], "pl": ["jabłka świeże"]}),
    "0809": (FRUIT, {"en": ["fresh cherries"], "de": ["Kirschen"], "zh": ["车厘子"]}),
    "0810": (
        FRUIT,
        {"en": ["fresh durians", "frozen durian pulp"], "nl": ["verse doerian"], "zh": ["榴莲"]},
    ),
    "1602": (POULTRY, {"en": ["cooked chicken meat", "chicken nuggets"], "zh": ["鸡肉制品"]}),
    "1604": (FISH, {"en": ["canned tuna", "tuna in brine"], "it": ["tonno in scatola"]}),
    "1704": (CONFECTIONERY, {"en": ["jelly candies", "lollipops"], "zh": ["果冻糖果"]}),
    "1806": (COCOA, {"en": ["milk chocolate bars"], "de": ["Schokolade"]}),
    "1901": (
        DIETETIC,
        {
            "en": ["infant formula", "follow-on formula"],
            "de": ["Säuglingsanfangsnahrung"],
            "fr": ["préparation pour nourrissons"],
            "nl": ["zuigelingenvoeding"],
            "zh": ["婴儿配方奶粉"],
        },
    ),
    "1905": (CEREALS, {"en": ["sweet biscuits"], "de": ["Butterkekse"], "zh": ["饼干"]}),
    "2009": (SOFT_DRINKS, {"en": ["orange juice", "apple juice"], "es": ["zumo de naranja"]}),
    "2106": (OTHER_FOOD, {"en": ["konjac jelly", "bubble tea pearls"], "zh": ["魔芋果冻"]}),
    "2204": (WINE, {"en": ["red wine"], "fr": ["vin rouge"], "it": ["vino rosso"]}),
    "3924": (FCM, {"en": ["melamine bowls", "plastic kitchen utensils"], "zh": ["密胺餐具"]}),
    "4419": (FCM, {"en": ["bamboo chopping board"], "de": ["Bambus-Schneidebrett"]}),
    "6911": (FCM, {"en": ["porcelain plates"], "fr": ["assiettes en porcelaine"]}),
    "7013": (FCM, {"en": ["drinking glasses"], "it": ["bicchieri di vetro"]}),
    "7323": (
        FCM,
        {
            "en": ["stainless steel pan", "stainless steel ladle"],
            "pl": ["łyżka kuchenna ze stali nierdzewnej"],
        },
    ),
    "7615": (FCM, {"en": ["aluminium pot"], "de": ["Aluminiumtopf"]}),
}
# food-contact articles whose material the notifier does not give: the rules map a set of HS4
UNSPECIFIED = {
    FCM: ["kitchen utensils", "Łyżka kuchenna (tablespoon)", "厨房用具"],
    MEAT: ["beef", "Rindfleisch"],
}
# notifications about products the demo does not trade (kept, mapped by category or not at all)
FOREIGN_PRODUCTS: list[tuple[str, str]] = [
    (SPICES, "black pepper"),
    (SPICES, "chilli powder"),
    (SPICES, "curry powder"),
    (DIETETIC, "food supplement capsules"),
    (FRUIT, "dried goji berries"),
    (OTHER_FOOD, "mixed snack box"),
    ("", "sample of an unidentified product"),  # exports do lose the category now and then
]

# hazard type of the demo -> (hazard text, RASFF hazard category, subject form)
HAZARDS: dict[str, list[tuple[str, str]]] = {
    "health": [
        ("Salmonella spp.", "pathogenic micro-organisms"),
        ("Listeria monocytogenes", "pathogenic micro-organisms"),
        ("aflatoxins", "mycotoxins"),
        ("chlorpyrifos", "pesticide residues"),
        ("chloramphenicol", "residues of veterinary medicinal products"),
        ("cadmium", "heavy metals"),
        ("undeclared milk", "allergens"),
    ],
    "safety": [
        ("glass fragments", "foreign bodies"),
        ("metal pieces", "foreign bodies"),
        ("choking hazard", "foreign bodies"),
    ],
    "fraud_labeling": [
        ("fraudulent health certificate", "adulteration / fraud"),
        ("incorrect labelling", "labelling absent/incomplete/incorrect"),
    ],
    "other": [("absence of health certificate", "poor or insufficient controls")],
}
FCM_HAZARDS = [
    ("migration of formaldehyde", "migration"),
    ("migration of primary aromatic amines", "migration"),
    ("release of nickel", "migration"),
    ("release of lead", "migration"),
]
# RASFF's hazard categories not named above occur too, without a text the rules know
BACKGROUND_HAZARDS = ("health", "health", "health", "safety", "fraud_labeling", "other")
RARE_HAZARDS = [("mineral oil hydrocarbons", "industrial contaminants")]
RISK_DECISIONS = ("serious", "potentially serious", "not serious", "undecided", "no risk")
RISK_WEIGHTS = (0.45, 0.1, 0.25, 0.15, 0.05)
CLASSIFICATIONS = (
    ("alert notification", 0.3),
    ("border rejection notification", 0.35),
    ("information notification for attention", 0.2),
    ("information notification for follow-up", 0.15),
)
NOTIFIERS = (
    ("Germany", 0.18),
    ("Netherlands", 0.14),
    ("Italy", 0.12),
    ("France", 0.11),
    ("Spain", 0.1),
    ("Belgium", 0.09),
    ("Poland", 0.08),
    ("Denmark", 0.05),
    ("Austria", 0.05),
    ("Czechia", 0.04),
    ("Norway", 0.04),
)
# the feed's own spellings of origin countries (several per country, as RASFF has used them)
SPELLINGS: dict[str, list[str]] = {
    "CN": ["China", "China (People's Republic of)"],
    "VN": ["Viet Nam", "Vietnam"],
    "TR": ["Türkiye", "Turkey"],
    "US": ["United States", "United States of America"],
    "KR": ["Korea, Republic of", "South Korea"],
    "NL": ["Netherlands", "The Netherlands"],
    "IR": ["Iran (Islamic Republic of)"],
    "RU": ["Russia", "Russian Federation"],
    "GB": ["United Kingdom"],
    "TW": ["Taiwan"],
    "BO": ["Bolivia"],
    "CI": ["Côte d'Ivoire", "Ivory Coast"],
}
UNKNOWN_ORIGINS = ("unknown origin", "Europe")
DISTRIBUTION = (
    "distribution to other member countries",
    "no distribution",
    "product not distributed",
    "distribution restricted to notifying country",
)


@dataclass(frozen=True)
class Burst:
    """Injected notifications about one product x origin.

    Attributes
    ----------
    hs4, origin
        The demo product (a key of :data:`PRODUCTS`) and origin alpha-2.
    start
        First notification date (timezone-aware or naive UTC).
    count, days
        How many notifications, spread over how many days.
    """

    hs4: str
    origin: str
    start: datetime
    count: int = 4
    days: int = 10


def origin_name(code: str, rng: np.random.Generator) -> str:
    """One of the feed's spellings of a country (ISO's English name when it has no variant)."""
    names = SPELLINGS.get(code)
    if names:
        return str(names[int(rng.integers(len(names)))])
    country = pycountry.countries.get(alpha_2=code)
    return country.name if country is not None else code


def _product_text(hs4: str, rng: np.random.Generator) -> tuple[str, str, str]:
    """(category, product name in some language, English name) of a demo HS4."""
    category, names = PRODUCTS[hs4]
    langs = sorted(names)
    lang = "en" if rng.random() < 0.45 else langs[int(rng.integers(len(langs)))]
    local = names[lang][int(rng.integers(len(names[lang])))]
    english = names["en"][int(rng.integers(len(names["en"])))]
    return category, local, english


def _read_demo(demo_dir: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    cols = ["declared_at", "direction", "hs_code", "origin_country"]
    path = demo_dir / "declarations.parquet"
    if path.exists():
        decl = pd.read_parquet(path, columns=cols)
    else:
        decl = pd.read_csv(demo_dir / "declarations.csv", usecols=cols, dtype=str)
        decl["declared_at"] = pd.to_datetime(decl["declared_at"], utc=True)
    truth = demo_dir / "ground_truth" / "outbreaks.json"
    outbreaks = json.loads(truth.read_text("utf-8")) if truth.exists() else []
    return decl, outbreaks


def rasff_rows(
    demo_dir: Path,
    seed: int = 7,
    per_year: float = 700.0,
    bursts: list[Burst] | tuple[Burst, ...] = (),
    outbreak_bursts: bool = True,
    foreign_share: float = 0.04,
    unknown_origin_share: float = 0.015,
) -> list[dict[str, str]]:
    """The feed's notifications as rows of :data:`COLUMNS` (text), oldest first.

    Parameters
    ----------
    demo_dir
        A folder written by :func:`demo.generate.write_demo_data` (declarations, ground truth).
    seed
        Random seed; the same inputs give the same rows.
    per_year
        Background notifications per year about the world's imported food and food-contact goods.
    bursts
        Injected bursts (:class:`Burst`).
    outbreak_bursts
        Add a burst about each planted outbreak on a product of the feed.
    foreign_share, unknown_origin_share
        Shares of notifications about products the world does not trade, and with no usable
        origin.
    """
    rng = np.random.default_rng(seed)
    decl, outbreaks = _read_demo(Path(demo_dir))
    imp = decl[decl["direction"].astype(str) == "import"]
    hs4 = imp["hs_code"].astype(str).str.slice(0, 4)
    imp = imp.assign(hs4=hs4)[hs4.isin(list(PRODUCTS))]
    pairs = imp.groupby(["hs4", "origin_country"]).size()
    weights = pairs.to_numpy(dtype="float64") ** 0.7
    weights /= weights.sum()
    t0 = pd.Timestamp(decl["declared_at"].min()).tz_convert("UTC")
    t1 = pd.Timestamp(decl["declared_at"].max()).tz_convert("UTC")
    days = max(1.0, (t1 - t0).total_seconds() / 86400)
    n = int(rng.poisson(per_year * days / 365.0))
    events: list[tuple[pd.Timestamp, str, str, str]] = []  # (time, hs4, origin, kind)
    offsets = np.sort(rng.uniform(0, days, n))
    picks = rng.choice(len(pairs), size=n, p=weights)
    for off, k in zip(offsets, picks, strict=True):
        h, o = pairs.index[int(k)]
        kind = "foreign" if rng.random() < foreign_share else "background"
        events.append((t0 + pd.Timedelta(days=float(off)), str(h), str(o), kind))
    if outbreak_bursts:
        for ob in outbreaks:
            if ob["hs4"] not in PRODUCTS:
                continue
            start = pd.Timestamp(ob["start"]).tz_convert("UTC")
            lag = float(rng.uniform(3, 15))
            for d in np.sort(rng.uniform(lag, lag + 28, int(rng.integers(3, 7)))):
                events.append(
                    (
                        start + pd.Timedelta(days=float(d)),
                        ob["hs4"],
                        ob["origin_country"],
                        str(ob.get("hazard_type", "health")),
                    )
                )
    # like the demo's own signals, nothing after the world's last day (injected bursts excepted)
    events = [e for e in events if e[0] <= t1]
    for b in bursts:
        if b.hs4 not in PRODUCTS:
            raise ValueError(
                f"burst product {b.hs4!r} is not a food or food-contact HS4 of the feed"
            )
        start = pd.Timestamp(b.start)
        start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        for d in np.sort(rng.uniform(0, max(b.days, 1), b.count)):
            events.append((start + pd.Timedelta(days=float(d)), b.hs4, b.origin, "health"))
    events.sort(key=lambda e: e[0])

    rows: list[dict[str, str]] = []
    seq: dict[int, int] = {}
    for when, h, origin, kind in events:
        category, local, english = _product_text(h, rng)
        fcm = category == FCM
        if kind == "foreign":
            category, local = FOREIGN_PRODUCTS[int(rng.integers(len(FOREIGN_PRODUCTS)))]
            english = local
        elif rng.random() < 0.04 and category in UNSPECIFIED:
            vague = UNSPECIFIED[category]
            local = english = vague[int(rng.integers(len(vague)))]
        hazard_type = kind if kind in HAZARDS else str(rng.choice(BACKGROUND_HAZARDS))
        if fcm and kind != "foreign":
            hazard, hcat = FCM_HAZARDS[int(rng.integers(len(FCM_HAZARDS)))]
        elif rng.random() < 0.02:
            hazard, hcat = RARE_HAZARDS[0]
        else:
            options = HAZARDS[hazard_type]
            hazard, hcat = options[int(rng.integers(len(options)))]
        burst = kind in HAZARDS
        if rng.random() < unknown_origin_share and not burst:
            origin_text = UNKNOWN_ORIGINS[int(rng.integers(len(UNKNOWN_ORIGINS)))]
        else:
            origin_text = origin_name(origin, rng)
        if burst:
            decision = "serious" if rng.random() < 0.8 else "potentially serious"
        else:
            decision = str(rng.choice(RISK_DECISIONS, p=RISK_WEIGHTS))
        local_time = when.tz_convert("Europe/Brussels")
        year = int(local_time.year)
        seq[year] = seq.get(year, 0) + 1
        # the subject is English, naming the product in English or as the notifier wrote it
        named = english if rng.random() < 0.6 else local
        product = local if rng.random() < 0.8 else ""
        rows.append(
            {
                "reference": f"{year}.{seq[year]:04d}",
                "notification date": local_time.strftime("%d-%m-%Y"),
                "notification type": "food contact material" if fcm else "food",
                "notification classification": _pick(CLASSIFICATIONS, rng),
                "notifying country": _pick(NOTIFIERS, rng),
                "origin": origin_text,
                "subject": f"{hazard} in {named} from {origin_text}",
                "product": product,
                "product category": category,
                "hazards": hazard,
                "hazard category": hcat,
                "risk decision": decision,
                "distribution": str(DISTRIBUTION[int(rng.integers(len(DISTRIBUTION)))]),
            }
        )
    return rows


def _pick(options: tuple[tuple[str, float], ...], rng: np.random.Generator) -> str:
    p = np.array([w for _, w in options])
    return options[int(rng.choice(len(options), p=p / p.sum()))][0]


def write_rasff_feed(path: Path, demo_dir: Path, **kwargs: Any) -> int:
    """Write the feed as a CSV (UTF-8, header row) and return its number of notifications.

    Keyword arguments go to :func:`rasff_rows`.
    """
    rows = rasff_rows(demo_dir, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
