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
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from tjump.cli.console import console
from tjump.errors import TjumpError
from tjump.protocol import Protocol
from tjump.sequencer import Progress as RunProgress
from tjump.sequencer import RunPlan, RunResult, Sequencer, plan_run, run_plan
from tjump.sequencer.runner import DEFAULT_RIG, ResumeResult, default_output, resume_run_checked
from tjump.storage import RunDirectory
from tjump.storage.layout import RUN_PROTOCOL, RUN_RIG

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
        hot = sorted({seg.setpoint_K for seg in segs if seg.kind in ("heat", "ablation", "hold")})
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
    result = _supervise(lambda connect: run_plan(plan, output, seed, connect), plan)
    typer.echo(_summary(result))
    if result.status != "complete":
        raise typer.Exit(1)


def resume(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of an interrupted run.")],
) -> None:
    """Continue an interrupted run in its own directory, at the next whole cycle."""
    RunDirectory(run_dir)  # a clear message if it is not a run directory
    plan = plan_run(run_dir / RUN_PROTOCOL, run_dir / RUN_RIG)
    outcome: dict[str, ResumeResult] = {}

    def start(connect: Callable[[Sequencer], None]) -> RunResult:
        outcome["resumed"] = resume_run_checked(run_dir, connect)
        return outcome["resumed"].session

    result = _supervise(start, plan)
    resumed = outcome["resumed"]
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
    if result.status != "complete":
        raise typer.Exit(1)


def _supervise(
    start: Callable[[Callable[[Sequencer], None]], RunResult], plan: RunPlan
) -> RunResult:
    """Run in a worker thread with a progress bar; the main thread handles Ctrl-C and
    SIGTERM and, in a terminal, resuming from a pause with Enter."""
    holder: dict[str, Sequencer] = {}
    outcome: dict[str, RunResult | BaseException] = {}
    interactive = sys.stdin.isatty()
    lines: queue.Queue[str] = queue.Queue()
    interrupts = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        seq = holder.get("sequencer")
        if seq is None:
            raise KeyboardInterrupt  # nothing started yet
        if signum == signal.SIGINT and interrupts == 1 and interactive:
            while not lines.empty():
                lines.get_nowait()
            seq.pause()
            console.print(
                "pausing at the next step boundary (heater safe); Enter resumes, Ctrl-C aborts"
            )
        else:
            seq.abort()
            console.print("aborting: the heater is being made safe")

    def read_lines() -> None:
        for line in sys.stdin:
            lines.put(line)

    with _progress_bar(plan) as show:

        def connect(seq: Sequencer) -> None:
            holder["sequencer"] = seq
            seq.events.progress.connect(show)

        def work() -> None:
            try:
                outcome["result"] = start(connect)
            except BaseException as e:  # handed to the main thread, which reports it
                outcome["error"] = e

        worker = threading.Thread(target=work, name="tjump-run")
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if interactive:
                threading.Thread(target=read_lines, name="tjump-stdin", daemon=True).start()
            worker.start()
            while worker.is_alive():
                worker.join(0.2)
                seq = holder.get("sequencer")
                if seq is not None and seq.state == "paused" and not lines.empty():
                    lines.get_nowait()
                    interrupts = 0
                    seq.resume()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    result = outcome.get("result", outcome.get("error"))
    if not isinstance(result, RunResult):
        raise result if isinstance(result, BaseException) else RuntimeError("the run ended")
    return result


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
