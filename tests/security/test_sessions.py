"""Committee sessions: signed by a kept library with a real secret, recorded server-side, and
ended by logout, key revocation, idle time and their absolute lifetime (issue 11, items 1-2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time

from itsdangerous import URLSafeTimedSerializer

from serving.auth import revoke_key, web_sessions
from serving.sessions import COOKIE_SALT, SESSION_COOKIE
from tests.security.security_helpers import csrf_of, login, with_settings

OLD_DEFAULT = "change-me-monitoring-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _old_format_cookie(secret: str, key_id: str) -> str:
    """A cookie as the pre-hardening code signed it, with the published default secret."""
    key = hmac.new(secret.encode(), b"guomen committee session v1", hashlib.sha256).digest()
    payload = {"kid": key_id, "role": "committee", "exp": int(time.time()) + 3600,
               "nonce": secrets.token_urlsafe(16)}  # fmt: skip
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def _opens(client) -> bool:
    r = client.get("/committee/warnings", follow_redirects=False)
    assert r.status_code in (200, 303), r.status_code
    return r.status_code == 200


def test_a_cookie_forged_with_the_old_default_secret_is_refused(pages):
    _, client, keys = pages
    key_id = keys["committee"][:12]  # key ids are public: pages and transition logs show them
    client.cookies.set(SESSION_COOKIE, _old_format_cookie(OLD_DEFAULT, key_id), path="/committee")
    assert not _opens(client)
    # the new format signed with the old default (or any guess) is refused as well
    forged = URLSafeTimedSerializer(OLD_DEFAULT, salt=COOKIE_SALT).dumps(key_id)
    client.cookies.set(SESSION_COOKIE, forged, path="/committee")
    assert not _opens(client)


def test_a_cookie_signed_with_the_real_secret_but_no_server_session_is_refused(pages):
    """Even the signing secret alone opens nothing: a session must exist server-side."""
    app, client, keys = pages
    secret = app.state.settings.secret("session_secret")
    forged = URLSafeTimedSerializer(secret, salt=COOKIE_SALT,
                                    signer_kwargs={"digest_method": hashlib.sha256}).dumps("x" * 43)  # fmt: skip
    client.cookies.set(SESSION_COOKIE, forged, path="/committee")
    assert not _opens(client)


def test_the_cookie_holds_no_key_and_the_database_no_token(pages):
    app, client, keys = pages
    r = login(client, keys["committee"])
    cookie = client.cookies[SESSION_COOKIE]
    assert keys["committee"] not in r.headers["set-cookie"]
    with app.state.engine.connect() as conn:
        rows = conn.execute(web_sessions.select()).mappings().all()
    assert len(rows) == 1 and rows[0]["key_id"] == keys["committee"][:12]
    token = URLSafeTimedSerializer(app.state.settings.secret("session_secret"), salt=COOKIE_SALT,
                                   signer_kwargs={"digest_method": hashlib.sha256}).loads(cookie)  # fmt: skip
    assert (
        token not in str(dict(rows[0]))
        and rows[0]["session_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    )


def test_replay_after_logout_is_refused(pages):
    _, client, keys = pages
    login(client, keys["committee"])
    page = client.get("/committee/warnings")
    cookie = client.cookies[SESSION_COOKIE]
    r = client.post("/committee/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.set(SESSION_COOKIE, cookie, path="/committee")  # the stolen copy, replayed
    assert not _opens(client)


def test_logout_needs_the_csrf_token(pages):
    _, client, keys = pages
    login(client, keys["committee"])
    r = client.post("/committee/logout", data={"csrf": "nope"}, follow_redirects=False)
    assert r.status_code == 403 and _opens(client)


def test_revoking_the_key_ends_its_sessions_in_the_table(pages):
    app, client, keys = pages
    login(client, keys["committee"])
    assert _opens(client)
    revoke_key(app.state.engine, keys["committee"][:12])
    assert not _opens(client)
    with app.state.engine.connect() as conn:
        [row] = conn.execute(web_sessions.select()).mappings().all()
    assert row["end_reason"] == "revoked" and row["ended_at"] is not None


def test_a_new_login_gets_a_new_session(pages):
    _, client, keys = pages
    login(client, keys["committee"])
    first = client.cookies[SESSION_COOKIE]
    login(client, keys["committee"])
    assert client.cookies[SESSION_COOKIE] != first


def test_idle_sessions_end(pages):
    app, client, keys = pages
    with_settings(app, session_idle_minutes=1.5 / 60)
    login(client, keys["committee"])
    for _ in range(3):  # used more often than the idle limit: stays open past it
        time.sleep(0.6)
        assert _opens(client)
    time.sleep(2.0)
    assert not _opens(client)


def test_sessions_end_at_their_absolute_lifetime_even_when_used(pages):
    app, client, keys = pages
    with_settings(app, session_max_hours=2.0 / 3600)
    login(client, keys["committee"])
    assert _opens(client)
    deadline = time.time() + 2.5
    while time.time() < deadline:
        time.sleep(0.5)
        _opens(client)
    assert not _opens(client)
