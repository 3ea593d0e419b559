import pytest
from pydantic import ValidationError

from guomen.settings import Settings


def test_env_prefix_and_types(monkeypatch):
    monkeypatch.setenv("GUOMEN_PORT", "8123")
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Europe/Berlin")
    s = Settings()
    assert s.port == 8123 and s.timezone == "Europe/Berlin"


def test_invalid_values_fail_at_start_up(monkeypatch):
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="timezone"):
        Settings()
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("GUOMEN_PORT", "99999")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_secret_is_not_printed():
    s = Settings(monitoring_secret="s3cret-value")
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s.model_dump())
