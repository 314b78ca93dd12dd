"""`tjump verify`: what a run directory holds, and `--repair` to make it consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tjump.storage.repair import repair as repair_run
from tjump.storage.verify import verify as verify_run


def verify(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Make the run consistent: cut torn pages, rebuild lost rows from their pages, "
            "mark rows without pages missing and unfinished cycles interrupted. Keeps every "
            "readable frame; sets aside (never deletes) the rest; logs what it did.",
        ),
    ] = False,
) -> None:
    """Report frames, rows, gaps, torn pages, status and the heater's last recorded state.
    Exits 1 if the run is not consistent (and was not repaired)."""
    if repair:
        for action in repair_run(run_dir):
            typer.echo(f"repaired: {action}")
    verdict = verify_run(run_dir)
    typer.echo("\n".join(verdict.report()))
    if not verdict.consistent:
        if not repair:
            typer.echo(f"repair it with: tjump verify --repair {run_dir}")
        raise typer.Exit(1)
