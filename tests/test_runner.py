"""The runner under control from other threads, and sinks that fail: whatever happens and
whenever, the heater ends at 0 V with the output off and every frame handed to the run
directory is on disk."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from tjump.protocol.schedule import Segment, SegmentKind
from tjump.rig.config import TimeAboveLimit
from tjump.rig.heater import TimeAbove
from tjump.sequencer import (
    Decision,
    FinishReason,
    RunPlan,
    RunState,
    open_run,
    plan_run,
)
from tjump.sequencer.sinks import Ending, Sink
from tjump.sim.rig import SimRig, build_sim_rig
from tjump.storage import RunDirectory
from tjump.storage.layout import FrameRecord

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


@pytest.fixture
def plan(write_file: WriteFile) -> RunPlan:
    rig_file = write_file("rig.yaml", rig_yaml(width=48, height=48, particles=3, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=2, heat_s=2, cool_s=1, baseline_s=2))
    return plan_run(protocol, rig_file)


@pytest.fixture
def rig(plan: RunPlan) -> Iterator[SimRig]:
    with build_sim_rig(plan.rig) as rig:
        yield rig


def assert_heater_off(rig: SimRig) -> None:
    assert rig.generator_output() == (0.0, False)
    assert rig.heater.is_safe()


def test_abort_before_the_start_starts_nothing(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    monkeypatch.setattr(rig.camera, "start", lambda n: started.append("camera"))
    monkeypatch.setattr(rig.daq, "start", lambda fps: started.append("daq"))
    runner = open_run(plan, tmp_path / "out", rig=rig)
    states: list[RunState] = []
    runner.events.state_changed.connect(states.append)
    runner.abort()
    result = runner.start().wait(30)
    assert started == []
    assert_heater_off(rig)
    assert (result.status, result.frames) == (FinishReason.ABORTED, 0)
    assert "before it started" in result.message
    assert states == [RunState.FINISHED]
    run = RunDirectory(tmp_path / "out")
    assert run.manifest()["status"] == "aborted"
    assert run.frame_count() == 0
    assert "run_started" not in [e["event"] for e in run.log()]


def test_pause_before_the_start_waits_with_the_heater_safe(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    runner = open_run(plan, tmp_path / "out", rig=rig)
    runner.pause()
    assert runner.state is RunState.PAUSING
    handle = runner.start()
    deadline = time.monotonic() + 20
    while runner.state is not RunState.PAUSED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert runner.state is RunState.PAUSED
    assert rig.heater.is_safe()
    runner.resume()
    result = handle.wait(60)
    assert result.status is FinishReason.COMPLETE
    assert RunDirectory(tmp_path / "out").frame_count() == plan.schedule.total_frames


@pytest.mark.parametrize("seed", range(6))
def test_control_from_another_thread_at_random_moments(
    plan: RunPlan, rig: SimRig, tmp_path: Path, seed: int
) -> None:
    """Pause, resume and abort fired from another thread at random times, before and
    during the run: it always ends, the heater safe, every frame written readable."""
    chance = random.Random(seed)
    runner = open_run(plan, tmp_path / "out", rig=rig)
    states: list[RunState] = []
    runner.events.state_changed.connect(states.append)
    actions = [chance.choice((runner.pause, runner.resume)) for _ in range(6)]
    actions.insert(chance.randrange(len(actions) + 1), runner.abort)
    actions = actions[: chance.randrange(1, len(actions) + 1)]  # maybe no abort at all
    delays = [chance.uniform(0.0, 0.15) for _ in actions]

    def control() -> None:
        for delay, action in zip(delays, actions, strict=True):
            time.sleep(delay)
            action()
        runner.resume()  # never left paused for ever

    controller = threading.Thread(target=control)
    if chance.random() < 0.3:
        control_first = True
        controller.start()
        time.sleep(chance.uniform(0.0, 0.1))
    else:
        control_first = False
    handle = runner.start()
    if not control_first:
        controller.start()
    controller.join(30)
    result = handle.wait(120)
    assert_heater_off(rig)
    assert result.status in (FinishReason.COMPLETE, FinishReason.ABORTED)
    if runner.abort not in actions:
        assert result.status is FinishReason.COMPLETE
    run = RunDirectory(tmp_path / "out")
    assert run.frame_count() == len(run.frames_table()) == result.frames
    if result.frames:
        assert run.read_frames().shape[0] == result.frames
    assert run.manifest()["status"] == result.status
    assert states[-1] is RunState.FINISHED and states.count(RunState.FINISHED) == 1
    if result.status is FinishReason.COMPLETE:
        assert result.frames == plan.schedule.total_frames


class FailingSink(Sink):
    """Takes frames like any sink, then breaks (a full OME-Zarr disk, a bug)."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.frames: list[int] = []
        self.closed: Ending | None = None

    def frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        if len(self.frames) == self.fail_at:
            raise OSError(28, "No space left on device")
        self.frames.append(record.frame)

    def close(self, ending: Ending) -> None:
        self.closed = ending


def logged(directory: Path, event: str) -> list[dict[str, object]]:
    lines = (directory / "log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == event]


def test_a_sink_that_fails_is_left_out_and_the_run_goes_on(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    """A sink that is not the run directory (an OME-Zarr copy, a plot) breaks mid-run: the
    run completes with every frame on disk; the sink is heard of no more but closed, and
    the log and the manifest say what happened."""
    sink = FailingSink(fail_at=33)  # in the first heat (the baseline is 20 frames)
    runner = open_run(plan, tmp_path / "out", rig=rig, sinks=[sink])
    result = runner.start().wait(60)
    assert_heater_off(rig)
    assert result.status is FinishReason.COMPLETE
    total = plan.schedule.total_frames
    run = RunDirectory(tmp_path / "out")
    assert result.frames == run.frame_count() == len(run.frames_table()) == total
    assert run.read_frames().shape[0] == total
    assert len(sink.frames) == 33  # not fed after it failed
    assert sink.closed is not None and sink.closed.sink_errors == 1
    assert run.manifest()["status"] == "complete" and run.manifest()["sink_errors"] == 1
    (error,) = logged(tmp_path / "out", "sink_error")
    assert error["sink"] == "FailingSink" and "No space left" in str(error["error"])


def test_live_traces_that_fail_leave_the_frames_whole(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live traces raise at the 30th frame: the run completes, every frame is on disk, the
    traces written before stay, and no more are measured."""
    from tjump.analysis import OnlineTraces

    measured = {"n": 0}
    add = OnlineTraces.add

    def failing(self: OnlineTraces, image: NDArray[np.uint16]) -> object:
        measured["n"] += 1
        if measured["n"] == 30:
            raise FloatingPointError("a bug in the live traces")
        return add(self, image)

    monkeypatch.setattr(OnlineTraces, "add", failing)
    runner = open_run(plan, tmp_path / "out", rig=rig)
    rows: list[int] = []
    runner.events.traces_measured.connect(lambda first, r: rows.append(len(r)))
    result = runner.run()
    assert_heater_off(rig)
    assert result.status is FinishReason.COMPLETE
    run = RunDirectory(tmp_path / "out")
    assert run.frame_count() == len(run.frames_table()) == plan.schedule.total_frames
    assert sum(rows) == 29 and measured["n"] == 30  # 20 at the baseline's end, then 9
    traces = (tmp_path / "out" / "live-traces.csv").read_text().splitlines()
    assert len(traces) == 1 + 29
    (error,) = logged(tmp_path / "out", "sink_error")
    assert error["sink"] == "LiveTraces" and "FloatingPointError" in str(error["error"])


def test_the_run_directory_failing_fails_the_run(
    plan: RunPlan, rig: SimRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run directory is essential: its failure (not a full disk: a permission taken
    away) fails the run with the heater safe and as many rows as pages on disk."""
    from tjump.storage.writer import RunWriter

    write = RunWriter.write_frame

    def failing(self: RunWriter, image: NDArray[np.uint16], record: FrameRecord) -> None:
        if record.frame == 40:
            raise PermissionError(13, "Permission denied")
        write(self, image, record)

    monkeypatch.setattr(RunWriter, "write_frame", failing)
    runner = open_run(plan, tmp_path / "out", rig=rig)
    failures: list[BaseException] = []
    runner.events.failed.connect(failures.append)
    with pytest.raises(PermissionError):
        runner.run()
    assert_heater_off(rig)
    assert len(failures) == 1
    run = RunDirectory(tmp_path / "out")
    assert run.frame_count() == len(run.frames_table()) == 40
    assert run.manifest()["status"] == "failed"
    assert "Permission denied" in run.manifest()["message"]


class SuspendAtHeat:
    """A policy: suspend once the first heat's third frame is in."""

    def __init__(self) -> None:
        self.asked = 0

    def on_frame(self, segment: Segment, record: FrameRecord) -> Decision:
        if segment.kind is SegmentKind.HEAT and record.schedule_frame == segment.first_frame + 2:
            self.asked += 1
            return Decision.SUSPEND
        return Decision.CONTINUE


def test_a_policy_suspends_the_run_at_the_next_boundary(
    plan: RunPlan, rig: SimRig, tmp_path: Path
) -> None:
    policy = SuspendAtHeat()
    runner = open_run(plan, tmp_path / "out", rig=rig, policy=policy)
    safe_while_paused: list[bool] = []

    def on_state(state: RunState) -> None:
        if state is RunState.PAUSED:
            safe_while_paused.append(rig.heater.is_safe())
            threading.Timer(0.1, runner.resume).start()

    runner.events.state_changed.connect(on_state)
    result = runner.run()
    assert result.status is FinishReason.COMPLETE
    assert policy.asked == 2  # two cycles, each suspended after its heat
    assert safe_while_paused == [True, True]
    log = RunDirectory(tmp_path / "out").log()
    paused = [e["before_segment"] for e in log if e["event"] == "paused"]
    heats = [s.index for s in plan.schedule.segments if s.kind is SegmentKind.HEAT]
    assert paused == [i + 1 for i in heats]  # the cooling after each heat waited


def test_names_keep_the_text_on_disk(plan: RunPlan, tmp_path: Path) -> None:
    """Kinds, states and finish reasons are enums in code and plain text on disk."""
    result = open_run(plan, tmp_path / "out").run()
    assert result.status == "complete" and result.status is FinishReason.COMPLETE
    out = tmp_path / "out"
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    kinds = {line.split(",")[4] for line in (out / "frames.csv").read_text().splitlines()[1:]}
    assert kinds == {"baseline", "heat", "cool"}
    started = [e for e in RunDirectory(out).log() if e["event"] == "segment_started"]
    assert [e["kind"] for e in started] == [s.kind.value for s in plan.schedule.segments]


def test_one_time_above_rule() -> None:
    rule = TimeAbove(TimeAboveLimit(temperature_K=400.0, seconds=10.0))
    assert rule.add(450.0, 6.0) and rule.seconds == 6.0
    assert rule.add(399.0, 100.0) and rule.seconds == 0.0  # cooled: the count starts again
    assert rule.add(450.0, 6.0)
    assert not rule.add(401.0, 4.5) and rule.seconds == 10.5
    rule.reset()
    assert rule.add(450.0, 10.0)  # exactly the limit is allowed
