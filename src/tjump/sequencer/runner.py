"""The scripting API: check a protocol against a rig, run it into a run directory, and
resume a run that was cut short.

    from tjump.sequencer import plan_run, run_plan, resume_run
    plan = plan_run("configs/protocols/demo.yaml", "configs/rigs/sim.yaml")
    result = run_plan(plan, Path("runs/demo"))
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from tjump import __version__
from tjump.errors import InputError
from tjump.files import load_yaml
from tjump.protocol import Protocol, Schedule, check_against_rig, load_protocol
from tjump.rig import Rig, RigConfig, build_rig, load_calibration, load_rig
from tjump.sequencer.sequencer import RunResult, Sequencer
from tjump.storage import RunDirectory
from tjump.storage.layout import (
    FRAMES_CSV,
    INPUT_FILES,
    RUN_CALIBRATION,
    RUN_HEATER_MODEL,
    RUN_MM_CONFIG,
    RUN_PROTOCOL,
    RUN_RIG,
)
from tjump.storage.repair import mark_segments, repair
from tjump.storage.scan import Row, read_table
from tjump.storage.verify import read_manifest, require_consistent
from tjump.storage.writer import RunWriter

DEFAULT_RIG = Path("configs/rigs/sim.yaml")


@dataclass(frozen=True)
class RunPlan:
    """A protocol checked against a rig: everything known before a device is touched."""

    protocol: Protocol
    protocol_path: Path | None  # None for a protocol built in Python
    rig: RigConfig
    rig_path: Path
    schedule: Schedule

    @property
    def exposure_ms(self) -> float:
        return self.protocol.exposure_ms or self.rig.camera.exposure_ms

    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of the frames this rig's camera will deliver."""
        camera = self.rig.devices.camera
        if camera.roi is not None:
            width, height = camera.roi[2], camera.roi[3]
        else:
            width, height = self.rig.sensor_size()
        return height // camera.binning, width // camera.binning

    def bytes_per_frame(self) -> int:
        rows, columns = self.frame_shape()
        return rows * columns * 2

    @property
    def seed(self) -> int | None:
        """The simulator's seed; a lab rig has none."""
        return self.rig.seed


def plan_run(protocol: Path | str | Protocol, rig_path: Path | str = DEFAULT_RIG) -> RunPlan:
    """Load (or take) the protocol and load the rig, and check one against the other;
    raises `InputError` naming any bad field. No device is touched."""
    rig_path = Path(rig_path)
    rig = load_rig(rig_path)
    if isinstance(protocol, Protocol):
        protocol_path, source = None, f"'{protocol.name}'"
    else:
        protocol_path = Path(protocol)
        protocol, source = load_protocol(protocol_path), str(protocol_path)
    calibration = load_calibration(rig.calibration)
    schedule = check_against_rig(protocol, rig, calibration, source)
    return RunPlan(protocol, protocol_path, rig, rig_path, schedule)


def default_output(plan: RunPlan) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{plan.protocol.name}"


def _manifest(plan: RunPlan, seed: int | None, shape: tuple[int, int]) -> dict[str, Any]:
    packages = ("numpy", "pymmcore-plus", "tifffile", "pydantic", "nidaqmx", "pyvisa")
    return {
        "tjump_version": __version__,
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "protocol": plan.protocol.name,
        "protocol_file": str(plan.protocol_path or "(built in Python)"),
        "rig": plan.rig.name,
        "rig_file": str(plan.rig_path),
        "simulated": plan.rig.kind == "simulated",
        "seed": seed,
        "frame_rate_hz": plan.schedule.frame_rate_hz,
        "exposure_ms": plan.exposure_ms,
        "frames_planned": plan.schedule.total_frames,
        "frame_shape": list(shape),
        "dtype": "uint16",
        "pixel_size_um": plan.rig.camera.pixel_size_um,
        "daq_sample_rate_hz": plan.rig.daq.sample_rate_hz,
        "heater_step_response": [[c.weight, c.tau_s] for c in plan.rig.step_response or ()],
        "versions": {"python": platform.python_version()}
        | {name: version(name) for name in packages},
    }


def run_plan(
    plan: RunPlan,
    output: Path | None = None,
    seed: int | None = None,
    connect: Callable[[Sequencer], None] | None = None,
    rig: Rig | None = None,
) -> RunResult:
    """Run the plan and return how it ended.

    `connect` is given the sequencer before it starts, to attach listeners to its signals
    and keep it for pause, resume and abort. Without `rig`, the plan's rig is built for
    this run and closed after it; a given `rig` stays open (its owner closes it)."""
    output = output or default_output(plan)
    run_seed = plan.seed if seed is None else seed
    own_rig = rig is None
    rig = rig or build_rig(plan.rig, run_seed)
    try:
        if output.exists() and any(p.name not in INPUT_FILES for p in output.iterdir()):
            raise InputError(f"output folder {output} already holds files; choose another")
        try:
            output.mkdir(parents=True, exist_ok=True)
            _save_inputs(plan, output)  # before the manifest: a run directory can resume
        except OSError as e:
            raise InputError(f"cannot create the run directory {output}: {e}") from e
        writer = RunWriter(
            output,
            _manifest(plan, run_seed, rig.camera.shape()),
            rig.daq.channels,
            rig.daq.sample_rate_hz,
        )
        sequencer = Sequencer(rig, plan.schedule, writer)
        if connect is not None:
            connect(sequencer)
        return sequencer.run()
    finally:
        if own_rig:
            rig.close()


def _save_inputs(plan: RunPlan, output: Path) -> None:
    """Keep the protocol, the rig file and its calibration with the run, so the run
    directory alone can be resumed and understood."""
    if plan.protocol_path is not None:
        shutil.copyfile(plan.protocol_path, output / RUN_PROTOCOL)
    else:
        text = yaml.safe_dump(
            plan.protocol.model_dump(mode="json", exclude_none=True), sort_keys=False
        )
        (output / RUN_PROTOCOL).write_text(text, encoding="utf-8")
    shutil.copyfile(plan.rig.calibration, output / RUN_CALIBRATION)
    rig = load_yaml(plan.rig_path, "rig") | {"calibration": RUN_CALIBRATION}
    heater_model = plan.rig.heater_model
    if heater_model is not None and heater_model.is_file():  # what `tjump calibrate` measured
        shutil.copyfile(heater_model, output / RUN_HEATER_MODEL)
        rig["heater_model"] = RUN_HEATER_MODEL
    mm_config = plan.rig.devices.camera.config
    if mm_config is not None:  # the lab camera's Micro-Manager configuration
        shutil.copyfile(mm_config, output / RUN_MM_CONFIG)
        rig["devices"]["camera"]["config"] = RUN_MM_CONFIG
    (output / RUN_RIG).write_text(yaml.safe_dump(rig, sort_keys=False), encoding="utf-8")


def unfinished_segments(run: RunDirectory, schedule: Schedule, rows: list[Row]) -> list[int]:
    """Segments not done: never logged as finished, or whose last frame is not on disk (a
    power cut can lose frames the log saw written)."""
    finished = {e.get("segment") for e in run.log() if e.get("event") == "segment_finished"}
    have = {r.get("schedule_frame", r["frame"]) for r in rows if not r.get("missing")}
    return [
        seg.index
        for seg in schedule.segments
        if seg.index not in finished or (seg.frames and seg.end_frame - 1 not in have)
    ]


def resume_point(run: RunDirectory, schedule: Schedule, rows: list[Row] | None = None) -> int:
    """Index of the segment to resume at: the first not done that is not the cooling half
    of a cycle (the next whole cycle), or -1 if nothing is left."""
    if rows is None:
        rows = read_table(run.path / FRAMES_CSV).rows
    undone = set(unfinished_segments(run, schedule, rows))
    for seg in schedule.segments:
        if seg.index in undone and seg.kind != "cool":
            return seg.index
    return -1


def _cut_short(schedule: Schedule, undone: list[int], start: int) -> set[int]:
    """Segments whose frames so far belong to a cycle not finished: those done again from
    `start` on, and a cooling skipped with the heating before it."""
    cut = {i for i in undone if i < start} | {s.index for s in schedule.segments[start:]}
    kinds = {s.index: s.kind for s in schedule.segments}
    for i in list(cut):
        if kinds.get(i) == "cool" and kinds.get(i - 1) in ("heat", "ablation"):
            cut.add(i - 1)
    return cut


@dataclass(frozen=True)
class ResumeResult:
    """How a resumed session ended, with the whole run's totals and the repair before it."""

    session: RunResult
    run_frames: int  # readable frames of the whole run now
    run_frames_planned: int  # frames of the whole schedule
    interrupted_frames: int  # frames of cycles cut short and redone (kept, marked)
    repairs: list[str]


def resume_run(
    directory: Path | str, connect: Callable[[Sequencer], None] | None = None
) -> RunResult:
    """Continue an interrupted run in its own directory at the next whole cycle; the
    frames already taken stay, and the gap is recorded in the log and the manifest."""
    return resume_run_checked(directory, connect).session


def resume_run_checked(
    directory: Path | str, connect: Callable[[Sequencer], None] | None = None
) -> ResumeResult:
    """`resume_run`, telling also what the repair before it did and the run's totals.

    The run directory is first made consistent (`repair`: a torn page cut, a row a crash
    lost rebuilt from its page, the unfinished cycle marked interrupted), then new frames
    are numbered on from the highest number the run holds."""
    path = Path(directory)
    manifest = read_manifest(path)
    if manifest.get("status") == "complete":
        raise InputError(f"run {path} is already complete; nothing to resume")
    repairs = repair(path)
    verdict = require_consistent(path, "resume")
    run = RunDirectory(path)
    manifest = run.manifest()
    plan = plan_run(run.path / RUN_PROTOCOL, run.path / RUN_RIG)
    rows = verdict.table.rows
    start = resume_point(run, plan.schedule, rows)
    if start >= 0:
        undone = unfinished_segments(run, plan.schedule, rows)
        marked = mark_segments(path, _cut_short(plan.schedule, undone, start))
        if marked:
            repairs.append(f"{FRAMES_CSV}: {marked} frames of cycles done again marked interrupted")
    if start < 0:
        raise InputError(
            f"run {run.path} has finished every step, though its status is "
            f"'{manifest.get('status')}'; nothing to resume (analyse or export it as it is)"
        )
    frames_done = len(verdict.pages)
    last_time = max((float(r["time_s"]) for r in rows), default=0.0)
    gap_s = max(0.0, time.time() - (run.path / FRAMES_CSV).stat().st_mtime)
    offset = last_time + 1.0 / plan.schedule.frame_rate_hz + gap_s
    schedule = plan.schedule.from_segment(start)
    sessions = [
        *manifest.get("sessions", []),
        {
            "resumed": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "at_segment": start,
            "time_offset_s": round(offset, 6),
            "gap_s": round(gap_s, 3),
            "frames_before": frames_done,
            "first_frame": verdict.next_frame,
        },
    ]
    rig = build_rig(plan.rig, manifest.get("seed"))
    try:
        writer = RunWriter(
            run.path,
            {**manifest, "frames": frames_done, "sessions": sessions},
            rig.daq.channels,
            rig.daq.sample_rate_hz,
            resume=True,
            next_frame=verdict.next_frame,
        )
        writer.log(
            "run_resumed",
            at_segment=start,
            time_s=offset,
            gap_s=gap_s,
            frames_before=frames_done,
            first_frame=verdict.next_frame,
        )
        sequencer = Sequencer(rig, schedule, writer, time_offset_s=offset, online_traces=False)
        if connect is not None:
            connect(sequencer)
        result = sequencer.run()
    finally:
        rig.close()
    interrupted = sum(1 for r in read_table(path / FRAMES_CSV).rows if r.get("interrupted"))
    return ResumeResult(result, result.frames, plan.schedule.total_frames, interrupted, repairs)


def run_protocol(
    protocol_path: Path | str,
    rig_path: Path | str = DEFAULT_RIG,
    output: Path | str | None = None,
    seed: int | None = None,
) -> RunResult:
    """Check and run a protocol file on a rig file."""
    plan = plan_run(protocol_path, rig_path)
    return run_plan(plan, Path(output) if output else None, seed)
