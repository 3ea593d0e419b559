"""``POST /v1/score``'s fast path: what it takes, it reads as FastAPI would; the rest is FastAPI's.

The oracle is FastAPI itself: the same route with its fast path declining everything is FastAPI's
own handler of the endpoint; it answers the same requests, and every 4xx must be byte for byte the
same (status, ``WWW-Authenticate``, body).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.requests import Request

from serving.app import create_app
from serving.audit import score_audit
from serving.routes import score as score_route
from serving.schemas import Declaration

from .serving_world import make_keys


@contextlib.contextmanager
def _fastapi_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The route with its fast path declining everything: FastAPI's own handler answers."""

    async def decline(request: Request) -> None:
        return None

    with monkeypatch.context() as m:
        m.setattr(score_route, "fast_inputs", decline)
        yield


@pytest.fixture()
def both(world: Any, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient, dict, dict]]:
    """Two apps of the same model and snapshot, each with its own audit DB and keys: the
    first answers as shipped, the second is the reference (used under :func:`_fastapi_only`)."""
    # The key cache on, as shipped (the suite's default of 0 s would send every request to
    # FastAPI's path: the fast path takes cached keys only).
    fast_settings = world.settings(tmp_path / "fast.db", key_cache_seconds=60.0)
    plain_settings = world.settings(tmp_path / "plain.db", key_cache_seconds=60.0)
    fast_keys, plain_keys = make_keys(fast_settings), make_keys(plain_settings)
    with TestClient(create_app(fast_settings)) as fast, \
            TestClient(create_app(plain_settings)) as plain:  # fmt: skip
        yield fast, plain, fast_keys, plain_keys


def _request(app: Any, body: bytes, key: str | None, query: bytes = b"",
             content_type: bytes | None = b"application/json") -> Request:  # fmt: skip
    headers = [(b"host", b"testserver")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    if key is not None:
        headers.append((b"x-api-key", key.encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/score", "query_string": query,
             "headers": headers, "app": app}  # fmt: skip
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def _fast(client: TestClient, body: bytes, key: str | None, **kw: Any) -> Any:
    assert client.portal is not None  # inside the client's context
    return client.portal.call(score_route.fast_inputs, _request(client.app, body, key, **kw))


def _warm(client: TestClient, keys: dict, decl: Any) -> None:
    """One answered request per role, so each key is in the key cache."""
    for role in keys:
        client.post("/v1/score", json=decl(f"warm-{role}"), headers={"X-API-Key": keys[role]})


def test_what_the_fast_path_takes_it_reads_as_fastapi_does(both, decl) -> None:
    fast, _, keys, _ = both
    _warm(fast, keys, decl)
    bodies = [
        decl("plain"),
        decl(
            "bad-optionals",
            net_weight_kg=0,
            transport_mode="teleport",
            quantity="lots",
            destination_country="Q9",
            legal_inspection="maybe",
        ),  # fmt: skip
        decl("attrs", attributes={"tax_rate": "n/a", "grade": "A", "lot": 3}),
        decl("nulls", declarant_id=None, transport_mode=None, net_weight_kg=None),
        decl("dup-then-last", hs_code="0301890000"),
    ]
    texts = [json.dumps(b).encode() for b in bodies]
    # Duplicate keys: json.loads keeps the last one, so must the fast path.
    texts.append(texts[0][:-1] + b', "enterprise_id": "E0099"}')
    texts.append(b"  \n" + json.dumps(bodies[0], indent=2).encode() + b"\n")
    for text in texts:
        got = _fast(fast, text, keys["inspector"], query=b"explain=full&top_k=7")
        assert got is not None, text
        declaration, key, scorer, explain, top_k = got
        want = Declaration.model_validate(json.loads(text))  # what FastAPI's handler does
        assert declaration.model_dump() == want.model_dump()
        assert declaration.data_quality == want.data_quality
        assert declaration.as_received() == want.as_received()
        assert (key.role, explain, top_k) == ("inspector", "full", 7)
        assert scorer is fast.app.state.models.current
    assert _fast(fast, texts[0], keys["admin"]) is not None  # admin passes every role check
    got = _fast(fast, texts[0], keys["inspector"], content_type=b"Application/JSON; charset=utf-8")
    assert got is not None and got[3:] == ("top", 5)


def test_anything_not_well_formed_is_left_to_fastapi(both, decl) -> None:
    fast, _, keys, _ = both
    good = json.dumps(decl("good")).encode()
    inspector = keys["inspector"]
    # A valid key not yet in the cache: FastAPI's dependency looks it up (in a thread).
    assert _fast(fast, good, inspector) is None
    _warm(fast, keys, decl)
    assert _fast(fast, good, inspector) is not None
    declined: list[tuple[bytes, str | None, dict[str, Any]]] = [
        (good, None, {}),
        (good, "", {}),
        (good, "gmk_" + "x" * 40, {}),
        (good, keys["committee"], {}),
        (good, inspector, {"query": b"top_k=1001"}),
        (good, inspector, {"query": b"top_k=-1"}),
        (good, inspector, {"query": b"top_k=05"}),
        (good, inspector, {"query": b"top_k=five"}),
        (good, inspector, {"query": b"top_k=3&top_k=4"}),
        (good, inspector, {"query": b"explain=all"}),
        (good, inspector, {"query": b"explain="}),
        (good, inspector, {"query": b"debug=1"}),
        (good, inspector, {"content_type": None}),
        (good, inspector, {"content_type": b"text/plain"}),
        (good, inspector, {"content_type": b"application/vnd.api+json"}),
        (b"", inspector, {}),
        (b"\xef\xbb\xbf" + good, inspector, {}),  # json.loads reads a BOM; FastAPI answers
        (json.dumps(decl("u16")).encode("utf-16"), inspector, {}),
        (good[:-1], inspector, {}),
        (good + b" x", inspector, {}),
        (b"[]", inspector, {}),
        (json.dumps(decl("extra", colour="red")).encode(), inspector, {}),
        (
            json.dumps({k: v for k, v in decl("m").items() if k != "hs_code"}).encode(),
            inspector,
            {},
        ),  # fmt: skip
        (json.dumps(decl("cc", origin_country="Q9")).encode(), inspector, {}),
    ]
    for body, key, kw in declined:
        assert _fast(fast, body, key, **kw) is None, (body[:40], key and key[:8], kw)
    models = fast.app.state.models
    current, models.current = models.current, None
    try:
        assert _fast(fast, good, inspector) is None  # FastAPI's dependency answers 503
    finally:
        models.current = current


def _bad_requests(decl: Any) -> list[tuple[str, bytes, dict[str, str], str | None]]:
    """(query, body, headers, role of the key) of requests that must get a 4xx."""
    good = json.dumps(decl("good")).encode()
    missing = json.dumps({k: v for k, v in decl("m").items() if k != "hs_code"}).encode()
    j = {"content-type": "application/json"}
    return [
        ("", good, j, None),
        ("", good, j, "committee"),
        ("", good, {**j, "X-API-Key": "gmk_" + "y" * 40}, None),
        ("", missing, j, None),  # no key and a bad body: the answer FastAPI gives today
        ("", b'{"declaration_id": ', j, "inspector"),
        ("", b"\xef\xbb\xbf" + b'{"declaration_id": "x"}', j, "inspector"),
        ("", b"", j, "inspector"),
        ("", b"[1, 2]", j, "inspector"),
        ("", good, {"content-type": "text/plain"}, "inspector"),
        ("", good, {}, "inspector"),
        ("", missing, j, "inspector"),
        ("", json.dumps(decl("x", colour="red", declared_value=-1)).encode(), j, "inspector"),
        ("", json.dumps(decl("c", origin_country="Q9", hs_code="12")).encode(), j, "inspector"),
        ("", json.dumps(decl("t", declared_at="2026-12-02T08:00:00")).encode(), j, "inspector"),
        ("top_k=1001", good, j, "inspector"),
        ("top_k=abc&explain=all", missing, j, "inspector"),  # query and body errors together
        ("explain=full&explain=nope", good, j, "inspector"),
    ]


def test_every_4xx_is_fastapis_own(both, decl, monkeypatch) -> None:
    fast, plain, fast_keys, plain_keys = both
    _warm(fast, fast_keys, decl)
    _warm(plain, plain_keys, decl)
    for query, body, headers, role in _bad_requests(decl):
        answers = []
        for client, keys in ((fast, fast_keys), (plain, plain_keys)):
            h = dict(headers)
            if role is not None:
                h["X-API-Key"] = keys[role]
            with _fastapi_only(monkeypatch) if client is plain else contextlib.nullcontext():
                r = client.post("/v1/score?" + query, content=body, headers=h)
            answers.append((r.status_code, r.headers.get("www-authenticate"), r.content))
        assert 400 <= answers[0][0] < 500, (query, body[:60], answers[0])
        assert answers[0] == answers[1], (query, body[:60], role)


def test_the_fast_answer_is_fastapis_answer(both, decl, monkeypatch) -> None:
    """The same request to both apps (same model and snapshot), the first on the fast path (it
    is taken: counted), the second through FastAPI's handler: the same answer and audit row but
    for the request id."""
    fast, plain, fast_keys, plain_keys = both
    body = decl("same", net_weight_kg=0, attributes={"grade": "A"})
    taken: list[bool] = []
    real = score_route.fast_inputs

    async def counted(request: Request) -> Any:
        inputs = await real(request)
        taken.append(inputs is not None)
        return inputs

    def post(client: TestClient, keys: dict) -> dict:
        r = client.post("/v1/score?explain=full&top_k=4", json=body,
                        headers={"X-API-Key": keys["inspector"]})  # fmt: skip
        assert r.status_code == 200, r.text
        return {k: v for k, v in r.json().items() if k != "request_id"}

    _warm(fast, fast_keys, decl)
    _warm(plain, plain_keys, decl)
    with monkeypatch.context() as m:
        m.setattr(score_route, "fast_inputs", counted)
        fast_out = post(fast, fast_keys)
    with _fastapi_only(monkeypatch):
        plain_out = post(plain, plain_keys)
    assert taken == [True]
    assert fast_out == plain_out
    assert fast_out["data_quality"] and len(fast_out["reasons"]) == 4
    audit = sa.select(score_audit.c.input_sha256, score_audit.c.declaration_json,
                      score_audit.c.data_quality, score_audit.c.probability,
                      score_audit.c.decision).where(score_audit.c.declaration_id == "Qsame")  # fmt: skip
    rows = []
    for client in (fast, plain):
        with client.app.state.engine.connect() as conn:
            rows.append(conn.execute(audit).all())
    assert len(rows[0]) == 1 and rows[0] == rows[1]
