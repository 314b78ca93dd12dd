"""`tjump gui`: the lab window (Qt is imported only when this command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tjump.sequencer import DEFAULT_RIG


def gui(
    rig: Annotated[Path, typer.Option("--rig", "-r", help="Rig file.")] = DEFAULT_RIG,
    protocol: Annotated[
        Path | None, typer.Option("--protocol", "-p", help="Protocol to load at start.")
    ] = None,
    runs: Annotated[Path, typer.Option(help="Folder for new run directories.")] = Path("runs"),
    display_hz: Annotated[
        float, typer.Option(min=1, max=60, help="Live image refresh rate (plots at 5 Hz).")
    ] = 30.0,
) -> None:
    """Open the lab window: run protocols, watch particles switch, see results."""
    from tjump.gui.app import run_gui

    raise typer.Exit(run_gui(rig, protocol, runs, display_hz))
