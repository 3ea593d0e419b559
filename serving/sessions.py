"""Committee page sessions: server-side sessions, their signed cookie, the CSRF tokens and the
page-user dependency.

Browsers cannot send ``X-API-Key``, so a committee member signs in once with their API key (the
key is checked against the same key table as ``serving.auth``; it is never put in the cookie).
Sign-in records a session in the ``web_sessions`` table and sets a cookie holding a random
session token signed with ``Settings.session_secret`` by itsdangerous (HttpOnly,
SameSite=Strict, Secure over https). Only the token's sha256 is stored, so a copy of the
database opens no session. A session ends when

* its member signs out (the row is marked ended: the same cookie replayed later is refused),
* its key is revoked (``serving.auth.revoke_key`` ends the key's sessions),
* it was not used for ``Settings.session_idle_minutes``, or
* ``Settings.session_max_hours`` have passed since sign-in.

Every POST form carries the session's CSRF token (random, stored with the session, compared in
constant time); the login form uses a double-submit cookie. The pages
(``serving.routes.pages``) only call :func:`start_session`, :func:`end_session`,
:func:`new_login_csrf`, :func:`set_login_csrf`, :func:`check_login_csrf`, :func:`check_csrf`,
:func:`safe_next` and the :data:`User` dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.engine import Engine

from serving.auth import api_keys, web_sessions
from serving.db import utcnow

log = logging.getLogger("guomen.serving.sessions")

SESSION_COOKIE = "gm_session"
LOGIN_CSRF_COOKIE = "gm_login_csrf"
PAGE_ROLES = frozenset({"committee", "admin"})
COOKIE_PATH = "/committee"
COOKIE_SALT = "guomen.committee.session.v2"
# ``last_seen_at`` is rewritten at most this often: idle time is exact to a minute without a
# database write on every page view.
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SessionPolicy:
    """How sessions are signed and how long they live (from ``Settings``)."""

    serializer: URLSafeTimedSerializer
    idle: timedelta
    lifetime: timedelta


def session_policy(request: Request) -> SessionPolicy:
    """The app's session policy, built once from ``app.state.settings``."""
    state = request.app.state
    policy = getattr(state, "session_policy", None)
    if policy is None:
        settings = state.settings
        serializer = URLSafeTimedSerializer(
            settings.secret("session_secret"),
            salt=COOKIE_SALT,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        policy = SessionPolicy(
            serializer,
            timedelta(minutes=settings.session_idle_minutes),
            timedelta(hours=settings.session_max_hours),
        )
        state.session_policy = policy
    return policy


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PageUser:
    key_id: str
    role: str
    csrf: str
    session_sha256: str

    @property
    def actor(self) -> str:
        return f"{self.key_id} (web)"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path inside the committee pages, else the landing page: the
    login's ``next`` parameter is never an open redirect."""
    if target == "/committee":
        return target
    if (
        not target
        or not target.startswith("/committee/")
        or "//" in target
        or "\\" in target
        or any(ord(c) < 0x20 for c in target)
    ):
        return "/committee"
    return target


def _login_required(request: Request) -> HTTPException:
    # a 303 with Location: the browser goes to the login form and comes back afterwards
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"/committee/login?next={quote(safe_next(target), safe='')}"
    return HTTPException(303, "sign in first", headers={"Location": location})


def read_session(request: Request) -> PageUser | None:
    """The live session of the request's cookie, or None (absent, forged, tampered, ended,
    idle, too old, or its key revoked or no longer of a page role)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 1000:
        return None
    policy = session_policy(request)
    try:
        token = policy.serializer.loads(cookie, max_age=int(policy.lifetime.total_seconds()))
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(token, str):
        return None
    digest = _digest(token)
    now = utcnow()
    s, k = web_sessions.c, api_keys.c
    query = (
        sa.select(s.key_id, s.role, s.csrf, s.created_at, s.last_seen_at)
        .join(api_keys, k.key_id == s.key_id)
        .where(s.session_sha256 == digest, s.ended_at.is_(None), k.revoked_at.is_(None))
    )
    engine = _engine(request)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.role not in PAGE_ROLES:
        return None
    if now - row.created_at > policy.lifetime or now - row.last_seen_at > policy.idle:
        _end(engine, digest, "expired")
        return None
    if (now - row.last_seen_at).total_seconds() > min(
        TOUCH_SECONDS, policy.idle.total_seconds() / 10
    ):
        try:
            with engine.begin() as conn:
                conn.execute(
                    web_sessions.update().where(s.session_sha256 == digest).values(last_seen_at=now)
                )
        except sa.exc.OperationalError as exc:  # read-only storage: the session stays valid
            log.warning("could not record session activity: %s", type(exc).__name__)
    return PageUser(row.key_id, row.role, row.csrf, digest)


def page_user(request: Request) -> PageUser:
    """Dependency of every committee page: a live session of an active committee key."""
    user = read_session(request)
    if user is None:
        raise _login_required(request)
    return user


User = Annotated[PageUser, Depends(page_user)]


def check_csrf(user: PageUser, token: str) -> None:
    """403 unless ``token`` is the CSRF token of the user's session."""
    if not token or not hmac.compare_digest(user.csrf.encode(), token.encode()):
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
    if not cookie or not hmac.compare_digest(cookie.encode(), token.encode()):
        raise HTTPException(403, "CSRF check failed; reload the login page")


def start_session(request: Request, response: Response, key_id: str, role: str) -> None:
    """Record a new session for an authenticated key and set its cookie on ``response``.

    A fresh token on every sign-in (no session fixation); sessions past their lifetime are
    deleted here, so the table stays small without a cleaning job.
    """
    policy = session_policy(request)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with _engine(request).begin() as conn:
        conn.execute(web_sessions.delete().where(web_sessions.c.created_at < now - policy.lifetime))
        conn.execute(
            web_sessions.insert().values(
                session_sha256=_digest(token), key_id=key_id, role=role,
                csrf=secrets.token_urlsafe(32), created_at=now, last_seen_at=now,
            )
        )  # fmt: skip
    response.set_cookie(
        SESSION_COOKIE,
        policy.serializer.dumps(token),
        max_age=int(policy.lifetime.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path=COOKIE_PATH,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


def _end(engine: Engine, digest: str, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            web_sessions.update()
            .where(web_sessions.c.session_sha256 == digest, web_sessions.c.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason)
        )


def end_session(request: Request, response: Response, user: PageUser) -> None:
    """Sign out: end the session server-side (a replayed cookie is refused) and drop the
    cookie."""
    _end(_engine(request), user.session_sha256, "logout")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
