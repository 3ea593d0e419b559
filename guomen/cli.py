"""The ``guomen`` command line: one entry point, one subcommand per step.

Commands only parse arguments, read ``Settings`` and call the owning package; heavy imports
happen inside each command so ``guomen --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from guomen.settings import get_settings

if TYPE_CHECKING:
    from features.progress import Progress

app = typer.Typer(
    help="guomen (国门): risk scoring for import/export commodity quality-safety supervision.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
features_app = typer.Typer(help="Inspect and build the declared features.", no_args_is_help=True)
app.add_typer(features_app, name="features")


# --- progress: the one place long work is drawn (features.progress.Progress) ----------------


class _ProgressBar:
    """A rich progress bar fed by :class:`features.progress.Progress` calls.

    Named steps (``bar(step)``) advance one bar of ``total`` steps, a step counted done when the
    next one starts; counted calls (``bar(step, done, total)``) set the bar to ``done`` of
    ``total``. A finished bar stays on screen and the next counted stage gets its own (rescoring's
    features, score, profiles, publish).
    """

    def __init__(self, total: int | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._total = total
        self._task: Any = None
        self._finished = False  # the counted bar reached its total

    def __enter__(self) -> _ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, step: str, /, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            if self._task is None:
                self._task = self._bar.add_task(step, total=self._total)
            else:
                self._bar.advance(self._task)
            self._bar.update(self._task, description=step)
            return
        if self._task is None or self._finished:
            self._task = self._bar.add_task(step, total=total)
        self._bar.update(self._task, description=step, completed=done, total=total)
        self._finished = total is not None and done >= total

    def finish(self) -> None:
        """Fill the bar of named steps (the last step is done)."""
        if self._task is not None:
            self._bar.update(self._task, completed=self._total, description="done")


def _progress_lines(prefix: str = "") -> Progress:
    """A :class:`features.progress.Progress` printing a line per call, with seconds elapsed."""
    t0 = time.perf_counter()

    def say(step: str, /, done: int | None = None, total: int | None = None) -> None:
        count = f" ({done}/{total})" if total is not None else ""
        typer.echo(f"[{time.perf_counter() - t0:7.1f} s] {prefix}{step}{count}")

    return say


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="folder to write the contract tables into")],
    declarations: Annotated[int, typer.Option(help="number of declarations", min=100)] = 200_000,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same files")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
    world: Annotated[
        str, typer.Option(help="where the risk is planted (docs/demo-data.md): default, ...")
    ] = "default",
    signal_intensity: Annotated[
        float, typer.Option(help="multiplier of every risk-signal channel's rate (1 = today)")
    ] = 1.0,
    layout: Annotated[
        str,
        typer.Option(
            help="contract (the five tables) or flat (one foreign-layout CSV of inspected "
            "declarations, loaded with docs/examples/foreign_flat_mapping.yaml)"
        ),
    ] = "contract",
    unknown_values: Annotated[
        bool,
        typer.Option(
            help="flat layout: about 0.8 % of rows with Net Mass 0 or origin ZZ, as real "
            "exports have them (kept by ingest as data-quality issues)"
        ),
    ] = False,
) -> None:
    """Generate about three years of realistic demo trade in the data contract, plus a separate
    ground-truth folder (true probabilities, planted outbreaks) that no pipeline reads."""
    from demo.worlds import WORLD_NAMES

    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("--format must be parquet or csv")
    if world not in WORLD_NAMES:
        raise typer.BadParameter(f"--world must be one of {', '.join(WORLD_NAMES)}")
    if not signal_intensity > 0:
        raise typer.BadParameter("--signal-intensity must be a positive number")
    if layout == "flat":
        from demo.foreign import write_foreign_flat

        if signal_intensity != 1.0:
            raise typer.BadParameter("--signal-intensity: the flat layout has no risk signals")
        write_foreign_flat(out / "foreign_flat.csv", n=declarations, seed=seed, world=world,
                           truth=True, unknown_values=unknown_values)  # fmt: skip
        typer.echo(f"{'foreign_flat.csv':>16}: {declarations:>10,} rows")
        return
    if layout != "contract":
        raise typer.BadParameter("--layout must be contract or flat")
    if unknown_values:
        raise typer.BadParameter("--unknown-values: only for --layout flat")
    from demo.generate import write_demo_data

    with _ProgressBar() as bar:
        summary = write_demo_data(
            out,
            n_declarations=declarations,
            seed=seed,
            fmt=fmt,
            progress=bar,
            world=world,
            signal_intensity=signal_intensity,
        )
    for table, rows in summary.items():
        typer.echo(f"{table:>16}: {rows:>10,} rows")
    if world == "attribute":
        typer.echo("ingest with --mapping docs/examples/demo_attribute_mapping.yaml")


@app.command("ingest")
def ingest(
    source_dir: Annotated[Path, typer.Argument(help="folder of contract tables (CSV or Parquet)")],
    store: Annotated[Path | None, typer.Option(help="Parquet store to write or append to")] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping file for a foreign layout")
    ] = None,
    rates: Annotated[Path | None, typer.Option(help="currency rate table CSV")] = None,
    chunk_rows: Annotated[
        int,
        typer.Option(help="declarations checked this many rows at a time (bounds memory)", min=1),
    ] = 1_000_000,
) -> None:
    """Validate contract tables, quarantine bad rows with reasons, and append the rest to the
    store. Prints rows read = accepted + quarantined per table."""
    from features.ingest import FileLevelError
    from features.ingest import ingest as run_ingest

    settings = get_settings()
    try:
        with _ProgressBar() as bar:
            report = run_ingest(
                source_dir,
                store or settings.store_dir,
                mapping_file=mapping,
                rates_file=rates or settings.rates_file,
                timezone=settings.timezone,
                progress=bar,
                chunk_rows=chunk_rows,
            )
    except FileLevelError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    typer.echo(report.to_text())


@features_app.command("list")
def features_list(
    attributes: Annotated[
        Path | None, typer.Option(help="store whose mapping declared extra attributes")
    ] = None,
) -> None:
    """Print the declared feature table (name, entity, aggregation, window, descriptions)."""
    from features.registry import markdown_table

    attrs = None
    if attributes is not None:
        from features.store import Store

        attrs = Store(attributes).attributes
    typer.echo(markdown_table(attrs), nl=False)


@features_app.command("build")
def features_build(
    store: Annotated[Path, typer.Option(help="the ingested Parquet store")],
    out: Annotated[Path, typer.Option(help="Parquet file (or, partitioned, folder) to write")],
    partition_months: Annotated[
        int | None,
        typer.Option(
            help="out of core: build N UTC months at a time into the folder --out (docs/scale.md)",
            min=1,
        ),
    ] = None,
    entities: Annotated[
        str | None, typer.Option(help="history keys to build, comma-separated (default set)")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="with --partition-months: compute the partitions on this Dask scheduler"),
    ] = None,
    threads: Annotated[
        int, typer.Option(help="with --partition-months: partitions computed at once here", min=1)
    ] = 1,
) -> None:
    """Build point-in-time features for every declaration in the store (offline path)."""
    from features.build import build_offline, progress_steps
    from features.store import Store

    chosen = [e.strip() for e in entities.split(",") if e.strip()] if entities else None
    if scheduler is not None and partition_months is None:
        raise typer.BadParameter("--scheduler needs --partition-months", param_hint="--scheduler")
    if partition_months is not None:
        from features.partitioned import StoreSource, build_partitioned

        client = None
        if scheduler is not None:
            from distributed import Client

            client = Client(scheduler)
        try:
            built = build_partitioned(
                StoreSource(store.resolve()),
                out.resolve(),
                Store(store).attributes,
                entities=chosen,
                partition_months=partition_months,
                progress=_progress_lines("features: "),
                client=client,
                threads=threads,
            )
        finally:
            if client is not None:
                client.close()
        typer.echo(
            f"{built.rows:,} declarations x {len(built.feature_names)} features in "
            f"{len(built.partitions)} partitions -> {out}"
        )
        return
    st = Store(store)
    tables = st.tables()
    attrs = st.attributes
    with _ProgressBar(progress_steps(attrs, chosen)) as bar:
        frame = build_offline(tables, attrs, progress=bar, entities=chosen)
        bar.finish()
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    typer.echo(f"{len(frame):,} declarations x {frame.shape[1] - 3} features -> {out}")


warnings_app = typer.Typer(help="Risk warnings: propose, list, export.", no_args_is_help=True)
app.add_typer(warnings_app, name="warnings")


def _warning_store(config: Path | None) -> object:
    from policy.warnings import load_warning_config
    from serving.db import create_schema, make_engine
    from serving.warnings_store import WarningStore

    engine = make_engine(get_settings().database_url)
    create_schema(engine)
    return WarningStore(engine, load_warning_config(config))


@warnings_app.command("propose")
def warnings_propose(
    as_of: Annotated[str, typer.Option("--as-of", help="assessment date/time, ISO-8601")],
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    config: Annotated[
        Path | None, typer.Option(help="warning configuration YAML (policy/warning_config.yaml)")
    ] = None,
    notices_only: Annotated[
        bool,
        typer.Option(
            "--notices-only",
            help="the nightly check of reports: only early notices (run it every night, the "
            "full assessment every week; docs/warnings.md)",
        ),
    ] = False,
) -> None:
    """Assess every subject (enterprise, overseas party, HS4, origin, HS4 x origin) at --as-of
    and store new warning proposals for the committee."""
    import getpass

    import pandas as pd

    from features.store import Store
    from serving.plan_inputs import latest_scores, score_frame

    try:
        pd.Timestamp(as_of)
    except ValueError as exc:
        raise typer.BadParameter(f"--as-of: {exc}") from exc
    ws = _warning_store(config)
    settings = get_settings()
    tables = Store(store or settings.store_dir).tables()
    run = latest_scores(settings.data_dir)  # the model's scores, when a rescoring run left them
    made = ws.propose(  # type: ignore[attr-defined]
        tables, as_of, f"cli:{getpass.getuser()}", None if run is None else score_frame(run),
        notices_only=notices_only,
    )  # fmt: skip
    for w in made:
        typer.echo(f"{w['id']}  {w['level_name']:<10} {w['publication_type']}  {w['title']}")
    typer.echo(f"{len(made)} new proposal(s)")


@warnings_app.command("list")
def warnings_list(
    status: Annotated[
        str | None, typer.Option(help="proposed, approved, rejected, active, lifted")
    ] = None,
    level: Annotated[int | None, typer.Option(min=1, max=4, help="1 (Ⅰ red) .. 4 (Ⅳ blue)")] = None,
) -> None:
    """List warnings by level and status."""
    ws = _warning_store(None)
    rows = ws.list(status=status, level=level)  # type: ignore[attr-defined]
    for w in rows:
        typer.echo(
            f"{w['id']}  {w['status']:<9} {w['level_name']:<10} {w['publication_type']}  "
            f"{w['subject_label']}  as of {w['as_of'][:10]}"
        )
    typer.echo(f"{len(rows)} warning(s)")


@warnings_app.command("export")
def warnings_export(
    fmt: Annotated[str, typer.Option("--format", help="json or csv")] = "json",
    out: Annotated[Path | None, typer.Option(help="file to write (default: stdout)")] = None,
    status: Annotated[str | None, typer.Option(help="only warnings with this status")] = None,
) -> None:
    """Export warnings in the documented schema (docs/warnings.md) as JSON or CSV."""
    import json

    from serving.warnings_store import EXPORT_FIELDS, export_rows, to_csv

    if fmt not in ("json", "csv"):
        raise typer.BadParameter("--format must be json or csv")
    rows = export_rows(_warning_store(None).list(status=status))  # type: ignore[attr-defined]
    if fmt == "csv":
        text = to_csv(rows)
    else:
        body = {"schema": "guomen.warnings/1", "fields": list(EXPORT_FIELDS), "warnings": rows}
        text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"{len(rows)} warning(s) -> {out}")


keys_app = typer.Typer(help="API keys with roles (only a hash is stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default: Settings.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: Settings.port)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="uvicorn worker processes (default: Settings.workers)")
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="uvicorn's per-request access log (off by default: it costs CPU on every "
            "request; the app's own logs and /metrics stay on)",
        ),
    ] = False,
) -> None:
    """Start the scoring API (uvicorn) with the champion model from the registry."""
    import uvicorn

    from guomen.settings import MissingSecret

    settings = get_settings()
    try:
        settings.require_secrets()
    except MissingSecret as exc:
        typer.secho(f"refusing to serve: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    host = host or settings.host
    port = port or settings.port
    workers = workers or settings.workers
    if workers > 1:
        # Each worker process builds its own app from the environment; their metrics meet in a
        # fresh shared directory (prometheus_client's multiprocess mode, serving/metrics.py).
        import os
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="guomen-metrics-")
        uvicorn.run("serving.app:app_from_env", factory=True, host=host, port=port,
                    workers=workers, access_log=access_log)  # fmt: skip
    else:
        from serving.app import create_app

        uvicorn.run(create_app(settings), host=host, port=port, access_log=access_log)


db_app = typer.Typer(
    help="The serving database's schema (Alembic migrations).", no_args_is_help=True
)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate GUOMEN_DATABASE_URL to the newest schema (the API also does this at start-up)."""
    from serving.db import create_schema, make_engine, schema_revision

    engine = make_engine(get_settings().database_url)
    before = schema_revision(engine)
    create_schema(engine)
    typer.echo(f"database schema at revision {schema_revision(engine)} (was {before or 'none'})")


def _keys_engine():
    from serving.db import create_schema, make_engine

    engine = make_engine(get_settings().database_url)
    create_schema(engine)
    return engine


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="inspector, committee or admin")],
    name: Annotated[str | None, typer.Option(help="who or what uses the key")] = None,
) -> None:
    """Create a key and print it once (only its sha256 is stored)."""
    from serving.auth import ROLES, create_key

    if role not in ROLES:
        raise typer.BadParameter(f"--role must be one of {', '.join(ROLES)}")
    key, record = create_key(_keys_engine(), role, name)
    typer.echo(key)
    typer.echo(f"key id {record.key_id}, role {record.role}: store the key now, it is not shown again",
               err=True)  # fmt: skip


@keys_app.command("list")
def keys_list() -> None:
    """List key ids, roles, names and dates (never the keys)."""
    from serving.auth import list_keys

    for k in list_keys(_keys_engine()):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(
            f"{k.key_id}  {k.role:<9}  {k.created_at:%Y-%m-%d %H:%M}  {state}  {k.name or ''}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key id (first 12 characters)")],
) -> None:
    """Revoke a key (other server processes notice within Settings.key_cache_seconds)."""
    from serving.auth import revoke_key

    if not revoke_key(_keys_engine(), key_id):
        typer.secho(f"no active key {key_id}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@app.command("rescore")
def rescore_cmd(
    as_of: Annotated[str, typer.Option("--as-of", help="as-of date YYYY-MM-DD (local day)")],
    engine: Annotated[str, typer.Option(help="local or dask")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="address of an existing Dask scheduler")
    ] = None,
    period_days: Annotated[int, typer.Option(help="days of declarations scored", min=1)] = 365,
    partitions: Annotated[int, typer.Option(help="enterprise-hash partitions", min=1)] = 16,
    out: Annotated[Path, typer.Option(help="output root (writes OUT/rescore/AS_OF/)")] = Path(
        "data"
    ),
    threads: Annotated[int, typer.Option(help="threads of the local engine", min=1)] = 2,
    features: Annotated[
        Path | None,
        typer.Option(help="out of core: stream a folder of `features build --partition-months`"),
    ] = None,
) -> None:
    """Rescore every enterprise with the champion model: profiles to Parquet, the database and
    an MLflow run summary. Resumable: run the same command again after an interruption."""

    from features.store import Store
    from riskmodel.registry import load_model
    from serving.rescore import rescore
    from serving.rescore.warnings import warnings_in_force

    if engine not in ("local", "dask"):
        raise typer.BadParameter("--engine must be local or dask")
    settings = get_settings()
    loaded = load_model(
        settings.mlflow_tracking_uri,
        settings.model_name,
        settings.model_alias,
        home=settings.home,
        cache_dir=settings.home / settings.models_dir / "registry-cache",
    )
    bundle, ref = loaded.bundle, loaded.ref
    store = Store(settings.store_dir)
    from serving.db import make_engine

    db = make_engine(settings.database_url)
    with _ProgressBar() as bar:
        result = rescore(
            as_of,
            bundle=bundle,
            out_dir=out,
            model_version=ref.version,
            bundle_digest=ref.manifest_sha256,
            **(
                {"tables": store.tables()}
                if features is None
                else {
                    "feature_dir": features,
                    "credit_ratings": store.read("credit_ratings"),
                    "enterprises": store.read("enterprises"),
                }
            ),
            attributes=store.attributes,
            period_days=period_days,
            partitions=partitions,
            engine=engine,
            scheduler=scheduler,
            threads=threads,
            timezone=settings.timezone,
            database=db,
            mlflow_tracking_uri=settings.mlflow_tracking_uri,
            warnings=warnings_in_force(db),
            progress=bar,
        )
    typer.echo(
        f"{result.declarations:,} declarations, {result.enterprises:,} enterprises "
        f"(model {ref.name} v{ref.version}); {result.resumed_partitions} partitions resumed"
    )
    typer.echo(f"profiles: {result.profiles_path}")


# --- training (issue 4): train, promote, evaluate -------------------------------------------


def _inputs_loader(store: Path):
    def load():
        from training.pipeline import load_inputs

        with _ProgressBar(2) as bar:
            inputs = load_inputs(store, bar, build=False)
            bar.finish()
        # Each bundle is evaluated on its own feature set (history keys and code maps).
        return inputs.features_for, inputs.labels

    return load


@app.command("train")
def train_cmd(
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML training config (overrides)")] = None,
    ground_truth: Annotated[
        Path | None,
        typer.Option(help="demo only: ground_truth/declaration_truth.parquet for the oracle"),
    ] = None,
    features: Annotated[
        Path | None,
        typer.Option(help="out of core: a folder of `features build --partition-months`"),
    ] = None,
    max_rows: Annotated[
        int, typer.Option(help="with --features: most declarations per segment (sampled)", min=1)
    ] = 3_000_000,
    scheduler: Annotated[
        str | None,
        typer.Option(help="fit the boosters with lightgbm.dask on this Dask scheduler"),
    ] = None,
) -> None:
    """Train, calibrate and evaluate the risk model on a time split, write the bundle to
    models/, log the run to MLflow and register the version as challenger."""
    from training.config import load_config
    from training.pipeline import load_ground_truth, load_inputs, run_training
    from training.registry import ensure_sqlite_parent, log_and_register

    settings = get_settings()
    cfg = load_config(config)
    store_dir = store or settings.store_dir
    truth = load_ground_truth(ground_truth) if ground_truth else None
    bar = _ProgressBar(24 + len(cfg.selection.candidates))
    fit = None
    if scheduler:
        from functools import partial

        from distributed import Client

        from training.distributed import fit_booster_dask

        fit = partial(fit_booster_dask, Client(scheduler))
    with bar:
        if features is not None:
            from training.partitioned import load_partitioned_inputs

            part = load_partitioned_inputs(
                features,
                store_dir,
                test_months=cfg.split.test_months,
                validation_months=cfg.split.validation_months,
                max_rows=max_rows,
                seed=cfg.seed,
            )
            bar("read partitions")
            data: dict[str, Any] = {
                "features": part.features,
                "labels": part.labels,
                "feature_specs": part.specs,
                "declarations": part.declarations,
                "credit_ratings": part.credit_ratings,
                "attributes": part.attributes,
                "store_fingerprint": part.store_fingerprint,
                "categories": part.categories,
                "entities": part.entities,
                "sampling": part.sample.as_dict(),
            }
        else:
            inputs = load_inputs(store_dir, bar)
            data = {
                "features": inputs.features,
                "labels": inputs.labels,
                "feature_specs": inputs.specs,
                "declarations": inputs.tables["declarations"],
                "credit_ratings": inputs.tables["credit_ratings"],
                "attributes": inputs.attributes,
                "store_fingerprint": inputs.store_fingerprint,
                "categories": inputs.categories,
                "tables": inputs.tables,
            }
        result = run_training(
            **data,
            config=cfg,
            models_dir=settings.home / settings.models_dir,
            model_name=settings.model_name,
            ground_truth=truth,
            progress=bar,
            fit=fit,
        )
        bar("register in MLflow")
        ensure_sqlite_parent(settings.mlflow_tracking_uri)
        registered = log_and_register(
            result,
            cfg,
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.home / settings.mlflow_artifact_root,
            model_name=settings.model_name,
        )
        bar.finish()
    from training.report import budget_table, ranking_table

    results = {"model": result.metrics, **result.baselines}
    size = result.fitted.size
    typer.echo(f"bundle: {result.bundle_dir}  (report: {result.report_dir})")
    typer.echo(
        f"registered {registered.name} v{registered.version} as challenger (run {registered.run_id})"
    )
    typer.echo(
        f"model: {size['trees']} trees, {size['leaves_max']} leaves max, depth {size['depth_max']}; "
        f"correction kept: {result.fitted.correction}; "
        f"calibration a={result.fitted.calibration.a:.4f} b={result.fitted.calibration.b:.4f}"
    )
    typer.echo(f"test period {result.split['test_start']} .. {result.split['test_end']}")
    chosen = result.bundle.metrics.get("feature_selection", {}).get("entities")
    if chosen:
        typer.echo(f"history keys chosen on validation ({len(chosen)}): {', '.join(chosen)}")
    plain = result.bundle.metrics.get("plain_baseline", {}).get("statement")
    if plain:
        typer.echo(plain)
    typer.echo(ranking_table(results))
    typer.echo(budget_table(results, "random_sample"))
    typer.echo(budget_table(results, "all_inspected"))


@app.command("promote")
def promote_cmd(
    force: Annotated[bool, typer.Option(help="move champion whatever the gate says")] = False,
    reason: Annotated[str, typer.Option(help="why (required with --force; logged)")] = "",
    store: Annotated[Path | None, typer.Option(help="store holding the test period")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (gate tolerances)")] = None,
) -> None:
    """Compare the challenger with the champion on the same test period and move the
    champion alias only if the challenger is not worse beyond tolerance; logs the verdict."""
    from training.config import load_config
    from training.registry import ensure_sqlite_parent, promote

    if force and not reason.strip():
        raise typer.BadParameter("--force requires --reason")
    settings = get_settings()
    cfg = load_config(config)
    ensure_sqlite_parent(settings.mlflow_tracking_uri)
    verdict = promote(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_root=settings.home / settings.mlflow_artifact_root,
        model_name=settings.model_name,
        config=cfg,
        load_features=_inputs_loader(store or settings.store_dir),
        force=force,
        reason=reason,
    )
    typer.echo(
        f"challenger v{verdict.challenger_version} vs champion "
        f"v{verdict.champion_version or '-'}: {verdict.message}"
    )
    if verdict.period:
        typer.echo(f"period {verdict.period['start']} .. {verdict.period['end']}")
    if verdict.plain_baseline.get("statement"):
        typer.echo(f"challenger on its test period: {verdict.plain_baseline['statement']}")
    for metric, check in verdict.checks.items():
        typer.echo(
            f"  {metric:<16} challenger {check['challenger']:.4f}  champion {check['champion']:.4f}"
            f"  tolerance {check['tolerance']:g}  {'pass' if check['passed'] else 'FAIL'}"
        )
    if not verdict.promoted:
        raise typer.Exit(1)


@app.command("evaluate")
def evaluate_cmd(
    version: Annotated[str, typer.Option(help="registered version number (or an alias)")],
    start: Annotated[str, typer.Option(help="first local day YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last local day YYYY-MM-DD (inclusive)")],
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (budgets)")] = None,
    ground_truth: Annotated[
        Path | None, typer.Option(help="demo only: declaration_truth.parquet for the oracle")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write the metrics as JSON here")] = None,
) -> None:
    """Re-evaluate a registered model version (bundle downloaded and verified) on any period
    of declarations: ranking, calibration and budget metrics."""
    import json

    import pandas as pd

    from training.config import load_config
    from training.pipeline import load_ground_truth
    from training.registry import evaluate_version, resolve_version
    from training.report import budget_table, ranking_table

    settings = get_settings()
    cfg = load_config(config)
    resolved = resolve_version(settings.mlflow_tracking_uri, settings.model_name, version)
    if resolved is None:
        raise typer.BadParameter(f"no version or alias {version!r}")
    t0 = pd.Timestamp(start, tz=settings.timezone)
    t1 = pd.Timestamp(end, tz=settings.timezone) + pd.Timedelta(days=1)
    features, labels = _inputs_loader(store or settings.store_dir)()
    metrics = evaluate_version(
        tracking_uri=settings.mlflow_tracking_uri,
        model_name=settings.model_name,
        version=resolved,
        features=features,
        labels=labels,
        start=t0,
        end=t1,
        config=cfg,
        ground_truth=load_ground_truth(ground_truth) if ground_truth else None,
    )
    name = f"v{resolved}"
    typer.echo(
        f"{settings.model_name} {name} on {start} .. {end}: {metrics['n_declarations']:,} declarations"
    )
    typer.echo(ranking_table({name: metrics}))
    typer.echo(budget_table({name: metrics}, "random_sample"))
    typer.echo(budget_table({name: metrics}, "all_inspected"))
    if out:
        out.write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")


# --- the online snapshot and the one-command demo -----------------------------------------


def _build_snapshot(store: Path, out: Path, as_of: str | None, timezone: str) -> str:
    import pandas as pd

    from features.files import write_directory
    from features.snapshot import Snapshot
    from features.store import Store
    from riskmodel.registry import served_entities

    settings = get_settings()
    st = Store(store)
    entities = served_entities(
        settings.mlflow_tracking_uri, settings.model_name, st.attributes, home=settings.home,
        cache_dir=settings.home / settings.models_dir / "registry-cache",
        on_unreadable=lambda alias, exc: typer.echo(
            f"snapshot: no {alias} bundle read ({type(exc).__name__})"),
    )  # fmt: skip
    when = pd.Timestamp(as_of, tz=timezone) if as_of else pd.Timestamp.now(tz="UTC")
    snap = Snapshot.build(st.tables(), as_of=when, attributes=st.attributes, entities=entities)
    # Built beside the target and swapped in, so a running API never reads a half-written one.
    write_directory(out, snap.save, prefix="snapshot")
    return str(snap.as_of)


@app.command("snapshot")
def snapshot_cmd(
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    out: Annotated[Path | None, typer.Option(help="snapshot folder (default: Settings)")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="local time YYYY-MM-DD[THH:MM]; default: now")
    ] = None,
) -> None:
    """Build the online feature snapshot (every entity's state as of a time) that the
    scoring API loads at start-up."""
    settings = get_settings()
    target = out or settings.home / settings.snapshot_dir
    when = _build_snapshot(store or settings.store_dir, target, as_of, settings.timezone)
    typer.echo(f"snapshot as of {when} -> {target}")


@app.command("up")
def up(
    declarations: Annotated[
        int, typer.Option(help="demo declarations to generate", min=1000)
    ] = 200_000,
    seed: Annotated[int, typer.Option(help="demo seed")] = 7,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="start the API at the end")
    ] = True,
    office: Annotated[
        bool,
        typer.Option(
            "--office/--no-office",
            help="replay the committee's meetings, rescore, "
            "score demo declarations through the API",
        ),
    ] = True,
    api_declarations: Annotated[
        int, typer.Option(help="new declarations scored through the API", min=0)
    ] = 300,
) -> None:
    """The whole demo on embedded defaults: generate demo data, ingest it, train, register,
    promote, build the snapshot, create demo API keys, replay the committee's past meetings,
    rescore the profiles, score new declarations through the API, and serve the API and the
    committee pages."""
    from features.ingest import ingest as run_ingest
    from riskmodel.registry import RegistryError, resolve

    settings = get_settings()
    demo_dir = settings.home / "data" / "demo"
    if not (demo_dir / "declarations.parquet").exists():
        typer.secho(f"[1/6] demo data: {declarations:,} declarations -> {demo_dir}", bold=True)
        demo_data(out=demo_dir, declarations=declarations, seed=seed, fmt="parquet")
    else:
        typer.secho(f"[1/6] demo data already in {demo_dir}", bold=True)
    typer.secho(f"[2/6] ingest -> {settings.store_dir}", bold=True)
    with _ProgressBar() as bar:
        report = run_ingest(
            demo_dir, settings.store_dir, rates_file=settings.rates_file,
            timezone=settings.timezone, progress=bar,
        )  # fmt: skip
    typer.echo(report.to_text())
    from training.registry import ensure_sqlite_parent

    ensure_sqlite_parent(settings.mlflow_tracking_uri)
    try:
        champion = resolve(settings.mlflow_tracking_uri, settings.model_name, settings.model_alias)
    except RegistryError:  # no champion yet: train one
        champion = None
    if champion is None:
        typer.secho("[3/6] train and register", bold=True)
        train_cmd(
            store=None,
            config=None,
            ground_truth=demo_dir / "ground_truth" / "declaration_truth.parquet",
        )
        typer.secho("[4/6] promote", bold=True)
        promote_cmd(force=False, reason="", store=None, config=None)
    else:
        typer.secho("[3-4/6] a champion is registered already; skipping training", bold=True)
    typer.secho("[5/6] online snapshot", bold=True)
    snapshot_cmd(store=None, out=None, as_of=None)
    typer.secho("[6/6] demo API keys (shown once; only hashes are stored)", bold=True)
    from guomen.settings import ensure_demo_secrets
    from serving.auth import create_key, write_key_file

    engine = _keys_engine()
    keys = {role: create_key(engine, role, name=f"demo-{role}")[0]
            for role in ("inspector", "committee", "admin")}  # fmt: skip
    keys_file = settings.home / "data" / "demo-keys.env"
    write_key_file(keys_file, keys)
    lines = [f"{role.upper()}_KEY={key}" for role, key in keys.items()]
    for line in lines:
        typer.echo(f"  {line}")
    typer.echo(f"  (also in {keys_file}, mode 600: `set -a; source {keys_file}`)")
    secrets_file = ensure_demo_secrets(settings.home / "data" / "secrets.env")
    typer.echo(f"  secrets of this install: {secrets_file} (mode 600; `guomen serve` needs them: "
               f"`set -a; source {secrets_file}`)")  # fmt: skip
    if office:
        _open_office(lines, api_declarations)
    if serve_api:
        typer.secho(
            f"serving on http://{settings.host}:{settings.port}  (docs: /docs, committee: /committee)",
            bold=True,
        )
        serve(host=None, port=None, workers=None)


def _open_office(key_lines: list[str], api_declarations: int) -> None:
    """``guomen up``'s lived-in office (``serving.replay``): meetings, profiles, scored traffic."""
    import pandas as pd

    from features.store import Store
    from serving.replay import open_office, replay_office

    settings = get_settings()
    typer.secho("[office 1/3] the committee's past meetings, replayed through its own services",
                bold=True)  # fmt: skip
    replay_office(settings, echo=typer.echo)
    decl = Store(settings.store_dir).read("declarations", columns=["declared_at"])["declared_at"]
    as_of = (decl.max() + pd.Timedelta(days=1)).date().isoformat()
    typer.secho(f"[office 2/3] enterprise profiles: rescore --as-of {as_of}", bold=True)
    rescore_cmd(as_of=as_of, period_days=30)
    typer.secho("[office 3/3] new declarations scored through POST /v1/score", bold=True)
    inspector = next(v for k, _, v in (line.partition("=") for line in key_lines)
                     if k == "INSPECTOR_KEY")  # fmt: skip
    open_office(settings, inspector, declarations=api_declarations, echo=typer.echo)


@app.command("export-results")
def export_results(
    out: Annotated[Path, typer.Option(help="folder to write declarations.csv and inspections.csv")],
    since: Annotated[
        str | None, typer.Option(help="only rows received since this ISO time (UTC if no offset)")
    ] = None,
) -> None:
    """Export the declarations scored and the inspection results recorded through the API as
    contract CSV files, ready for `guomen ingest` so they feed the next training."""
    import pandas as pd

    from serving.audit import export_declarations_csv, export_inspections_csv

    when = None
    if since:
        ts = pd.Timestamp(since)
        when = (
            ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ).to_pydatetime()
    engine = _keys_engine()
    n_decl = export_declarations_csv(engine, out / "declarations.csv", when)
    n_insp = export_inspections_csv(engine, out / "inspections.csv", when)
    typer.echo(f"{n_decl:,} declarations and {n_insp:,} inspection results -> {out}")
    typer.echo(f"next: guomen ingest {out} --store STORE")


# --- the annual monitoring plan and the public disclosure (issue 18) -----------------------


@app.command("plan")
def plan_cmd(
    year: Annotated[int, typer.Option(help="the plan year", min=2000, max=2100)],
    samples: Annotated[int, typer.Option(help="monitoring samples of the year (N)", min=1)],
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    out: Annotated[Path, typer.Option(help="folder for the plan documents")] = Path("data/plan"),
    product_level: Annotated[str, typer.Option(help="chapter or hs4")] = "chapter",
    scores: Annotated[
        Path | None,
        typer.Option(help="rescoring run (or its root, default data/) for the expected rates"),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="data up to this time (default: newest)")
    ] = None,
) -> None:
    """Propose the year's risk-monitoring plan: N samples over product x origin x trade mode
    and ports (docs/plan.md); writes Markdown (zh, en) and CSV and stores the proposal for the
    committee's approval."""
    import getpass

    import pandas as pd

    from policy.plan import PlanConfig, PlanError
    from serving.db import make_engine
    from serving.plan_inputs import latest_scores, propose_plan

    settings = get_settings()
    try:
        config = PlanConfig(product_level=product_level)  # type: ignore[arg-type]
    except PlanError as exc:
        raise typer.BadParameter(str(exc)) from exc
    when = None
    if as_of:
        try:
            ts = pd.Timestamp(as_of)
        except ValueError as exc:
            raise typer.BadParameter(f"--as-of: {exc}") from exc
        when = (ts.tz_localize(settings.timezone) if ts.tzinfo is None else ts).to_pydatetime()
    if scores is None and latest_scores(Path("data")) is not None:
        scores = Path("data")
    try:
        plan, plan_id, paths = propose_plan(
            store or settings.store_dir, year=year, samples=samples, out_dir=out / str(year),
            engine=make_engine(settings.database_url), actor=f"cli:{getpass.getuser()}",
            config=config, scores=scores, as_of=when,
        )  # fmt: skip
    except (PlanError, ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    s = plan.summary
    if not s.get("model_rates"):
        typer.echo("no rescoring run found: expected rates from past random results only")
    typer.echo(
        f"plan {plan_id}: {s['samples']} samples over {s['groups']} groups (floor "
        f"{s['floor_samples']}, risk {s['risk_samples']}); expected nonconforming "
        f"{s['expected_nonconforming']:.1f} vs {s['expected_nonconforming_proportional']:.1f} "
        "volume-proportional"
    )
    for p in paths.values():
        typer.echo(f"  {p}")
    typer.echo("the committee approves it at /committee/plans")


@app.command("disclose")
def disclose_cmd(
    period: Annotated[str, typer.Option(help="closed period: YYYY-Qn, YYYY-Hn, YYYY-MM, YYYY")],
    out: Annotated[Path, typer.Option(help="folder for the report")] = Path("data/disclosure"),
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    product_level: Annotated[str, typer.Option(help="chapter or hs4")] = "chapter",
) -> None:
    """Write the public report of spot-check (random monitoring) results of a period: JSON, CSV
    and printable HTML (docs/disclosure.md); no enterprise named outside the blacklist."""
    from policy.disclosure import DisclosureError
    from serving.db import make_engine
    from serving.plan_inputs import publish_disclosure

    if product_level not in ("chapter", "hs4"):
        raise typer.BadParameter("--product-level must be chapter or hs4")
    settings = get_settings()
    try:
        report, paths = publish_disclosure(
            store or settings.store_dir, period=period, out_dir=out,
            engine=make_engine(settings.database_url), timezone=settings.timezone,
            product_level=product_level,
        )  # fmt: skip
    except DisclosureError as exc:
        raise typer.BadParameter(str(exc)) from exc
    t = report["totals"]
    typer.echo(
        f"{report['period']}: {t['samples']:,} random samples, {t['nonconforming']:,} "
        f"nonconforming in {len(report['groups'])} product x origin groups; "
        f"{len(report['warnings'])} warnings issued"
    )
    for p in paths.values():
        typer.echo(f"  {p}")


# --- selection-policy backtest (issue 16) ---------------------------------------------------


@app.command("backtest")
def backtest_cmd(
    start: Annotated[str, typer.Option(help="first local day YYYY-MM-DD of the replay")],
    end: Annotated[str, typer.Option(help="last local day YYYY-MM-DD (inclusive)")],
    store: Annotated[Path | None, typer.Option(help="the ingested Parquet store")] = None,
    budget: Annotated[
        float, typer.Option(help="share of each week's declarations inspected")
    ] = 0.05,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME[:key=value,...], repeatable: random, legacy, exploit, "
            "hybrid:explore=0.1,by=random|uncertainty|novelty, thompson:strength=20 "
            "(default: random, legacy, exploit, hybrid, thompson)"
        ),
    ] = None,
    retrain: Annotated[str, typer.Option(help="monthly, weekly or never")] = "monthly",
    ground_truth: Annotated[
        Path | None, typer.Option(help="demo only: declaration_truth.parquet (the universe)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="report folder (default <home>/backtests/<start>_<end>)")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of every draw; same seed, same report")] = 7,
    config: Annotated[Path | None, typer.Option(help="YAML training config (booster)")] = None,
    held_aside: Annotated[
        float, typer.Option(help="share of declarations in the evaluator's random sample")
    ] = 0.10,
    warnings_every: Annotated[
        int, typer.Option(help="days between warning replays (0: none; needs the truth)")
    ] = 7,
    plugin: Annotated[
        list[str] | None, typer.Option(help="import this module first (it registers policies)")
    ] = None,
    mlflow: Annotated[bool, typer.Option(help="log the run to MLflow")] = True,
) -> None:
    """Replay weeks of declarations under each selection policy: each selects within the budget
    with what it knew then, and only its selections reveal results (docs/backtest.md). A run
    killed part-way continues from its last completed week when started again."""
    import importlib

    from training.backtest import DEFAULT_POLICIES, BacktestSpec, parse_policy, run_backtest

    settings = get_settings()
    for module in plugin or []:
        importlib.import_module(module)
    try:
        spec = BacktestSpec(start=start, end=end, budget=budget, retrain=retrain,  # type: ignore[arg-type]
                            seed=seed, held_aside_share=held_aside,
                            warnings_step_days=warnings_every, timezone=settings.timezone)  # fmt: skip
        policies = [parse_policy(p) for p in (policy or DEFAULT_POLICIES)]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    folder = out or settings.backtests_dir / f"{start}_{end}"
    try:
        doc = run_backtest(
            store or settings.store_dir,
            folder,
            spec,
            policies,
            ground_truth=ground_truth,
            config_path=config,
            tracking_uri=settings.mlflow_tracking_uri if mlflow else None,
            artifact_root=settings.mlflow_artifact_root,
            progress=_progress_lines(),
        )
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc
    assert doc is not None
    res = doc["results"]
    typer.echo(f"universe: {res['universe']['mode']}: {res['universe']['note']}")
    for name, p in res["policies"].items():
        t = p["total"]
        typer.echo(f"  {name:28s} inspected {t['inspected']:>9,.0f}  found {t['found']:>9,.1f}  "
                   f"critical {t['critical_found']:>7,.1f}  precision {t['precision'] or 0:.4f}")  # fmt: skip
    typer.echo(f"report: {folder / 'backtest.md'}")


def main() -> None:  # pragma: no cover - console entry
    app()
