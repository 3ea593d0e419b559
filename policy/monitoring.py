"""Random monitoring selection by a keyed hash of the declaration id.

HMAC-SHA256 with a secret key: the same declaration always gets the same draw (reproducible for
audit), but without the key a declarant cannot predict or game which declarations are drawn.
"""

from __future__ import annotations

import hashlib
import hmac


def monitoring_draw(declaration_id: str, secret: bytes | str) -> float:
    """A uniform number in [0, 1) determined by the key and the declaration id."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not key:
        raise ValueError("the monitoring secret must not be empty")
    digest = hmac.new(key, declaration_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def selected_for_monitoring(declaration_id: str, secret: bytes | str, share: float) -> bool:
    """True when the declaration falls in the random monitoring share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    return monitoring_draw(declaration_id, secret) < share
