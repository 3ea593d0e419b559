"""Oversized bodies and headers are refused with a 4xx, never a 5xx or a hang, on a real
uvicorn server (issue 11, item 6)."""

from __future__ import annotations

import contextlib
import socket

import httpx
import pytest

from serving.app import create_app
from tests.live import LiveServer
from tests.serving.serving_world import make_keys

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def live(world, tmp_path_factory):
    settings = world.settings(tmp_path_factory.mktemp("big") / "big.db", max_body_bytes=LIMIT)
    keys = make_keys(settings)
    with LiveServer(create_app(settings)) as server:
        server.wait_ready()
        yield server, keys


def _raw(port: int, request: bytes) -> int:
    """Send raw bytes; the status code of the answer (0 when the server just closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    return int(data.split()[1]) if data.startswith(b"HTTP/") else 0


@pytest.mark.parametrize("url", ["/v1/score", "/v1/score/batch", "/v1/inspections",
                                 "/v1/warnings/manual", "/committee/login"])  # fmt: skip
def test_a_body_over_the_limit_is_a_413(live, url):
    server, keys = live
    headers = {"X-API-Key": keys["admin"], "content-type": "application/json"}
    big = b'{"x": "' + b"a" * (LIMIT * 2) + b'"}'
    r = httpx.post(server.url + url, content=big, headers=headers, timeout=60)
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"

    def chunks():
        for _ in range(40):
            yield b"a" * 4096

    r = httpx.post(server.url + url, content=chunks(), headers=headers, timeout=60)
    assert r.status_code == 413


def test_huge_or_many_headers_are_a_4xx_or_a_closed_connection(live):
    server, keys = live
    for header in (b"X-Big: " + b"a" * 200_000 + b"\r\n",
                   b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)),
                   b"X-API-Key: " + b"gmk_" + b"A" * 100_000 + b"\r\n"):  # fmt: skip
        status = _raw(server.port, b"GET /v1/warnings HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
        assert status == 0 or 400 <= status < 500, status
    # the server is still fine afterwards
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_an_api_key_of_any_size_or_charset_is_a_401(live):
    server, _ = live
    for key in ("gmk_" + "A" * 5000, "gmk_\u00e9\u00e8", "", " ", "gmk_" + "%00" * 10):
        try:
            r = httpx.get(server.url + "/v1/warnings", headers={"X-API-Key": key.encode("utf-8")})
        except httpx.LocalProtocolError:
            continue  # the client refuses to send it: nothing to check
        assert r.status_code == 401, (key[:20], r.status_code)
