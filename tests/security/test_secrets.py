"""Secrets: no default, no sharing, refused at start-up by name; the demo generates its own once
(issue 11, item 1)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from guomen.settings import MissingSecret, Settings
from serving.decisions import decide
from tests.serving.serving_world import TEST_SECRETS

ROOT = Path(__file__).resolve().parents[2]
GUOMEN = ROOT / ".venv" / "bin" / "guomen"


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUOMEN_")}
    env["GUOMEN_HOME"] = str(home)
    return env


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"monitoring_secret": None}, "GUOMEN_MONITORING_SECRET is not set"),
        ({"measure_secret": ""}, "GUOMEN_MEASURE_SECRET is not set"),
        ({"monitoring_secret": "change-me-monitoring-secret"}, "GUOMEN_MONITORING_SECRET is a published default"),
        ({"session_secret": "short"}, "GUOMEN_SESSION_SECRET is shorter"),
        ({"session_secret": TEST_SECRETS["monitoring_secret"]}, "GUOMEN_SESSION_SECRET equals GUOMEN_MONITORING_SECRET"),
    ],
)  # fmt: skip
def test_unusable_secrets_are_named(overrides, named):
    with pytest.raises(MissingSecret, match=named):
        Settings(**{**TEST_SECRETS, **overrides}).require_secrets()


def test_secrets_never_print():
    s = Settings(**TEST_SECRETS)
    s.require_secrets()
    for value in TEST_SECRETS.values():
        assert value not in repr(s) and value not in str(s.model_dump())


def test_the_app_refuses_to_build_without_secrets(tmp_path):
    from serving.app import create_app

    with pytest.raises(MissingSecret, match="GUOMEN_SESSION_SECRET"):
        create_app(Settings(home=tmp_path, **{**TEST_SECRETS, "session_secret": None}))


def test_guomen_serve_refuses_to_start_without_secrets(tmp_path):
    env = _clean_env(tmp_path)
    env["GUOMEN_MONITORING_SECRET"] = "change-me-monitoring-secret"
    env["GUOMEN_PORT"] = "1"  # never reached: it must refuse before binding
    r = subprocess.run([str(GUOMEN), "serve"], env=env, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "GUOMEN_MONITORING_SECRET is a published default" in r.stderr
    assert "GUOMEN_MEASURE_SECRET is not set" in r.stderr
    assert "GUOMEN_SESSION_SECRET is not set" in r.stderr
    assert "change-me-monitoring-secret" not in r.stderr.replace("is a published default", "")


def test_the_demo_generates_its_secrets_once_with_mode_600(tmp_path, monkeypatch):
    from guomen.settings import SECRET_FIELDS, ensure_demo_secrets, get_settings

    monkeypatch.setenv("GUOMEN_HOME", str(tmp_path))
    path = tmp_path / "data" / "secrets.env"
    for field in SECRET_FIELDS:
        # set then delete: monkeypatch then restores the variables `ensure_demo_secrets` exports
        monkeypatch.setenv(f"GUOMEN_{field.upper()}", "")
        monkeypatch.delenv(f"GUOMEN_{field.upper()}")
    ensure_demo_secrets(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert len(first.splitlines()) == 3
    get_settings().require_secrets()  # what `guomen serve` at the end of `up` then checks
    for field in SECRET_FIELDS:
        monkeypatch.delenv(f"GUOMEN_{field.upper()}")
    ensure_demo_secrets(path)  # a second `guomen up`: the same secrets
    assert path.read_text() == first
    get_settings.cache_clear()


def test_measure_draws_use_their_own_secret():
    """Knowing the monitoring secret does not predict the raised-rate measure draws."""
    from policy.monitoring import monitoring_draw

    class Raised:
        warning_id = "W1"
        mode = "raised"
        rate = 0.5

        def matches(self, row):
            return True

    ids = [f"D{i}" for i in range(400)]

    def picks(**secrets):
        return [bool(decide({"declaration_id": i}, "low", credit_rating=None,
                            measures=[Raised()], monitoring_share=0.0, **secrets).warnings)
                for i in ids]  # fmt: skip

    got = picks(secret="monitoring-secret-value", measure_secret="measure-secret-value")
    assert got == [monitoring_draw(f"W1\x1f{i}", "measure-secret-value") < 0.5 for i in ids]
    assert got != [monitoring_draw(f"W1\x1f{i}", "monitoring-secret-value") < 0.5 for i in ids]


def test_the_demo_key_file_is_owner_only_and_sourceable(tmp_path):
    import subprocess

    from serving.auth import write_key_file

    path = tmp_path / "data" / "demo-keys.env"
    write_key_file(path, {"inspector": "gmk_a-b_c", "committee": "gmk_d"})
    assert path.stat().st_mode & 0o777 == 0o600
    shown = subprocess.run(
        ["bash", "-c", f"set -a; source {path}; echo $INSPECTOR_KEY $COMMITTEE_KEY"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert shown.split() == ["gmk_a-b_c", "gmk_d"]
