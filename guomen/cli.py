"""The ``guomen`` command line: one entry point, one subcommand per step.

Commands only parse arguments, read ``Settings`` and call the owning package; heavy imports
happen inside each command so ``guomen --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guomen.settings import get_settings

app = typer.Typer(
    help="guomen (国门): risk scoring for import/export commodity quality-safety supervision.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
features_app = typer.Typer(help="Inspect and build the declared features.", no_args_is_help=True)
app.add_typer(features_app, name="features")


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Option(help="folder to write the contract tables into")],
    declarations: Annotated[int, typer.Option(help="number of declarations", min=100)] = 200_000,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same files")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv")] = "parquet",
) -> None:
    """Generate about three years of realistic demo trade in the data contract, plus a separate
    ground-truth folder (true probabilities, planted outbreaks) that no pipeline reads."""
    from demo.generate import write_demo_data

    if fmt not in ("parquet", "csv"):
        raise typer.BadParameter("--format must be parquet or csv")
    summary = write_demo_data(out, n_declarations=declarations, seed=seed, fmt=fmt, progress=True)
    for table, rows in summary.items():
        typer.echo(f"{table:>16}: {rows:>10,} rows")


@app.command("ingest")
def ingest(
    source_dir: Annotated[Path, typer.Argument(help="folder of contract tables (CSV or Parquet)")],
    store: Annotated[Path | None, typer.Option(help="Parquet store to write or append to")] = None,
    mapping: Annotated[
        Path | None, typer.Option(help="YAML mapping file for a foreign layout")
    ] = None,
    rates: Annotated[Path | None, typer.Option(help="currency rate table CSV")] = None,
) -> None:
    """Validate contract tables, quarantine bad rows with reasons, and append the rest to the
    store. Prints rows read = accepted + quarantined per table."""
    from features.ingest import FileLevelError
    from features.ingest import ingest as run_ingest

    settings = get_settings()
    try:
        report = run_ingest(
            source_dir,
            store or settings.store_dir,
            mapping_file=mapping,
            rates_file=rates or settings.rates_file,
            timezone=settings.timezone,
            progress=True,
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
    out: Annotated[Path, typer.Option(help="Parquet file to write the feature table to")],
) -> None:
    """Build point-in-time features for every declaration in the store (offline path)."""
    from rich.progress import Progress

    from features.build import build_offline, progress_steps
    from features.store import Store

    st = Store(store)
    tables = st.tables()
    attrs = st.attributes
    with Progress(transient=False) as bar:
        task = bar.add_task("features", total=progress_steps(attrs))

        def advance(step: str) -> None:
            bar.update(task, advance=1, description=f"features: {step}")

        frame = build_offline(tables, attrs, progress=advance)
        bar.update(task, completed=progress_steps(attrs), description="features: done")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    typer.echo(f"{len(frame):,} declarations x {frame.shape[1] - 3} features -> {out}")


def main() -> None:  # pragma: no cover - console entry
    app()
