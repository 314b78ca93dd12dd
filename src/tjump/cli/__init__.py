"""The one `tjump` command; each subcommand lives in its own module here."""

from __future__ import annotations

import sys

import typer

from tjump.cli import analyze, calibrate, devices, export, gui, run, verify
from tjump.cli.console import console
from tjump.errors import TjumpError
from tjump.rig.simulator import Simulator, provide_simulator

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Temperature-jump dark-field microscopy: run protocols, analyse the movies.",
)
app.command()(run.run)
app.command()(run.resume)
app.command()(run.schema)
app.command()(export.export)
app.command()(verify.verify)
app.command()(analyze.analyze)
app.command()(calibrate.calibrate)
app.command()(gui.gui)
app.add_typer(devices.app, name="devices")


def _simulator() -> Simulator:
    """The simulated rig, imported only when a simulated rig file is read: a lab rig's
    commands never load the simulator. Its camera renders in a process of its own, so a
    simulated run costs tjump what a real camera would."""
    from tjump.sim.rig import SimulatedRigs

    return SimulatedRigs(camera_process=True)


def main() -> None:
    """Entry point: one clear message and a non-zero exit code for anything wrong."""
    provide_simulator(_simulator)
    try:
        app()
    except TjumpError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
