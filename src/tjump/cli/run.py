"""`tjump run` and `tjump schema`: protocols on rigs."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tjump.cli.console import console
from tjump.errors import TjumpError
from tjump.protocol import Protocol
from tjump.sequencer import Progress as RunProgress
from tjump.sequencer import RunPlan, RunResult, Sequencer, plan_run, run_plan
from tjump.sequencer.runner import DEFAULT_RIG, default_output

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

        def connect(sequencer: Sequencer) -> None:
            sequencer.events.progress.connect(show)

        return run_plan(plan, output, seed, connect)


def _summary(result: RunResult) -> str:
    speed = result.experiment_s / result.wall_s if result.wall_s > 0 else 0.0
    text = (
        f"{result.status}: {result.frames}/{result.frames_planned} frames, "
        f"{result.experiment_s:.1f} s of experiment in {result.wall_s:.1f} s ({speed:.0f}x) "
        f"-> {result.directory}"
    )
    return f"{text}\n  {result.message}" if result.message else text


def schema() -> None:
    """Print the protocol file's JSON schema (for editors that validate YAML)."""
    typer.echo(json.dumps(Protocol.model_json_schema(), indent=2))
