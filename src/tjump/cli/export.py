"""`tjump export`: a run directory to a standard file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tjump.cli.console import console
from tjump.errors import InputError
from tjump.storage import RunDirectory
from tjump.storage.export import export_ome_tiff
from tjump.storage.verify import require_consistent


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    ome_tiff: Annotated[bool, typer.Option("--ome-tiff", help="Write an OME-TIFF.")] = False,
    ome_zarr: Annotated[
        bool,
        typer.Option(
            "--ome-zarr", help="Write an OME-Zarr (v0.5) store, tiled for reading particles."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default RUN.ome.tif or RUN.ome.zarr)."),
    ] = None,
) -> None:
    """Export a run's frames with pixel size, times and temperatures as metadata."""
    if ome_tiff == ome_zarr:
        raise InputError("choose one format: --ome-tiff or --ome-zarr")
    run = RunDirectory(run_dir)
    require_consistent(run_dir, "export")  # says what to do if it is not
    if ome_zarr:
        from tjump.storage.zarr_export import export_ome_zarr  # tensorstore loads only here

        target = output or run_dir.with_name(run_dir.name + ".ome.zarr")
        columns = (
            TextColumn(f"writing {target}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("export", total=None)
            count = export_ome_zarr(
                run,
                target,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        target = output or run_dir.with_name(run_dir.name + ".ome.tif")
        with console.status(f"writing {target}"):
            count = export_ome_tiff(run, target)
    typer.echo(f"wrote {count} frames to {target}")
