"""Composable protocol steps: light, wait, repeat, and per-step frame rate and exposure."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tjump.protocol import load_protocol
from tjump.protocol.schedule import build_schedule
from tjump.sequencer import plan_run, run_plan
from tjump.sim.rig import build_sim_rig
from tjump.storage import RunDirectory

from conftest import rig_yaml

WriteFile = Callable[[str, str], Path]

COMPOSED = """
name: composed
frame_rate_hz: 10
steps:
  - kind: baseline
    duration_s: 2
  - kind: repeat
    times: 2
    steps:
      - kind: series
        temperatures_K: [380]
        cycles: 1
        heat_s: 3
        cool_s: 2
      - kind: light
        duration_s: 1
        frame_rate_hz: 20
        exposure_ms: 20
  - kind: wait
    duration_s: 30
  - kind: hold
    temperature_K: 350
    duration_s: 2
"""


def test_schedule_unrolls_repeats_and_takes_no_frames_while_waiting(write_file: WriteFile) -> None:
    protocol = load_protocol(write_file("p.yaml", COMPOSED))
    schedule = build_schedule(protocol, ambient_K=293.0, default_exposure_ms=50.0)
    kinds = [s.kind for s in schedule.segments]
    assert kinds == ["baseline", "heat", "cool", "light", "heat", "cool", "light", "wait", "hold"]
    light = schedule.segments[3]
    assert (light.frame_rate_hz, light.exposure_ms, light.frames, light.light) == (20, 20, 20, True)
    assert light.field == "steps.1.steps.1.temperature_K"
    wait = schedule.segments[7]
    assert wait.frames == 0 and wait.duration_s == 30
    assert schedule.total_frames == 20 + 2 * (30 + 20 + 20) + 20
    assert schedule.duration_s == pytest.approx(2 + 2 * (3 + 2 + 1) + 30 + 2)


def test_composed_protocol_runs_with_new_pulse_trains(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", COMPOSED)
    plan = plan_run(protocol, rig_file)
    with build_sim_rig(plan.rig) as rig:
        result = run_plan(plan, protocol.parent / "out", rig=rig)
        assert rig.heater.is_safe()
        shutter = rig.digital_line_changes()
    assert result.status == "complete"
    run = RunDirectory(protocol.parent / "out")
    rows = run.frames_table()
    assert run.frame_count() == len(rows) == plan.schedule.total_frames
    times = [float(r["time_s"]) for r in rows]
    kinds = [r["kind"] for r in rows]
    light = [t for t, k in zip(times, kinds, strict=True) if k == "light"]
    assert light[1] - light[0] == pytest.approx(0.05)  # 20 frames/s inside the light step
    hold_start = kinds.index("hold")
    # the wait took 30 s of the DAQ's time but no frames
    assert times[hold_start] - times[hold_start - 1] == pytest.approx(30.05, abs=1e-6)
    assert ("shutter", True) in shutter and shutter[-1] == ("shutter", False)
    trains = [e for e in run.log() if e["event"] == "pulse_train"]
    assert [t["frame_rate_hz"] for t in trains] == [20, 10, 20, 10]
