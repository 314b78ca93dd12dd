"""The scripting API: a runner for a plan, ready to connect to and start.

from tjump.sequencer import open_run, plan_run, run_plan
plan = plan_run("configs/protocols/demo.yaml", "configs/rigs/sim.yaml")
result = run_plan(plan, Path("runs/demo"))      # or, to listen and control:
runner = open_run(plan, Path("runs/demo2"))
runner.events.progress.connect(print)
result = runner.start().wait()
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import threading
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import yaml

from tjump import __version__
from tjump.analysis import Detections
from tjump.errors import InputError
from tjump.files import load_yaml
from tjump.protocol import Protocol, Schedule
from tjump.rig import Rig, build_rig
from tjump.sequencer.closed_loop import build_closed_loop, redo_frames, uses_closed_loop
from tjump.sequencer.engine import FRAME_TIMEOUT_S, LOOKAHEAD_FRAMES, RigEngine
from tjump.sequencer.events import RunResult
from tjump.sequencer.plan import DEFAULT_RIG, RunPlan, default_output, plan_run
from tjump.sequencer.runner import Runner, RunPolicy
from tjump.sequencer.sinks import (
    BASELINE_FRAMES,
    LiveTraces,
    RunDirectorySink,
    Sink,
    simulation_sinks,
)
from tjump.storage.layout import (
    INPUT_FILES,
    RUN_CALIBRATION,
    RUN_HEATER_MODEL,
    RUN_MM_CONFIG,
    RUN_PROTOCOL,
    RUN_RIG,
)
from tjump.storage.writer import RunWriter

CLOSED_LOOP_LOOKAHEAD = 2  # frames a simulated clock may run ahead of a closed loop


def make_runner(
    rig: Rig,
    schedule: Schedule,
    writer: RunWriter,
    *,
    time_offset_s: float = 0.0,
    online_traces: bool = True,
    baseline_frames: int = BASELINE_FRAMES,
    particles: Detections | None = None,
    sinks: Sequence[Sink] = (),
    policy: RunPolicy | None = None,
    watchdog_s: float = 30.0,
    frame_timeout_s: float = FRAME_TIMEOUT_S,
    lookahead_frames: int = LOOKAHEAD_FRAMES,
    own_rig: bool = False,
    protocol: Protocol | None = None,
) -> Runner:
    """A runner of `schedule` on `rig` into `writer`'s run directory: the rig engine, the
    run directory, live traces (of `particles`, a resumed run's, or of those found in the
    first `baseline_frames`), a simulated rig's truth, then `sinks`. `own_rig`: close the
    rig after the run. A `protocol` with closed-loop fields gets its `ClosedLoop` as the
    policy."""
    closed = protocol is not None and uses_closed_loop(protocol)
    if closed:  # decisions act within a few frames of what they see (a simulated clock
        lookahead_frames = min(lookahead_frames, CLOSED_LOOP_LOOKAHEAD)  # runs no further)
    engine = RigEngine(
        rig,
        schedule,
        threading.Event(),
        first_frame=writer.next_frame,
        session=writer.session,
        time_offset_s=time_offset_s,
        lookahead_frames=lookahead_frames,
        frame_timeout_s=frame_timeout_s,
        own_rig=own_rig,
        spare_frames=redo_frames(protocol, schedule) if protocol is not None else 0,
    )
    extra = list(sinks)
    if protocol is not None and closed:
        loop = build_closed_loop(protocol, schedule, rig, engine, writer.directory)
        policy, extra = loop, [*extra, loop]
    return Runner(
        engine,
        schedule,
        RunDirectorySink(writer, engine.sample_offset),
        LiveTraces(baseline_frames, particles) if online_traces else None,
        [*simulation_sinks(rig, writer.directory, time_offset_s), *extra],
        policy,
        watchdog_s,
    )


def open_run(
    plan: RunPlan,
    output: Path | None = None,
    seed: int | None = None,
    rig: Rig | None = None,
    **options: Any,
) -> Runner:
    """Create the run directory and a runner for `plan`, not yet started. Without `rig`,
    the plan's rig is built for this run and closed after it; a given `rig` stays open
    (its owner closes it). `options` go to `make_runner`."""
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
        return make_runner(
            rig, plan.schedule, writer, own_rig=own_rig, protocol=plan.protocol, **options
        )
    except BaseException:
        if own_rig:
            rig.close()
        raise


def run_plan(
    plan: RunPlan,
    output: Path | None = None,
    seed: int | None = None,
    rig: Rig | None = None,
    **options: Any,
) -> RunResult:
    """Run the plan in this thread and return how it ended (`open_run`, then `run`)."""
    return open_run(plan, output, seed, rig, **options).run()


def run_protocol(
    protocol_path: Path | str,
    rig_path: Path | str = DEFAULT_RIG,
    output: Path | str | None = None,
    seed: int | None = None,
) -> RunResult:
    """Check and run a protocol file on a rig file."""
    plan = plan_run(protocol_path, rig_path)
    return run_plan(plan, Path(output) if output else None, seed)


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
