"""The scoring-API test world's clock and request bodies, shared by ``conftest`` and the tests
and the keys of a test app's database (a module of its own, imported by the tests that need
them)."""

from __future__ import annotations

from typing import Any

import pandas as pd

T0 = pd.Timestamp("2025-01-01", tz="UTC")
DAYS = 300
AS_OF = T0 + pd.Timedelta(days=DAYS)
# The serving secrets every test app is built with (``create_app`` refuses to start without).
TEST_SECRETS = {
    "monitoring_secret": "test-monitoring-secret",
    "measure_secret": "test-measure-draw-secret",
    "session_secret": "test-session-signing-secret",
}


def declaration(i: int | str, enterprise: str = "E0005", hours: float = 1.0, **kw: Any) -> dict:
    """A valid request body declared ``hours`` after the snapshot time."""
    body = {
        "declaration_id": f"Q{i}",
        "declared_at": (AS_OF + pd.Timedelta(hours=hours)).isoformat(),
        "direction": "import",
        "port_code": "P1",
        "trade_mode": "general_trade",
        "hs_code": "0301890000",
        "origin_country": "VN",
        "enterprise_id": enterprise,
        "declarant_id": "B1",
        "overseas_party_id": "O3",
        "transport_mode": "sea",
        "net_weight_kg": 1200.0,
        "declared_value": 54000.0,
        "currency": "USD",
        "legal_inspection": True,
    }
    body.update(kw)
    return body


def make_keys(settings: Any) -> dict[str, str]:
    """One key per role, created in the app's database before it starts."""
    from serving.auth import create_key
    from serving.db import create_schema, make_engine

    engine = make_engine(settings.database_url)
    create_schema(engine)
    keys = {role: create_key(engine, role, name=f"test {role}")[0] for role in
            ("inspector", "committee", "admin")}  # fmt: skip
    engine.dispose()
    return keys
