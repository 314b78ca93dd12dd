"""The `tjump` command."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tjump.errors import TjumpError
from tjump.protocol import Protocol
from tjump.sequencer import Progress as RunProgress
from tjump.sequencer import RunEvents, RunPlan, RunResult, plan_run, run_plan
from tjump.sequencer.runner import DEFAULT_RIG, default_output

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Temperature-jump dark-field microscopy: run protocols, analyse the movies.",
)
console = Console(stderr=True)

RigOption = Annotated[Path, typer.Option("--rig", "-r", help="Rig file.")]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _describe(plan: RunPlan) -> str:
    s = plan.schedule
    gigabytes = s.total_frames * plan.bytes_per_frame() / 1e9
    return (
        f"protocol '{plan.protocol.name}' on rig '{plan.rig.name}': {len(s.segments)} segments, "
        f"{s.duration_s:.0f} s of experiment, {s.total_frames} frames at "
        f"{s.frame_rate_hz:g} frames/s, {gigabytes:.2f} GB of frames"
    )


def _check_disk(plan: RunPlan, output: Path) -> None:
    needed = plan.schedule.total_frames * plan.bytes_per_frame()
    existing = next((p for p in [output, *output.parents] if p.exists()), Path.cwd())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise TjumpError(
            f"the run needs {needed / 1e9:.2f} GB but {existing} has {free / 1e9:.2f} GB free"
        )


@app.command()
def run(
    protocol: Annotated[Path, typer.Argument(help="Protocol file (YAML).")],
    rig: RigOption = DEFAULT_RIG,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run directory to create.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of a simulated rig.")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Check the protocol and print the plan; run nothing.")
    ] = False,
) -> None:
    """Run a protocol on a rig and save everything to a run directory."""
    plan = plan_run(protocol, rig)
    output = output or default_output(plan)
    _check_disk(plan, output)
    if check:
        typer.echo(_describe(plan))
        return
    console.print(_describe(plan))
    signal.signal(signal.SIGTERM, _raise_interrupt)
    result = _run_with_progress(plan, output, seed)
    typer.echo(_summary(result))
    if result.status != "complete":
        raise typer.Exit(1)


def _run_with_progress(plan: RunPlan, output: Path, seed: int | None) -> RunResult:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[left]}"),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=plan.schedule.total_frames, left="")

        def show(p: RunProgress) -> None:
            cycle = f" cycle {p.cycle}" if p.cycle else ""
            bar.update(
                task,
                completed=p.frames_done,
                left=f"{p.remaining_s:.0f} s left",
                description=f"{p.segment_kind} {p.setpoint_K:.1f} K{cycle}",
            )

        def connect(events: RunEvents) -> None:
            events.progress.connect(show)

        return run_plan(plan, output, seed, connect)


def _summary(result: RunResult) -> str:
    speed = result.experiment_s / result.wall_s if result.wall_s > 0 else 0.0
    text = (
        f"{result.status}: {result.frames}/{result.frames_planned} frames, "
        f"{result.experiment_s:.1f} s of experiment in {result.wall_s:.1f} s ({speed:.0f}x) "
        f"-> {result.directory}"
    )
    return f"{text}\n  {result.message}" if result.message else text


@app.command()
def schema() -> None:
    """Print the protocol file's JSON schema (for editors that validate YAML)."""
    typer.echo(json.dumps(Protocol.model_json_schema(), indent=2))


def main() -> None:
    """Entry point: one clear message and a non-zero exit code for anything wrong."""
    try:
        app()
    except TjumpError as e:
        console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
