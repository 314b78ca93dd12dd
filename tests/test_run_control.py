"""Pause, resume and abort: the heater is safe while paused and after an abort, frame
times stay on the DAQ's timebase across a pause, and nothing acquired is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tjump.protocol.schedule import Segment
from tjump.sequencer import Runner, open_run, plan_run, run_plan
from tjump.sim.rig import build_sim_rig
from tjump.storage import RunDirectory

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def test_pause_makes_the_heater_safe_and_resume_continues(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=4, cool_s=2, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    states: list[str] = []
    safe_while_paused: list[bool] = []
    with build_sim_rig(plan.rig) as rig:

        def connect(seq: Runner) -> None:
            def on_segment(segment: Segment) -> None:
                if segment.index == 2:  # after the first heat: pause before the next
                    seq.pause()

            def on_state(state: str) -> None:
                states.append(state)
                if state == "paused":
                    safe_while_paused.append(rig.heater.is_safe())
                    threading.Timer(0.3, seq.resume).start()

            seq.events.segment_started.connect(on_segment)
            seq.events.state_changed.connect(on_state)

        runner = open_run(plan, protocol.parent / "out", rig=rig)
        connect(runner)
        result = runner.run()
        assert rig.heater.is_safe()
    assert result.status == "complete"
    assert states == ["running", "pausing", "paused", "running", "finished"]
    assert safe_while_paused == [True]
    run = RunDirectory(protocol.parent / "out")
    assert run.frame_count() == len(run.frames_table()) == plan.schedule.total_frames
    log = {e["event"]: e for e in run.log()}
    assert log["resumed"]["gap_s"] == pytest.approx(0.3, abs=0.25)
    rows = run.frames_table()
    pause_frame = plan.schedule.segments[3].first_frame
    before, after = float(rows[pause_frame - 1]["time_s"]), float(rows[pause_frame]["time_s"])
    assert after - before == pytest.approx(0.1 + log["resumed"]["gap_s"], abs=1e-6)
    assert int(rows[pause_frame]["daq_index"]) == round(after * 200)


def test_abort_stops_at_once_with_the_heater_off(write_file: WriteFile) -> None:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=3, heat_s=10, cool_s=5))
    plan = plan_run(protocol, rig_file)
    with build_sim_rig(plan.rig) as rig:

        def connect(seq: Runner) -> None:
            def on_frame(image: object, record: object) -> None:
                if getattr(record, "kind", "") == "heat":
                    seq.abort()

            seq.events.frame_acquired.connect(on_frame)

        runner = open_run(plan, protocol.parent / "out", rig=rig)
        connect(runner)
        result = runner.run()
        assert rig.generator_output() == (0.0, False)
    assert result.status == "aborted"
    run = RunDirectory(protocol.parent / "out")
    assert run.manifest()["status"] == "aborted"
    first_heat = plan.schedule.segments[1].first_frame
    assert result.frames == first_heat + 1
    assert run.frame_count() == len(run.frames_table()) == result.frames


def test_one_rig_runs_protocol_after_protocol(write_file: WriteFile) -> None:
    """A rig kept open (as a GUI or a script keeps it) takes run after run."""
    rig_file = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=3, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=2, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, rig_file)
    with build_sim_rig(plan.rig) as rig:
        results = [run_plan(plan, protocol.parent / f"out{i}", rig=rig) for i in range(3)]
        assert rig.heater.is_safe()
    assert [r.status for r in results] == ["complete"] * 3
    assert [r.frames for r in results] == [plan.schedule.total_frames] * 3
