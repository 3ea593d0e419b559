"""Committee page sessions: the signed session cookie, the CSRF tokens and the page-user
dependency.

Browsers cannot send ``X-API-Key``, so a committee member signs in once with their API key: the
key is checked against the same key table as ``serving.auth`` and a session cookie is set
(HttpOnly, SameSite=Strict, signed with HMAC-SHA256, with an expiry; the key itself is never put
in the cookie). Each request re-checks that the key is still active, so a revoked key ends its
sessions. Every POST form carries a per-session CSRF token (derived from the session nonce and
checked in constant time); the login form uses a double-submit cookie.

The pages (``serving.routes.pages``) only call :func:`start_session`, :func:`end_session`,
:func:`new_login_csrf`,
:func:`set_login_csrf`, :func:`check_login_csrf`, :func:`check_csrf`, :func:`safe_next` and
the :data:`User` dependency, so the mechanism can change here without touching them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response

from serving.auth import api_keys
from serving.routes.warnings import get_store

SESSION_COOKIE = "gm_session"
LOGIN_CSRF_COOKIE = "gm_login_csrf"
SESSION_SECONDS = 8 * 3600
PAGE_ROLES = frozenset({"committee", "admin"})
COOKIE_PATH = "/committee"


def session_secret(request: Request) -> bytes:
    """The cookie-signing key: ``Settings.session_secret`` when it exists, else derived one-way
    from the monitoring secret (domain-separated, so neither reveals the other)."""
    cached = getattr(request.app.state, "_page_session_secret", None)
    if cached:
        return cached
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        from guomen.settings import get_settings

        settings = get_settings()
    raw = getattr(settings, "session_secret", None) or settings.monitoring_secret
    value = raw.get_secret_value() if hasattr(raw, "get_secret_value") else str(raw)
    key = hmac.new(value.encode(), b"guomen committee session v1", hashlib.sha256).digest()
    request.app.state._page_session_secret = key
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_session(secret: bytes, key_id: str, role: str, ttl: int = SESSION_SECONDS) -> str:
    payload = {"kid": key_id, "role": role, "exp": int(time.time()) + ttl,
               "nonce": secrets.token_urlsafe(16)}  # fmt: skip
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}"


def read_session(secret: bytes, cookie: str | None) -> dict[str, Any] | None:
    """The session payload when the signature is valid and it has not expired."""
    if not cookie or cookie.count(".") != 1 or len(cookie) > 1000:
        return None
    body, sig = cookie.split(".")
    want = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(want, sig):
        return None
    try:
        payload = json.loads(_unb64(body))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or int(payload.get("exp", 0)) < time.time():
        return None
    return payload


def csrf_token(secret: bytes, session: dict[str, Any]) -> str:
    return hmac.new(secret, f"csrf|{session['nonce']}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PageUser:
    key_id: str
    role: str
    csrf: str

    @property
    def actor(self) -> str:
        return f"{self.key_id} (web)"


def key_active(request: Request, key_id: str) -> bool:
    """Whether ``key_id`` is an unrevoked key of a page role."""
    engine = get_store(request).engine
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(api_keys.c.role).where(
                api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return row is not None and row.role in PAGE_ROLES


def safe_next(target: str | None) -> str:
    """``target`` when it is a path inside the committee pages, else the warnings list: the
    login's ``next`` parameter is never an open redirect."""
    if not target or not target.startswith("/committee/") or target.startswith("//"):
        return "/committee/warnings"
    return target


def _login_required(request: Request) -> HTTPException:
    # a 303 with Location: the browser goes to the login form and comes back afterwards
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/committee/login?next={quote(safe_next(target), safe='')}"
    return HTTPException(303, "sign in first", headers={"Location": location})


def page_user(request: Request) -> PageUser:
    """Dependency of every committee page: a valid session of an active committee key."""
    secret = session_secret(request)
    session = read_session(secret, request.cookies.get(SESSION_COOKIE))
    if session is None or session.get("role") not in PAGE_ROLES:
        raise _login_required(request)
    if not key_active(request, str(session["kid"])):
        raise _login_required(request)
    return PageUser(str(session["kid"]), str(session["role"]), csrf_token(secret, session))


User = Annotated[PageUser, Depends(page_user)]


def check_csrf(user: PageUser, token: str) -> None:
    """403 unless ``token`` is the CSRF token of the user's session."""
    if not token or not hmac.compare_digest(user.csrf, token):
        raise HTTPException(403, "CSRF token missing or wrong; reload the page")


def new_login_csrf() -> str:
    """A fresh double-submit token for the login form (set it with :func:`set_login_csrf`)."""
    return secrets.token_urlsafe(24)


def set_login_csrf(response: Response, token: str) -> None:
    """Set the login form's token as a short-lived cookie."""
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=900, httponly=True, samesite="strict",
                        path=COOKIE_PATH)  # fmt: skip


def check_login_csrf(request: Request, token: str) -> None:
    """403 unless the login form's token matches its cookie."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, token):
        raise HTTPException(403, "CSRF check failed; reload the login page")


def start_session(request: Request, response: Response, key_id: str, role: str) -> None:
    """Open a session for an authenticated key: set the session cookie on ``response``."""
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(session_secret(request), key_id, role),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def end_session(request: Request, response: Response, user: PageUser) -> None:
    """Sign out: drop the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
