"""Committee page latency in the ``guomen up`` state: every page kind, p50 and p95.

Run: ``.venv/bin/python benchmarks/bench_pages.py --declarations 200000`` (makes the state with
``guomen up --no-serve`` in ``benchmarks/work/pages-N/`` unless it exists, then serves it with
``guomen serve`` on a free port and signs in as the committee). Each page kind is requested
``--repeats`` times over several instances (different warnings, declarations, enterprises); the
first view of each instance is reported apart (the landing page's first view is taken by the
sign-in, outside the figures; the point-in-time rows are built by ``guomen up``,
the aggregated SHAP reasons of a warning are computed on its first view and cached).
Writes ``benchmarks/results/pages.json`` and ``pages.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GUOMEN = str(Path(sys.executable).with_name("guomen"))
TARGET_MS = 300.0


def _load() -> float:
    return os.getloadavg()[0]


def _env_file(path: Path) -> dict[str, str]:
    return {n: v for n, s, v in (ln.partition("=") for ln in path.read_text().splitlines()) if s}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_state(home: Path, declarations: int, env: dict[str, str]) -> float:
    """``guomen up --no-serve`` in ``home`` (skipped when done before); returns seconds."""
    if (home / "data" / "demo-keys.env").exists():
        return 0.0
    home.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with (home / "up.log").open("w") as log:
        subprocess.run([GUOMEN, "up", "--declarations", str(declarations), "--no-serve"],
                       cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)  # fmt: skip
    return time.perf_counter() - t0


def sign_in(client: httpx.Client, key: str) -> None:
    form = client.get("/committee/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, "no CSRF token on the login form"
    r = client.post("/committee/login", data={"api_key": key, "csrf": token.group(1),
                                              "next": "/committee"})  # fmt: skip
    assert r.status_code == 303 and "login" not in r.headers.get("location", ""), r.text[:300]


def links(html: str, prefix: str) -> list[str]:
    return sorted(set(re.findall(rf'href="({re.escape(prefix)}[^"?#]+)"', html)))


def timed(client: httpx.Client, path: str) -> float:
    t0 = time.perf_counter()
    r = client.get(path)
    ms = (time.perf_counter() - t0) * 1000
    assert r.status_code == 200 and "text/html" in r.headers["content-type"], (path, r.status_code)
    return ms


def run(declarations: int, repeats: int) -> dict[str, Any]:
    home = ROOT / "benchmarks" / "work" / f"pages-{declarations}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUOMEN_")}
    env["GUOMEN_HOME"] = str(home)
    load_before = _load()
    up_s = make_state(home, declarations, env)
    keys = _env_file(home / "data" / "demo-keys.env")
    env.update(_env_file(home / "data" / "secrets.env"))
    port = _free_port()
    log = (home / "serve.log").open("w")
    server = subprocess.Popen([GUOMEN, "serve", "--port", str(port), "--workers", "1"], cwd=home,
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "server not ready"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        client = httpx.Client(base_url=base, timeout=120, follow_redirects=False)
        sign_in(client, keys["COMMITTEE_KEY"])
        landing = client.get("/committee").text
        warnings_html = client.get("/committee/warnings").text
        warnings = links(warnings_html, "/committee/warnings/W")[:8]
        decl_links: list[str] = []
        ent_links: list[str] = []
        for w in warnings[:4]:
            decl_links += links(client.get(w).text, "/committee/declarations/")
        for p in sorted(set(decl_links))[:8]:
            ent_links += links(client.get(p).text, "/committee/enterprises/")
        with sqlite3.connect(home / "data" / "guomen.db") as db:
            api_scored = [r[0] for r in db.execute(
                "SELECT declaration_id FROM score_audit ORDER BY id LIMIT 4")]  # fmt: skip
        kinds: dict[str, list[str]] = {
            "landing": ["/committee"],
            "warnings list": ["/committee/warnings", "/committee/warnings?status=active"],
            "warning detail": warnings,
            "model card": ["/committee/model"],
            "declaration (store, re-explained)": sorted(set(decl_links))[:8],
            "enterprise": sorted(set(ent_links))[:8],
            "search": ["/committee/search?q=" + p.rsplit("/", 1)[-1] for p in ent_links[:4]],
        }
        if api_scored:
            kinds["declaration (API, as answered)"] = [
                f"/committee/declarations/{d}" for d in api_scored
            ]
        out: dict[str, Any] = {}
        for kind, paths in kinds.items():
            if not paths:
                continue
            first = [timed(client, p) for p in paths]
            warm = [timed(client, paths[i % len(paths)]) for i in range(repeats)]
            out[kind] = {
                "instances": len(paths),
                "first_view_ms_max": float(max(first)),
                "p50_ms": float(np.percentile(warm, 50)),
                "p95_ms": float(np.percentile(warm, 95)),
                "requests": len(warm),
            }
        assert landing and warnings_html
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "declarations": declarations,
        "nproc": os.cpu_count(),
        "load_before": load_before,
        "load_after": _load(),
        "guomen_up_s": up_s,
        "target_p95_ms": TARGET_MS,
        "pages": out,
    }


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"# Committee page latency ({r['declarations']:,} declarations, `guomen up` state)",
        "",
        f"{r['date']}, nproc={r['nproc']}; load average {r['load_before']:.1f} before, "
        f"{r['load_after']:.1f} after (shared machine). One uvicorn worker, one client, "
        f"signed-in session; wall-clock per request including HTTP. Target: p95 ≤ "
        f"{r['target_p95_ms']:.0f} ms.",
        "",
        "| page | instances | first view, slowest ms | p50 ms | p95 ms | p95 ≤ target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, m in r["pages"].items():
        ok = "yes" if m["p95_ms"] <= r["target_p95_ms"] else "**no**"
        lines.append(f"| {kind} | {m['instances']} | {m['first_view_ms_max']:.0f} | "
                     f"{m['p50_ms']:.0f} | {m['p95_ms']:.0f} | {ok} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--declarations", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    report = run(args.declarations, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pages.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "pages.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
