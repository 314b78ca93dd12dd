"""The simulated camera rendering in a process of its own (as `tjump run` and the GUI use
it): the same frames as rendered in the application, faults included, handed over through
a shared-memory ring, and nothing left behind when the rig closes."""

from __future__ import annotations

from collections.abc import Callable
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path

import numpy as np
import pytest

from tjump.rig.simulator import simulator
from tjump.sequencer import plan_run, run_plan
from tjump.sim.rig import SimulatedRigs, build_sim_rig
from tjump.storage import RunDirectory

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def test_frames_rendered_apart_are_the_frames_rendered_here(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=48, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    frames, rows = {}, {}
    for apart in (False, True):
        out = protocol.parent / f"out-{apart}"
        with build_sim_rig(plan.rig, camera_process=apart) as rig:
            assert (rig.render_process is not None) == apart
            rig.faults.camera_drops = {12}  # exposed but lost, in both
            result = run_plan(plan, out, rig=rig)
        assert (result.status, result.dropped_frames) == ("complete", 1)
        run = RunDirectory(out)
        frames[apart] = run.read_frames()
        rows[apart] = [(r["schedule_frame"], r["time_s"]) for r in run.frames_table()]
    assert frames[True].shape == (plan.schedule.total_frames - 1, 48, 64)
    assert np.array_equal(frames[True], frames[False])  # pixel for pixel
    assert rows[True] == rows[False]


def test_closing_the_rig_ends_the_process_and_frees_the_ring(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=32, height=32, particles=2, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=1, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    with build_sim_rig(plan.rig, camera_process=True) as rig:
        frames = rig.render_process
        assert frames is not None
        process, memory = frames._process, frames._shm.name
        assert process.poll() is None  # running
        rig.faults.camera_stalls_after = 5  # a sequence cut short leaves no frame in flight
        with pytest.raises(Exception, match="never arrived"):
            run_plan(plan, protocol.parent / "out", rig=rig)
        assert frames.in_flight() == 0
    assert process.returncode == 0  # ended when asked
    with pytest.raises(FileNotFoundError):
        SharedMemory(name=memory)


def test_the_tjump_command_renders_the_simulated_camera_apart() -> None:
    import tjump.cli as cli

    made = cli._simulator()
    assert isinstance(made, SimulatedRigs) and made.camera_process
    here = simulator("the tests")
    assert isinstance(here, SimulatedRigs) and not here.camera_process  # install()'s default


def test_the_renderer_process_imports_numpy_only() -> None:
    """The renderer starts with each simulated rig: it must not import scipy (seconds on a
    loaded machine) nor the application."""
    import subprocess
    import sys

    code = (
        "import sys, tjump.sim.render_process; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scipy', 'pymmcore_plus')"
        " or m.startswith('tjump.') and m not in ('tjump.sim', 'tjump.sim.frames',"
        " 'tjump.sim.render_process')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("apart", [False, True])
def test_replayed_frames_are_the_frames_on_disk(write_file: WriteFile, apart: bool) -> None:
    """A benchmark's replay (`SimWorld.replay`): the camera serves the given frames in turn,
    one per trigger, with or without a renderer process, and the run stores exactly them;
    the sample is not simulated then."""
    rig_file = write_file("rig.yaml", rig_yaml(width=48, height=32, particles=2, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    pool = np.random.default_rng(4).integers(0, 2**14, (7, 32, 48), dtype=np.uint16)
    with build_sim_rig(plan.rig, camera_process=apart) as rig:
        rig.model.replay = pool
        result = run_plan(plan, protocol.parent / "out", rig=rig)
        assert rig.model.transitions == []
    assert (result.status, result.frames) == ("complete", plan.schedule.total_frames)
    run = RunDirectory(protocol.parent / "out")
    numbers = [int(r["camera_frame"]) for r in run.frames_table()]
    assert np.array_equal(run.read_frames(), pool[np.array(numbers) % len(pool)])
