"""Active warnings of each enterprise, for its profile: the hook into the warnings engine.

:func:`warnings_in_force` reads the ``warnings`` table of ``serving.warnings_store`` and returns,
per enterprise, the warnings whose subject is that enterprise and that were in force at the as-of
time (activated at or before it, not lifted by then). Any other callable with the signature of
:data:`serving.rescore.profiles.WarningsProvider` can be passed to ``rescore`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from serving.rescore.profiles import WarningsProvider

FIELDS = ("id", "level", "status", "publication_type", "title", "activated_at", "lifted_at")


def warnings_in_force(engine: Engine) -> WarningsProvider:
    """A provider reading enterprise warnings from the warnings store in ``engine``."""

    def provider(
        enterprise_ids: Sequence[str], as_of: pd.Timestamp
    ) -> dict[str, list[dict[str, Any]]]:
        from serving.db import create_schema
        from serving.warnings_store import warnings_table

        create_schema(engine)
        t = warnings_table
        at = pd.Timestamp(as_of).to_pydatetime()
        q = (
            sa.select(t.c.subject_key, *(t.c[f] for f in FIELDS))
            .where(
                t.c.subject_kind == "enterprise",
                t.c.activated_at.is_not(None),
                t.c.activated_at <= at,
                sa.or_(t.c.lifted_at.is_(None), t.c.lifted_at > at),
            )
            .order_by(t.c.subject_key, t.c.level, t.c.id)
        )
        wanted = set(enterprise_ids)
        out: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for row in conn.execute(q):
                data = dict(row._mapping)
                key = data.pop("subject_key")
                if key not in wanted:
                    continue
                for f in ("activated_at", "lifted_at"):
                    data[f] = data[f].isoformat() if data[f] is not None else None
                out.setdefault(key, []).append(data)
        return out

    return provider
