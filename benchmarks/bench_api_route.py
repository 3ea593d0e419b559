"""What the route part of ``POST /v1/score`` costs, piece by piece (issue 14, part 1).

In process, no sockets: one app with the API's own middleware stack (``install_hardening``,
the metrics middleware) and the real key store (SQLite), whose endpoints stop at successive
points of the request path and answer at once. Per endpoint: the event loop thread's CPU time
per request (``thread_time``), the best and the median of ``--rounds`` rounds of ``--requests``
requests, the order reversed every round. The endpoints:

* ``stack``: nothing (middleware, routing, the response);
* ``validate_json``: + ``Declaration.model_validate_json`` of the body bytes;
* ``fastapi_body``: the body as a FastAPI parameter (``declaration: Declaration``);
* ``fastapi_signature``: the route's full signature through FastAPI (body, the key and model
  dependencies, ``explain`` and ``top_k``): the route before the fast path;
* ``fast_path``: the shipped route's :func:`serving.routes.score.fast_inputs`.

The scorer is not loaded (``app.state.models.current`` is a placeholder the route only tests for
``None``): what is measured ends where scoring starts.

Run::

    .venv/bin/python benchmarks/bench_api_route.py [--requests 1000 --rounds 7]

Writes ``benchmarks/results/api_route.{json,md}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Response

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

from serving.app import install_hardening  # noqa: E402
from serving.auth import InspectorKey, KeyStore, create_key  # noqa: E402
from serving.db import create_schema, make_engine  # noqa: E402
from serving.deps import CurrentScorer  # noqa: E402
from serving.metrics import Metrics, MetricsMiddleware  # noqa: E402
from serving.routes.score import fast_inputs  # noqa: E402
from serving.schemas import Declaration  # noqa: E402

Explain = Annotated[Literal["top", "full"], Query()]
TopK = Annotated[int, Query(ge=0, le=1000)]
_OK = b"{}"


def build_app(engine: Any) -> FastAPI:
    """The endpoints above on the API's middleware stack."""
    app = FastAPI()
    app.state.keys = KeyStore(engine, cache_seconds=3600.0)
    app.state.models = SimpleNamespace(current=object())

    def ok() -> Response:
        return Response(_OK, media_type="application/json")

    @app.post("/stack")
    async def stack(request: Request) -> Response:
        return ok()

    @app.post("/validate_json")
    async def validate_json(request: Request) -> Response:
        Declaration.model_validate_json(await request.body())
        return ok()

    @app.post("/fastapi_body")
    async def fastapi_body(request: Request, declaration: Declaration) -> Response:
        return ok()

    @app.post("/fastapi_signature")
    async def fastapi_signature(
        request: Request,
        declaration: Declaration,
        key: InspectorKey,
        scorer: CurrentScorer,
        explain: Explain = "top",
        top_k: TopK = 5,
    ) -> Response:
        return ok()

    @app.post("/fast_path")
    async def fast_path(request: Request) -> Response:
        assert await fast_inputs(request) is not None
        return ok()

    install_hardening(app, 1 << 20)
    app.add_middleware(MetricsMiddleware, metrics=Metrics())
    return app


def body() -> bytes:
    """The schema's example declaration, declared a minute ago."""
    extra: Any = Declaration.model_config["json_schema_extra"]
    example = dict(extra["examples"][0])
    example["declared_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return json.dumps(example).encode()


async def call(app: FastAPI, path: str, payload: bytes, key: bytes, query: bytes) -> None:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                    (b"x-api-key", key), (b"content-length", str(len(payload)).encode())],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": payload, "more_body": False}]
    status: list[int] = []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)  # the client never leaves
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    assert status == [200], (path, status)


async def measure(app: FastAPI, key: str, requests: int, rounds: int) -> dict[str, list[float]]:
    paths = ["stack", "validate_json", "fastapi_body", "fastapi_signature", "fast_path"]
    payload, raw_key, query = body(), key.encode(), b"explain=top&top_k=5"
    for path in paths:  # warm-up: imports, caches, the key looked up once
        for _ in range(100):
            await call(app, "/" + path, payload, raw_key, query)
    out: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(rounds):
        for path in paths if r % 2 == 0 else paths[::-1]:
            t0 = time.thread_time()
            for _ in range(requests):
                await call(app, "/" + path, payload, raw_key, query)
            out[path].append((time.thread_time() - t0) / requests * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stem", default="api_route")
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/keys.db")
        create_schema(engine)
        key, _ = create_key(engine, "inspector")
        runs = asyncio.run(measure(build_app(engine), key, args.requests, args.rounds))
        engine.dispose()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(ROOT),
        "requests": args.requests,
        "rounds": args.rounds,
        "loadavg": [load0, os.getloadavg()[0]],
        "cpu_us": {
            p: {"best": min(v), "median": statistics.median(v), "rounds": v}
            for p, v in runs.items()
        },
    }
    lines = [
        f"# The route part of POST /v1/score, in process ({report['date']}, commit "
        f"{report['commit']})",
        "",
        f"Event loop CPU per request, {args.rounds} rounds of {args.requests:,} requests, "
        f"load average {load0:.1f} -> {report['loadavg'][1]:.1f}.",
        "",
        "| endpoint | best us | median us |",
        "|---|---:|---:|",
        *(f"| {p} | {v['best']:.0f} | {v['median']:.0f} |" for p, v in report["cpu_us"].items()),
        "",
        "Run: `.venv/bin/python benchmarks/bench_api_route.py --help`.",
    ]
    out = ROOT / "benchmarks" / "results"
    (out / f"{args.stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
