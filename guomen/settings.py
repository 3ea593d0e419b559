"""One typed settings object for every guomen process (env prefix ``GUOMEN_``).

Validated at start-up; nothing reads the environment anywhere else.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_FIELDS = ("monitoring_secret", "measure_secret", "session_secret")
MIN_SECRET_LENGTH = 16
# Values that were ever shipped as defaults: anyone can read them, so they never count as set.
KNOWN_DEFAULT_SECRETS = frozenset({"change-me-monitoring-secret"})


class MissingSecret(ValueError):
    """A secret needed to serve is missing or unusable; the message names the variables."""


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``GUOMEN_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GUOMEN_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path("."), description="project root holding models/ and mlruns/")
    store_dir: Path = Field(default=Path("data/store"), description="the ingested Parquet store")
    timezone: str = Field(
        default="Asia/Shanghai", description="local time of timestamps without offset"
    )
    rates_file: Path | None = Field(
        default=None, description="currency rate table (CSV); default ships"
    )
    database_url: str = Field(
        default="sqlite:///data/guomen.db",
        description="SQLAlchemy URL for audit log, keys, warnings and profiles",
    )
    mlflow_tracking_uri: str = Field(default="sqlite:///mlruns/mlflow.db")
    mlflow_artifact_root: Path = Field(default=Path("mlruns/artifacts"))
    model_name: str = Field(default="guomen-risk", description="registered model name in MLflow")
    models_dir: Path = Field(default=Path("models"), description="where model bundles are written")
    backtests_dir: Path = Field(
        default=Path("backtests"), description="guomen backtest runs (the committee lists them)"
    )
    # Three independent secrets (no default: `guomen serve` refuses to start without them;
    # `guomen up` generates them once per install in data/secrets.env).
    monitoring_secret: SecretStr | None = Field(
        default=None, description="HMAC key selecting the random monitoring share"
    )
    measure_secret: SecretStr | None = Field(
        default=None, description="HMAC key of the warning measures' raised-rate draws"
    )
    session_secret: SecretStr | None = Field(
        default=None, description="signing key of the committee pages' session cookies"
    )
    session_idle_minutes: float = Field(
        default=30.0, gt=0, description="a committee session ends after this long unused"
    )
    session_max_hours: float = Field(
        default=8.0, gt=0, description="a committee session ends this long after sign-in"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    max_batch: int = Field(
        default=1000, ge=1, le=100_000, description="declarations per batch request"
    )
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    reload_poll_seconds: float = Field(default=10.0, gt=0)
    # Serving (issue 5).
    model_alias: str = Field(default="champion", description="registry alias the API serves")
    snapshot_dir: Path = Field(default=Path("data/snapshot"), description="online feature snapshot")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        default="NORMAL",
        description="SQLite WAL sync: NORMAL survives a process crash, FULL also a power cut",
    )
    snapshot_sync_seconds: float = Field(
        default=1.0,
        gt=0,
        description="how often a worker applies the scores and results other workers stored",
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="how long a checked API key is trusted before the DB is asked again",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _resolve_against_home(self) -> Settings:
        """Every relative path and SQLite URL is taken relative to ``home``, once, here.

        So ``GUOMEN_HOME=/srv/guomen`` moves the store, the snapshot, the models, the MLflow
        store and the database together; code below the CLI reads resolved values only.
        """
        home = self.home.expanduser()
        self.home = home
        for name in ("store_dir", "snapshot_dir", "models_dir", "mlflow_artifact_root",
                     "backtests_dir"):  # fmt: skip
            setattr(self, name, resolve_path(home, getattr(self, name)))
        if self.rates_file is not None:
            self.rates_file = resolve_path(home, self.rates_file)
        self.database_url = resolve_sqlite_url(home, self.database_url)
        self.mlflow_tracking_uri = resolve_sqlite_url(home, self.mlflow_tracking_uri)
        return self

    def require_secrets(self) -> None:
        """Raise :class:`MissingSecret` naming every secret that is unset, too short, a known
        default, or equal to another one. Called before serving."""
        problems = []
        seen: dict[str, str] = {}
        for name in SECRET_FIELDS:
            var = f"GUOMEN_{name.upper()}"
            raw = getattr(self, name)
            value = raw.get_secret_value() if raw is not None else ""
            if not value:
                problems.append(f"{var} is not set")
            elif value in KNOWN_DEFAULT_SECRETS:
                problems.append(f"{var} is a published default value")
            elif len(value) < MIN_SECRET_LENGTH:
                problems.append(f"{var} is shorter than {MIN_SECRET_LENGTH} characters")
            elif value in seen:
                problems.append(f"{var} equals {seen[value]}: each secret must be separate")
            else:
                seen[value] = var
        if problems:
            raise MissingSecret(
                "; ".join(problems) + ". Generate each with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'` "
                "(`guomen up` writes them to data/secrets.env for the demo)."
            )

    def secret(self, name: str) -> str:
        """The value of a secret field (after :meth:`require_secrets`)."""
        raw = getattr(self, name)
        if raw is None:
            raise MissingSecret(f"GUOMEN_{name.upper()} is not set")
        return str(raw.get_secret_value())

    @property
    def data_dir(self) -> Path:
        """Where the demo writes its data, keys and secrets (``home/data``)."""
        return self.home / "data"


def resolve_path(home: Path, path: Path) -> Path:
    """``path`` itself when absolute, else ``home / path``."""
    path = path.expanduser()
    return path if path.is_absolute() else home / path


def resolve_sqlite_url(home: Path, url: str) -> str:
    """A relative SQLite URL (``sqlite:///data/x.db``) made relative to ``home``.

    Absolute SQLite URLs (``sqlite:////abs/x.db``), in-memory ones and other databases are
    returned unchanged.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return url
    rest = url[len(prefix) :]
    if not rest or rest.startswith("/") or rest.startswith(":memory:"):
        return url
    path, sep, query = rest.partition("?")
    return f"{prefix}{resolve_path(home, Path(path))}{sep}{query}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated once."""
    return Settings()


def ensure_demo_secrets(path: Path) -> Path:
    """Generate this install's serving secrets once (mode 600) and put them in the environment.

    A secret already set in the environment wins and is not written; the file is never
    rewritten, so re-running ``guomen up`` keeps sessions and draws stable. The cached
    :func:`get_settings` is cleared so the served settings read the secrets just set.
    """
    import os
    import secrets

    from features.files import write_private_text

    names = [f"GUOMEN_{field.upper()}" for field in SECRET_FIELDS]
    stored: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and name in names:
                stored[name] = value
    missing = [n for n in names if n not in stored and not os.environ.get(n)]
    if missing:
        stored.update({n: secrets.token_urlsafe(32) for n in missing})
        write_private_text(path, "".join(f"{n}={stored[n]}\n" for n in names if n in stored))
    if path.exists():
        os.chmod(path, 0o600)  # also when an older copy was made with a looser mode
    for name, value in stored.items():
        os.environ.setdefault(name, value)
    get_settings.cache_clear()
    return path
