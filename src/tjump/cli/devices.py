"""`tjump devices check`: is every instrument of a rig there, and in a safe state?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tjump.cli.console import console
from tjump.rig import load_rig
from tjump.rig.check import check_rig
from tjump.sequencer import DEFAULT_RIG

app = typer.Typer(no_args_is_help=True, help="The instruments of a rig.")


@app.command()
def check(
    rig: Annotated[Path, typer.Option("--rig", "-r", help="Rig file.")] = DEFAULT_RIG,
) -> None:
    """Connect to every device, show identity, state, limits, what was verified and the
    round-trip, arm and make-safe times measured; leave every output off. Exits non-zero
    on any problem."""
    config = load_rig(rig)
    rows = check_rig(config)
    table = Table(title=f"rig '{config.name}' ({config.kind})", title_justify="left")
    for column in ("device", "identity", "state", "limits"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "red" if row.problem else None
        table.add_row(row.device, row.identity, row.state, row.limits, style=style)
    console.print(table)
    for row in rows:
        if row.verified or row.measured:
            console.print(
                f"{row.device}: verified {row.verified or '-'}; measured {row.measured or '-'}",
                highlight=False,
                soft_wrap=True,
            )
    problems = [row for row in rows if row.problem]
    for row in problems:
        console.print(f"[bold red]error:[/] {row.problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)
    console.print("all devices answered; heater at 0 V with the output off")
