"""Faults injected into the simulated rig: after each, the heater is off (read back from
the simulator), the frames written before the fault read back, and the manifest says what
happened."""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tjump.devices.faults import DroppedFrames
from tjump.errors import DeviceError, StorageError
from tjump.protocol.schedule import Segment
from tjump.sequencer import Runner, RunPlan, make_runner, plan_run
from tjump.sim.rig import SimRig, build_sim_rig
from tjump.storage import RunDirectory, RunWriter
from tjump.storage.pages import PageWriter

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


@pytest.fixture
def plan(write_file: WriteFile) -> RunPlan:
    rig_file = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=3, heat_s=5, cool_s=3, baseline_s=2))
    return plan_run(protocol, rig_file)


@pytest.fixture
def rig(plan: RunPlan) -> Iterator[SimRig]:
    with build_sim_rig(plan.rig) as rig:
        yield rig


def make_sequencer(plan: RunPlan, rig: SimRig, out: Path, **options: Any) -> Runner:
    writer = RunWriter(out, {"protocol": "test"}, rig.daq.channels, rig.daq.sample_rate_hz)
    return make_runner(rig, plan.schedule, writer, **options)


def assert_heater_off(rig: SimRig) -> None:
    assert rig.generator_output() == (0.0, False)
    assert rig.heater.is_safe()


def assert_frames_intact(out: Path, at_least: int) -> RunDirectory:
    run = RunDirectory(out)
    assert run.frame_count() == len(run.frames_table()) >= at_least
    assert run.read_frames().shape[0] == run.frame_count()
    return run


def test_camera_timeout_mid_cycle(plan: RunPlan, rig: SimRig, tmp_path: Path) -> None:
    rig.faults.camera_stalls_after = 45  # the cable comes out in the first heat
    seq = make_sequencer(plan, rig, tmp_path / "out", frame_timeout_s=0.5)
    with pytest.raises(DroppedFrames, match="1 of 46 triggered frames never arrived"):
        seq.run()
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", 45)
    assert run.manifest()["status"] == "failed"
    assert "never arrived" in run.manifest()["message"]
    assert run.manifest()["dropped_frames"] == 1


def test_daq_overflow(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = rig.daq.read
    calls = {"n": 0}

    def overflowing_read() -> Any:
        calls["n"] += 1
        if calls["n"] > 4:  # mid-run: the engine reads about once per 24 frames
            raise DeviceError(rig.daq.name, "input buffer overflowed: samples were lost")
        return read()

    monkeypatch.setattr(rig.daq, "read", overflowing_read)
    with pytest.raises(DeviceError, match="overflowed"):
        make_sequencer(plan, rig, tmp_path / "out").run()
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", 30)
    assert run.manifest()["status"] == "failed"


def test_full_disk(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page_write = PageWriter.write
    pages = {"n": 0}

    def filling_disk(self: PageWriter, data: Any, *args: Any, **kw: Any) -> Any:
        if pages["n"] >= 70:
            raise OSError(errno.ENOSPC, "No space left on device")
        pages["n"] += 1
        return page_write(self, data, *args, **kw)

    monkeypatch.setattr(PageWriter, "write", filling_disk)
    with pytest.raises(StorageError, match="No space left on device"):
        make_sequencer(plan, rig, tmp_path / "out").run()
    monkeypatch.undo()
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", 70)
    assert run.frame_count() == 70
    assert run.manifest()["status"] == "failed"
    assert "tjump resume" in run.manifest()["message"]


def test_listener_exception_does_not_stop_the_run(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    seq = make_sequencer(plan, rig, tmp_path / "out")

    def broken(image: object, record: object) -> None:
        raise ZeroDivisionError("a plotting bug")

    seq.events.frame_acquired.connect(broken)
    result = seq.run()
    assert result.status == "complete"
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", plan.schedule.total_frames)
    assert run.manifest()["listener_errors"] == plan.schedule.total_frames
    assert next(e for e in run.log() if e["event"] == "listener_error")["error"].startswith(
        "ZeroDivisionError"
    )


def test_watchdog_makes_the_heater_safe_when_the_loop_stalls(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seq = make_sequencer(plan, rig, tmp_path / "out", watchdog_s=0.5, frame_timeout_s=3.0)
    rig.faults.camera_stalls_after = 45  # the loop now waits 3 s for a frame: over 0.5 s
    heater_safe_during_stall: list[bool] = []
    original = seq._watchdog_expired

    def expire() -> None:
        original()
        heater_safe_during_stall.append(rig.heater.is_safe())

    monkeypatch.setattr(seq, "_watchdog_expired", expire)
    with pytest.raises(DroppedFrames):
        seq.run()
    assert heater_safe_during_stall == [True]
    assert_heater_off(rig)
    assert any(e["event"] == "watchdog" for e in RunDirectory(tmp_path / "out").log())


def test_a_heat_step_ends_by_itself_if_the_program_stops(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    """The generator bounds each heat: with the program frozen mid-heat, the drive still
    drops to 0 V when the step's time is up."""
    assert rig.heater.bounds_heat_steps
    seq = make_sequencer(plan, rig, tmp_path / "out")
    seen: list[tuple[float, float]] = []

    def freeze(segment: Segment) -> None:
        if segment.kind != "heat":
            return
        start = rig.clock.now()
        rig.clock.run_to(start + segment.duration_s - 0.05)  # nobody touches the heater
        seen.append((rig.film_drive_V(), rig.film_temperature_K()))
        rig.clock.run_to(start + segment.duration_s + 0.5)
        seen.append((rig.film_drive_V(), rig.film_temperature_K()))
        seq.abort()

    seq.events.segment_started.connect(freeze)
    assert seq.run().status == "aborted"
    (drive_during, hot), (drive_after, _) = seen
    assert drive_during == pytest.approx(rig.heater.calibration.drive_for(384.9), rel=1e-3)
    assert hot > 370.0
    assert drive_after == 0.0
    assert_heater_off(rig)


def test_a_dropped_frame_is_detected_counted_and_recorded(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    """A frame exposed but lost on its way: the camera's counter shows the gap, the
    frames after it keep their identity, and the loss is recorded."""
    rig.faults.camera_drops = {60}
    result = make_sequencer(plan, rig, tmp_path / "out").run()
    assert (result.status, result.dropped_frames) == ("complete", 1)
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", plan.schedule.total_frames - 1)
    rows = run.frames_table()
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))  # the order taken
    frames = [int(r["schedule_frame"]) for r in rows]  # the gap is in the schedule's place
    assert 60 not in frames and frames == [f for f in range(len(frames) + 1) if f != 60]
    assert run.manifest()["dropped_frames"] == 1
    assert [e["frames"] for e in run.log() if e["event"] == "frames_dropped"] == [[60]]


def test_missed_triggers_stop_the_run_with_a_count(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    """Triggers the camera never answers: the run stops, saying how many."""
    rig.faults.camera_stalls_after = 58
    seq = make_sequencer(plan, rig, tmp_path / "out", frame_timeout_s=0.5)
    with pytest.raises(DeviceError, match="triggered frames never arrived"):
        seq.run()
    assert_heater_off(rig)
    run = assert_frames_intact(tmp_path / "out", 58)
    assert run.manifest()["dropped_frames"] >= 1
