"""Static reference data for the demo generator: ports, countries, sectors and an HS catalogue.

Everything here is plain data (tuples and dicts), looked up by the generator and turned into numpy
arrays once per run. Values are plausible, not official: unit values are rough world-trade
medians in USD per kilogram, the legal-inspection flags follow the spirit of China's catalogue
(food, cosmetics, toys, children's wear, household electrical goods, food-contact articles).
"""

from __future__ import annotations

from dataclasses import dataclass

# Port (UN/LOCODE), four-digit customs district used in declaration numbers, region (province or
# municipality) and whether it is a seaport.
PORTS: tuple[tuple[str, str, str, float, bool], ...] = (
    # code, district, region, traffic weight, seaport
    ("CNSHA", "2201", "Shanghai", 0.17, True),
    ("CNNGB", "3100", "Zhejiang", 0.13, True),
    ("CNSZX", "5316", "Guangdong", 0.14, True),
    ("CNTAO", "4227", "Shandong", 0.09, True),
    ("CNTSN", "0202", "Tianjin", 0.08, True),
    ("CNXMN", "3702", "Fujian", 0.06, True),
    ("CNCAN", "5141", "Guangdong", 0.09, True),
    ("CNDLC", "0902", "Liaoning", 0.05, True),
    ("CNHGH", "2901", "Zhejiang", 0.06, False),
    ("CNCGO", "4601", "Henan", 0.05, False),
    ("CNCKG", "8001", "Chongqing", 0.04, False),
    ("CNNKG", "2304", "Jiangsu", 0.04, True),
)

# Ports that carry most cross-border e-commerce parcels (pilot zones).
CBEC_PORTS: dict[str, float] = {
    "CNHGH": 0.28,
    "CNCGO": 0.22,
    "CNCAN": 0.16,
    "CNSZX": 0.14,
    "CNNGB": 0.12,
    "CNSHA": 0.08,
}

# Currency of the contract by country; anything else is invoiced in USD.
COUNTRY_CURRENCY: dict[str, str] = {
    "JP": "JPY",
    "KR": "KRW",
    "HK": "HKD",
    "DE": "EUR",
    "FR": "EUR",
    "IT": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IE": "EUR",
    "DK": "EUR",
    "BE": "EUR",
}
# USD per unit of currency (rough 2024-2026 levels); only used to turn USD into declared value.
USD_PER_UNIT: dict[str, float] = {
    "USD": 1.0,
    "CNY": 0.139,
    "EUR": 1.08,
    "JPY": 0.0067,
    "KRW": 0.00073,
    "HKD": 0.128,
}

# Export destinations (alpha-2) and weights.
EXPORT_DESTINATIONS: dict[str, float] = {
    "US": 0.18,
    "DE": 0.07,
    "NL": 0.06,
    "GB": 0.06,
    "JP": 0.07,
    "KR": 0.06,
    "VN": 0.06,
    "AU": 0.04,
    "FR": 0.04,
    "IT": 0.03,
    "ES": 0.03,
    "MY": 0.04,
    "TH": 0.04,
    "IN": 0.05,
    "AE": 0.04,
    "RU": 0.05,
    "BR": 0.04,
    "MX": 0.04,
}

# Where Chinese enterprises sit (region -> four-digit area code used in their customs code).
REGIONS: tuple[tuple[str, str], ...] = (
    ("Shanghai", "3100"),
    ("Zhejiang", "3302"),
    ("Guangdong", "4403"),
    ("Shandong", "3702"),
    ("Tianjin", "1200"),
    ("Fujian", "3502"),
    ("Liaoning", "2102"),
    ("Henan", "4101"),
    ("Chongqing", "5000"),
    ("Jiangsu", "3201"),
)

HAZARD_INDEX = {"safety": 0, "health": 1, "environment": 2, "fraud_labeling": 3, "other": 4}


@dataclass(frozen=True)
class Sector:
    """A product family: trade direction, partner countries and the hazards it carries."""

    name: str
    weight: float  # share of declarations
    import_share: float  # share of the sector's declarations that are imports
    origins: dict[str, float]  # import origins
    hazards: tuple[float, float, float, float, float]  # safety, health, environment, fraud, other
    base_logit: float  # sector-level risk offset
    crit_logit: float  # log-odds that a nonconformity is critical
    food: bool = False
    consumer: bool = True  # sold to consumers (complaints, injuries, recalls)


SECTORS: dict[str, Sector] = {
    s.name: s
    for s in (
        Sector(
            "meat_seafood",
            0.07,
            0.95,
            {
                "BR": 0.2,
                "AU": 0.12,
                "NZ": 0.08,
                "AR": 0.1,
                "US": 0.08,
                "EC": 0.1,
                "IN": 0.08,
                "VN": 0.06,
                "RU": 0.06,
                "CA": 0.05,
                "UY": 0.07,
            },
            (0.03, 0.8, 0.05, 0.1, 0.02),
            0.35,
            -2.0,
            food=True,
        ),
        Sector(
            "dairy",
            0.04,
            0.97,
            {"NZ": 0.45, "NL": 0.1, "FR": 0.1, "DE": 0.08, "AU": 0.1, "IE": 0.07, "US": 0.1},
            (0.02, 0.85, 0.02, 0.1, 0.01),
            0.2,
            -1.8,
            food=True,
        ),
        Sector(
            "fruit_nuts",
            0.05,
            0.85,
            {
                "TH": 0.25,
                "CL": 0.2,
                "VN": 0.15,
                "US": 0.1,
                "PE": 0.08,
                "AU": 0.07,
                "NZ": 0.07,
                "PH": 0.08,
            },
            (0.02, 0.85, 0.05, 0.07, 0.01),
            0.3,
            -2.6,
            food=True,
        ),
        Sector(
            "processed_food",
            0.07,
            0.75,
            {
                "US": 0.14,
                "JP": 0.1,
                "KR": 0.1,
                "FR": 0.1,
                "DE": 0.1,
                "NL": 0.08,
                "TH": 0.1,
                "MY": 0.08,
                "IT": 0.1,
                "AU": 0.1,
            },
            (0.02, 0.7, 0.03, 0.24, 0.01),
            0.25,
            -2.3,
            food=True,
        ),
        Sector(
            "cosmetics",
            0.05,
            0.85,
            {"FR": 0.3, "JP": 0.2, "KR": 0.25, "US": 0.12, "IT": 0.05, "ES": 0.03, "DE": 0.05},
            (0.05, 0.6, 0.02, 0.32, 0.01),
            0.1,
            -3.0,
        ),
        Sector(
            "toys",
            0.08,
            0.15,
            {"JP": 0.25, "US": 0.2, "DK": 0.2, "DE": 0.15, "VN": 0.2},
            (0.75, 0.1, 0.03, 0.11, 0.01),
            0.2,
            -2.4,
        ),
        Sector(
            "electrical",
            0.17,
            0.3,
            {"JP": 0.25, "KR": 0.2, "DE": 0.15, "US": 0.15, "VN": 0.12, "MY": 0.13},
            (0.7, 0.02, 0.08, 0.18, 0.02),
            0.0,
            -3.0,
        ),
        Sector(
            "textiles",
            0.13,
            0.12,
            {"VN": 0.3, "BD": 0.25, "IT": 0.15, "KH": 0.15, "JP": 0.15},
            (0.15, 0.2, 0.05, 0.58, 0.02),
            -0.3,
            -4.2,
        ),
        Sector(
            "footwear",
            0.05,
            0.15,
            {"VN": 0.45, "IT": 0.25, "ID": 0.3},
            (0.15, 0.15, 0.05, 0.63, 0.02),
            -0.2,
            -4.5,
        ),
        Sector(
            "kitchenware",
            0.07,
            0.2,
            {"DE": 0.3, "JP": 0.2, "KR": 0.2, "FR": 0.15, "IT": 0.15},
            (0.3, 0.55, 0.05, 0.09, 0.01),
            0.15,
            -3.0,
        ),
        Sector(
            "machinery",
            0.12,
            0.45,
            {"DE": 0.3, "JP": 0.25, "US": 0.15, "KR": 0.15, "IT": 0.15},
            (0.65, 0.02, 0.15, 0.15, 0.03),
            -0.6,
            -3.5,
            consumer=False,
        ),
        Sector(
            "furniture",
            0.05,
            0.1,
            {"IT": 0.35, "DE": 0.2, "VN": 0.25, "MY": 0.2},
            (0.35, 0.2, 0.3, 0.13, 0.02),
            -0.4,
            -4.0,
        ),
        Sector(
            "household_chem",
            0.06,
            0.45,
            {"DE": 0.2, "JP": 0.25, "US": 0.2, "KR": 0.2, "FR": 0.15},
            (0.35, 0.4, 0.15, 0.08, 0.02),
            0.0,
            -3.2,
        ),
    )
}


@dataclass(frozen=True)
class Product:
    """One HS6 subheading as traded in the demo."""

    hs6: str
    sector: str
    description: str
    unit: str  # kg, piece, pair, set, unit
    usd_per_kg: float  # median unit value
    kg_per_unit: float  # net weight of one unit (1 for kg)
    legal: bool  # in the legal-inspection catalogue
    base_logit: float  # product-level risk on top of the sector's
    suffixes: tuple[str, ...] = ("00", "10", "90")  # Chinese 7th-8th digits seen with this HS6


PRODUCTS: tuple[Product, ...] = (
    # meat and seafood (chapters 02-03)
    Product("020130", "meat_seafood", "fresh boneless beef", "kg", 9.5, 1, True, 0.0),
    Product("020230", "meat_seafood", "frozen boneless beef", "kg", 6.0, 1, True, 0.1),
    Product("020329", "meat_seafood", "frozen pork cuts", "kg", 2.6, 1, True, 0.2),
    Product("020714", "meat_seafood", "frozen chicken cuts and offal", "kg", 2.2, 1, True, 0.3),
    Product("030389", "meat_seafood", "frozen fish", "kg", 2.8, 1, True, 0.0),
    Product("030617", "meat_seafood", "frozen shrimps and prawns", "kg", 7.0, 1, True, 0.3),
    Product("030743", "meat_seafood", "frozen squid", "kg", 3.2, 1, True, -0.1),
    # dairy (04)
    Product("040221", "dairy", "milk powder, fat > 1.5%", "kg", 3.8, 1, True, 0.0),
    Product("040210", "dairy", "skimmed milk powder", "kg", 2.9, 1, True, -0.1),
    Product("040690", "dairy", "cheese", "kg", 5.5, 1, True, 0.0),
    Product("040410", "dairy", "whey", "kg", 1.4, 1, True, -0.2),
    # fruit and nuts (08)
    Product("081090", "fruit_nuts", "fresh durians", "kg", 4.5, 1, True, 0.2, ("00", "10")),
    Product("080450", "fruit_nuts", "fresh mangoes", "kg", 1.6, 1, True, 0.0),
    Product("080810", "fruit_nuts", "fresh apples", "kg", 1.3, 1, True, -0.1),
    Product("080920", "fruit_nuts", "fresh cherries", "kg", 8.0, 1, True, 0.1),
    Product("080212", "fruit_nuts", "shelled almonds", "kg", 5.2, 1, True, 0.0),
    Product("080390", "fruit_nuts", "fresh bananas", "kg", 0.7, 1, True, -0.2),
    # processed food (16-21, 22)
    Product("160232", "processed_food", "prepared chicken meat", "kg", 3.5, 1, True, 0.1),
    Product("160414", "processed_food", "prepared tuna", "kg", 5.0, 1, True, 0.0),
    Product("170490", "processed_food", "sugar confectionery", "kg", 3.0, 1, True, 0.0),
    Product("180690", "processed_food", "chocolate preparations", "kg", 6.5, 1, True, -0.1),
    Product("190110", "processed_food", "infant formula", "kg", 14.0, 1, True, 0.2),
    Product("190531", "processed_food", "sweet biscuits", "kg", 3.2, 1, True, -0.1),
    Product("200989", "processed_food", "fruit juice", "kg", 1.5, 1, True, 0.0),
    Product("210690", "processed_food", "food preparations n.e.s.", "kg", 7.0, 1, True, 0.3),
    Product("220421", "processed_food", "wine in containers <= 2 l", "kg", 6.0, 1, True, -0.2),
    # cosmetics (33)
    Product("330499", "cosmetics", "skin care preparations", "kg", 45.0, 1, True, 0.1),
    Product("330410", "cosmetics", "lip make-up preparations", "piece", 60.0, 0.02, True, 0.0),
    Product("330420", "cosmetics", "eye make-up preparations", "piece", 55.0, 0.02, True, 0.0),
    Product("330491", "cosmetics", "face powders", "piece", 40.0, 0.03, True, -0.1),
    Product("330510", "cosmetics", "shampoos", "kg", 6.0, 1, True, -0.2),
    # toys (95)
    Product(
        "950300",
        "toys",
        "toys, dolls and puzzles",
        "piece",
        9.0,
        0.25,
        True,
        0.2,
        ("10", "21", "60", "83", "89", "90"),
    ),
    Product("950450", "toys", "video game consoles", "unit", 60.0, 2.5, False, -0.5),
    Product("950691", "toys", "fitness and gymnastics equipment", "piece", 4.0, 5.0, False, -0.3),
    Product("950510", "toys", "Christmas articles", "piece", 5.0, 0.2, False, -0.1),
    # electrical (85, 94)
    Product(
        "850440", "electrical", "static converters and chargers", "piece", 25.0, 0.15, True, 0.2
    ),
    Product("850760", "electrical", "lithium-ion accumulators", "piece", 28.0, 0.05, False, 0.3),
    Product("851713", "electrical", "smartphones", "unit", 450.0, 0.2, False, -0.4),
    Product("851631", "electrical", "hair dryers", "piece", 12.0, 0.6, True, 0.1),
    Product("851671", "electrical", "coffee makers", "piece", 10.0, 2.5, True, 0.0),
    Product("851660", "electrical", "ovens and cookers", "piece", 7.0, 4.0, True, 0.0),
    Product("851310", "electrical", "portable electric lamps", "piece", 15.0, 0.3, True, 0.1),
    Product("853690", "electrical", "electrical connectors", "kg", 40.0, 1, False, -0.3),
    Product("854442", "electrical", "insulated cables with connectors", "kg", 18.0, 1, False, -0.1),
    Product("852872", "electrical", "television receivers", "unit", 20.0, 12.0, True, -0.2),
    Product(
        "940540", "electrical", "electric lamps and lighting fittings", "piece", 9.0, 1.2, True, 0.0
    ),
    # textiles (61-62)
    Product("610910", "textiles", "cotton T-shirts", "piece", 18.0, 0.18, False, -0.1),
    Product("611020", "textiles", "cotton jerseys and pullovers", "piece", 20.0, 0.45, False, -0.1),
    Product("611030", "textiles", "man-made fibre jerseys", "piece", 16.0, 0.4, False, 0.0),
    Product("611120", "textiles", "babies' garments, cotton", "piece", 22.0, 0.12, True, 0.4),
    Product("620342", "textiles", "men's cotton trousers", "piece", 20.0, 0.55, False, -0.1),
    Product("620462", "textiles", "women's cotton trousers", "piece", 22.0, 0.45, False, -0.1),
    Product("620520", "textiles", "men's cotton shirts", "piece", 25.0, 0.25, False, -0.2),
    # footwear (64)
    Product("640299", "footwear", "rubber or plastic footwear", "pair", 7.0, 0.6, False, 0.0),
    Product("640399", "footwear", "leather footwear", "pair", 25.0, 0.9, False, -0.1),
    Product("640411", "footwear", "sports footwear, textile uppers", "pair", 15.0, 0.7, False, 0.1),
    # kitchenware and food-contact articles (39, 69, 70, 73, 76)
    Product("732393", "kitchenware", "stainless steel kitchenware", "kg", 6.0, 1, True, 0.0),
    Product("761510", "kitchenware", "aluminium kitchenware", "kg", 5.5, 1, True, 0.1),
    Product("691110", "kitchenware", "porcelain tableware", "kg", 3.5, 1, True, 0.2),
    Product("701337", "kitchenware", "drinking glasses", "kg", 3.0, 1, True, -0.1),
    Product("392410", "kitchenware", "plastic tableware", "kg", 4.0, 1, True, 0.3),
    Product("441990", "kitchenware", "wooden tableware", "kg", 4.5, 1, True, 0.2),
    # machinery (84)
    Product("847130", "machinery", "portable computers", "unit", 180.0, 1.8, False, -0.5),
    Product("841510", "machinery", "air conditioners", "unit", 8.0, 35.0, True, -0.1),
    Product("845011", "machinery", "washing machines", "unit", 5.0, 60.0, True, 0.0),
    Product("841810", "machinery", "refrigerator-freezers", "unit", 4.5, 65.0, True, 0.0),
    Product(
        "846729", "machinery", "hand-held electric power tools", "piece", 14.0, 2.0, False, 0.1
    ),
    Product("848180", "machinery", "taps and valves", "kg", 12.0, 1, False, -0.2),
    Product("842952", "machinery", "excavators", "unit", 12.0, 20000.0, False, -0.6),
    # furniture (94)
    Product("940360", "furniture", "wooden furniture", "piece", 3.0, 25.0, False, 0.0),
    Product("940161", "furniture", "upholstered wooden seats", "piece", 4.0, 18.0, False, 0.0),
    Product("940490", "furniture", "bedding and quilts", "piece", 6.0, 2.5, False, 0.1),
    Product("871500", "furniture", "baby carriages", "piece", 7.0, 9.0, True, 0.3),
    # household chemicals and hygiene (34, 48, 96, 40)
    Product("340220", "household_chem", "washing preparations", "kg", 1.8, 1, False, 0.0),
    Product("961900", "household_chem", "diapers", "kg", 4.0, 1, True, 0.1),
    Product("481840", "household_chem", "sanitary towels", "kg", 3.5, 1, True, 0.0),
    Product("401110", "household_chem", "car tyres", "piece", 3.0, 9.0, True, -0.1),
    Product("380891", "household_chem", "insecticides", "kg", 6.0, 1, True, 0.2),
)

# Origins that trade a sector at a premium or discount in unit value (USD/kg multiplier).
ORIGIN_PRICE: dict[str, float] = {
    "FR": 1.5,
    "IT": 1.4,
    "JP": 1.35,
    "DE": 1.3,
    "DK": 1.2,
    "US": 1.15,
    "NZ": 1.1,
    "KR": 1.1,
    "VN": 0.8,
    "BD": 0.7,
    "KH": 0.75,
    "IN": 0.75,
    "ID": 0.8,
    "TH": 0.85,
    "CN": 0.85,
}

# Planted outbreak templates: (hs4, origin, dominant hazard, deserved level I..IV, odds multiplier,
# log-odds that a nonconformity during the outbreak is critical, weeks long).
OUTBREAK_TEMPLATES: tuple[tuple[str, str, str, int, float, float, int], ...] = (
    ("1901", "NL", "health", 1, 12.0, 0.5, 10),
    ("0402", "NZ", "health", 2, 8.0, -0.5, 14),
    ("8507", "CN", "safety", 2, 6.0, -0.8, 12),
    ("0306", "IN", "health", 3, 5.0, -2.0, 16),
    ("3304", "KR", "health", 3, 5.0, -2.2, 9),
    ("9503", "CN", "safety", 3, 4.5, -2.0, 20),
    ("0810", "TH", "health", 4, 3.5, -3.5, 7),
    ("6111", "CN", "fraud_labeling", 4, 3.0, -4.0, 6),
)

LEVEL_NAMES = {1: "I (red)", 2: "II (orange)", 3: "III (yellow)", 4: "IV (blue)"}

# Foreign and domestic sources of risk information, by channel.
FOREIGN_ALERT_SOURCES_FOOD = ("RASFF", "FDA Import Alert", "CFIA", "FSANZ", "INFOSAN")
FOREIGN_ALERT_SOURCES_GOODS = ("Safety Gate", "CPSC", "OPSS", "Health Canada", "ACCC")

# Products whose origins differ from their sector's table (import origins and weights).
PRODUCT_ORIGINS: dict[str, dict[str, float]] = {
    "190110": {"NL": 0.3, "NZ": 0.2, "FR": 0.15, "DE": 0.15, "IE": 0.1, "AU": 0.1},
    "081090": {"TH": 0.75, "MY": 0.15, "VN": 0.1},
    "030617": {"EC": 0.35, "IN": 0.3, "VN": 0.15, "TH": 0.1, "AR": 0.1},
    "040221": {"NZ": 0.6, "AU": 0.1, "NL": 0.1, "FR": 0.1, "DE": 0.1},
    "080390": {"PH": 0.6, "VN": 0.25, "EC": 0.15},
    "080920": {"CL": 0.85, "NZ": 0.1, "AU": 0.05},
    "220421": {"FR": 0.45, "AU": 0.2, "CL": 0.2, "IT": 0.15},
    "160414": {"TH": 0.6, "EC": 0.2, "PH": 0.2},
}
