"""Batch over capture archives: discovery, local pool or Dask, DuckDB/Parquet index, archive page.

Mount in the main CLI with `app.command("batch")(batch_command)`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from resetlens.errors import ResetlensError


def batch_command(
    archive_dir: Annotated[
        Path, typer.Argument(help="Archive folder: bundles and/or loose captures, any depth.")
    ],
    db: Annotated[Path, typer.Option("--db", help="DuckDB file to create or update (FILE.duckdb).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write per-bundle JSON/HTML reports and index.html here.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Local worker processes (default: CPU cores).")
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="Run on an existing Dask cluster: SCHEDULER_ADDRESS (tcp://HOST:PORT)."),
    ] = None,
    parquet: Annotated[
        Path | None, typer.Option("--parquet", help="Also export every table as Parquet into DIR.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", help="Give up on a bundle after SECONDS (recorded failed; local workers only)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Analyse every bundle again, unchanged ones too (another resetlens version already is).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display or summary.")] = False,
) -> None:
    """Analyse every bundle of an archive into a DuckDB database (resumable: unchanged bundles are skipped)."""
    from resetlens.batch.progress import BatchProgress, print_summary
    from resetlens.batch.run import run_batch

    err = Console(stderr=True, highlight=False)
    if workers is not None and dask is not None:
        err.print("resetlens: give --workers or --dask, not both", markup=False, soft_wrap=True)
        raise typer.Exit(2)
    if dask is not None and timeout is not None:
        err.print("resetlens: note: --timeout is not enforced on Dask workers", markup=False, soft_wrap=True)
    progress = None if quiet else BatchProgress(err)
    try:
        summary = run_batch(
            archive_dir,
            db,
            out=out,
            workers=workers,
            dask=dask,
            parquet=parquet,
            progress=progress,
            timeout=timeout,
            force=force,
        )
    except ResetlensError as e:
        err.print(f"resetlens: {e}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not quiet:
        print_summary(err, summary, os.fspath(db))


__all__ = ["batch_command"]
