"""`tjump run`, `tjump resume` and `tjump schema`: protocols on rigs."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import groupby
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tjump.cli.console import console
from tjump.errors import TjumpError
from tjump.protocol import Protocol
from tjump.protocol.schedule import SegmentKind
from tjump.sequencer import (
    DEFAULT_RIG,
    FinishReason,
    Runner,
    RunPlan,
    RunResult,
    RunState,
    default_output,
    open_resume,
    open_run,
    plan_run,
)
from tjump.sequencer import Progress as RunProgress
from tjump.storage import RunDirectory
from tjump.storage.layout import RUN_PROTOCOL, RUN_RIG

_HOT = (SegmentKind.HEAT, SegmentKind.ABLATION, SegmentKind.HOLD)
RigOption = Annotated[Path, typer.Option("--rig", "-r", help="Rig file.")]


def _describe(plan: RunPlan) -> str:
    """The plan in a few lines: totals, then one line per top-level step."""
    s = plan.schedule
    gigabytes = s.total_frames * plan.bytes_per_frame() / 1e9
    lines = [
        f"protocol '{plan.protocol.name}' on rig '{plan.rig.name}': {s.duration_s:.0f} s of "
        f"experiment ({s.duration_s / 3600:.2f} h), {s.total_frames} frames, "
        f"{gigabytes:.2f} GB of frames"
    ]
    for step, segments in groupby(s.segments, key=lambda seg: seg.step):
        segs = list(segments)
        kinds = sorted({seg.kind for seg in segs})
        hot = sorted({seg.setpoint_K for seg in segs if seg.kind in _HOT})
        temps = f" at {', '.join(f'{t:g}' for t in hot)} K" if hot else ""
        cycles = max(seg.cycle for seg in segs)
        per = f", {cycles} cycles each" if cycles else ""
        seconds = sum(seg.duration_s for seg in segs)
        frames = sum(seg.frames for seg in segs)
        lines.append(
            f"  step {step}: {'/'.join(kinds)}{temps}{per}: {seconds:g} s, {frames} frames "
            f"at {segs[0].frame_rate_hz:g} frames/s"
        )
    return "\n".join(lines)


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
    """Run a protocol on a rig and save everything to a run directory.

    Ctrl-C once pauses at the next step boundary (heater safe; Enter resumes) when run
    from a terminal, and aborts otherwise; a second Ctrl-C, or SIGTERM, aborts."""
    plan = plan_run(protocol, rig)
    output = output or default_output(plan)
    if check:
        typer.echo(_describe(plan))
        _check_disk(plan, output)
        return
    _check_disk(plan, output)
    console.print(_describe(plan).splitlines()[0], highlight=False)
    with _Console() as control:
        result = control.supervise(open_run(plan, output, seed), plan)
    typer.echo(_summary(result))
    if result.status is not FinishReason.COMPLETE:
        raise typer.Exit(1)


def resume(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an interrupted run.")],
) -> None:
    """Continue an interrupted run in its own directory, at the next whole cycle."""
    RunDirectory(run_dir)  # a clear message if it is not a run directory
    plan = plan_run(run_dir / RUN_PROTOCOL, run_dir / RUN_RIG)
    with _Console() as control:
        session = open_resume(run_dir)
        result = control.supervise(session.runner, plan)
    resumed = session.outcome(result)
    for action in resumed.repairs:
        typer.echo(f"repaired: {action}")
    typer.echo(_summary(result, session=True))
    interrupted = (
        f", {resumed.interrupted_frames} of them in interrupted cycles (kept, marked)"
        if resumed.interrupted_frames
        else ""
    )
    typer.echo(
        f"  whole run: {resumed.run_frames} frames for a schedule of "
        f"{resumed.run_frames_planned}{interrupted}"
    )
    if result.status is not FinishReason.COMPLETE:
        raise typer.Exit(1)


class _Console:
    """Ctrl-C, SIGTERM and (in a terminal) Enter, from while a run is being prepared
    until it has ended. Ctrl-C once pauses a run in a terminal and aborts otherwise; a
    second Ctrl-C, or SIGTERM, aborts; before the runner exists either stops the command
    (KeyboardInterrupt: what was prepared is closed again)."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.interactive = sys.stdin.isatty()
        self.lines: queue.Queue[str] = queue.Queue()
        self.interrupts = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Console:
        self._previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        if self.interactive:
            threading.Thread(target=self._read_lines, name="tjump-stdin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def supervise(self, runner: Runner, plan: RunPlan) -> RunResult:
        """Run in its own thread with a progress bar; resume a pause on Enter."""
        self.runner = runner
        with _progress_bar(plan) as show:
            runner.events.progress.connect(show)
            handle = runner.start()
            while not handle.done():
                handle.thread.join(0.2)
                if runner.state is RunState.PAUSED and not self.lines.empty():
                    self.lines.get_nowait()
                    self.interrupts = 0
                    runner.resume()
        return handle.wait()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts += 1
        runner = self.runner
        if runner is None:
            raise KeyboardInterrupt  # nothing started yet
        if signum == signal.SIGINT and self.interrupts == 1 and self.interactive:
            while not self.lines.empty():
                self.lines.get_nowait()
            runner.pause()
            console.print(
                "pausing at the next step boundary (heater safe); Enter resumes, Ctrl-C aborts"
            )
        else:
            runner.abort()
            console.print("aborting: the heater is being made safe")

    def _read_lines(self) -> None:
        for line in sys.stdin:
            self.lines.put(line)


@contextmanager
def _progress_bar(plan: RunPlan) -> Iterator[Callable[[RunProgress], None]]:
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
                total=p.frames_total,
                completed=p.frames_done,
                left=f"{p.remaining_s:.0f} s left",
                description=f"{p.segment_kind} {p.setpoint_K:.1f} K{cycle}",
            )

        yield show


def _summary(result: RunResult, session: bool = False) -> str:
    """One line on how a run ended; `session`: a resumed run's own session."""
    speed = result.experiment_s / result.wall_s if result.wall_s > 0 else 0.0
    dropped = f" ({result.dropped_frames} dropped)" if result.dropped_frames else ""
    frames = f"{result.frames}/{result.frames_planned} frames"
    if session:
        frames = (
            f"{result.session_frames}/{result.frames_planned} frames in this session "
            "(the schedule from where it resumed)"
        )
    text = (
        f"{result.status}: {frames}{dropped}, "
        f"{result.experiment_s:.1f} s of experiment in {result.wall_s:.1f} s ({speed:.0f}x) "
        f"-> {result.directory}"
    )
    return f"{text}\n  {result.message}" if result.message else text


def schema() -> None:
    """Print the protocol file's JSON schema (for editors that validate YAML)."""
    typer.echo(json.dumps(Protocol.model_json_schema(), indent=2))
