"""What the committee pages keep on ``app.state``: the serving model, the settings, memos."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from guomen.settings import Settings

T = TypeVar("T")

MEMO_KEYS = 64  # per memo name; page parts change only with the store, model or a warning


def current_scorer(app: Any) -> Any:
    """The serving model (``app.state.models.current``), or None when none is loaded."""
    return getattr(getattr(app.state, "models", None), "current", None)


def app_settings(app: Any) -> Settings:
    """The settings the app was built with (``create_app`` puts them on ``app.state``)."""
    settings = getattr(app.state, "settings", None)
    if settings is None:
        raise RuntimeError("app.state.settings is not set: build the app with create_app")
    return settings


def memo(app: Any, name: str, key: Any, compute: Callable[[], T]) -> T:
    """``compute()`` cached on the app under ``name`` for ``key`` (the latest
    :data:`MEMO_KEYS` keys kept): page parts that only change with the store, the model or a
    warning's state."""
    caches: dict[str, dict[Any, Any]] | None = getattr(app.state, "page_memo", None)
    if caches is None:
        caches = app.state.page_memo = {}
    cache = caches.setdefault(name, {})
    if key not in cache:
        if len(cache) >= MEMO_KEYS:
            cache.pop(next(iter(cache)))
        cache[key] = compute()
    return cache[key]
