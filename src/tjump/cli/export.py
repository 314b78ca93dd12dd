"""`tjump export`: a run directory to a standard file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tjump.cli.console import console
from tjump.errors import InputError
from tjump.storage import RunDirectory
from tjump.storage.export import export_ome_tiff


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    ome_tiff: Annotated[bool, typer.Option("--ome-tiff", help="Write an OME-TIFF.")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default RUN.ome.tif).")
    ] = None,
) -> None:
    """Export a run's frames with pixel size, times and temperatures as metadata."""
    if not ome_tiff:
        raise InputError("choose a format: --ome-tiff")
    run = RunDirectory(run_dir)
    target = output or run_dir.with_name(run_dir.name + ".ome.tif")
    with console.status(f"writing {target}"):
        count = export_ome_tiff(run, target)
    typer.echo(f"wrote {count} frames to {target}")
