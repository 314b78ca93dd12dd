"""Runs a schedule on a rig: heater steps on frame edges, every frame to disk, and the
heater left safe on every way out."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psygnal import SignalInstance

from tjump.analysis import OnlineTraces
from tjump.errors import DeviceError, RunAborted, TjumpError
from tjump.protocol.schedule import Schedule, Segment
from tjump.rig.build import Rig
from tjump.sequencer.events import Progress, RunEvents
from tjump.storage.layout import TRUTH_DIR, FrameRecord
from tjump.storage.writer import RunWriter

_FRAME_TIMEOUT_S = 5.0
_PROGRESS_EVERY_S = 0.1
_PAUSE_POLL_S = 0.05


@dataclass(frozen=True)
class _PulseTrain:
    """A continuous stretch of camera triggers: frame `first_frame` at `start_s` (DAQ
    time), which is sample `start_index`; a pause ends one train, a resume starts the next."""

    start_s: float
    start_index: int
    first_frame: int

    def time_of(self, frame: int, fps: float) -> float:
        return self.start_s + (frame - self.first_frame) / fps

    def sample_of(self, frame: int, fps: float, sample_rate_hz: float) -> int:
        return self.start_index + round((frame - self.first_frame) * sample_rate_hz / fps)


@dataclass(frozen=True)
class RunResult:
    status: str  # complete | aborted | failed
    frames: int
    frames_planned: int
    directory: Path
    experiment_s: float
    wall_s: float
    message: str = ""


class DaqHistory:
    """Recent DAQ samples, read as they come and written to the run as they are read."""

    def __init__(self, rig: Rig, writer: RunWriter) -> None:
        self._daq = rig.daq
        self._writer = writer
        self._first = 0
        self._data: NDArray[np.float64] = np.empty((0, len(rig.daq.channels)))

    def mean(self, first: int, count: int) -> NDArray[np.float64]:
        """Mean of samples [first, first + count) per channel; older samples are dropped."""
        deadline = time.monotonic() + _FRAME_TIMEOUT_S
        self.pull()
        while self._first + len(self._data) < first + count:
            if time.monotonic() > deadline:
                raise DeviceError(
                    self._daq.name,
                    f"samples up to {first + count} never came",
                    "check that the DAQ task is running",
                )
            time.sleep(0.001)
            self.pull()
        start = first - self._first
        window = self._data[start : start + count]
        self._data = self._data[start:]
        self._first = first
        return np.asarray(window.mean(axis=0))

    def pull(self) -> None:
        block = self._daq.read()
        if len(block.data):
            self._writer.write_daq(block)
            self._data = np.concatenate([self._data, block.data])


class Sequencer:
    """One run of a schedule on a rig, writing to a `RunWriter`."""

    def __init__(
        self,
        rig: Rig,
        schedule: Schedule,
        writer: RunWriter,
        exposure_ms: float,
        lookahead_frames: int = 16,
        baseline_frames: int = 20,
    ) -> None:
        self.rig = rig
        self.schedule = schedule
        self.writer = writer
        self.exposure_ms = exposure_ms
        self.lookahead_frames = lookahead_frames
        self.events = RunEvents()
        self.traces = OnlineTraces(baseline_frames)
        self._abort = threading.Event()
        self._pause = threading.Event()
        self._listener_errors = 0
        self._train = _PulseTrain(0.0, 0, 0)
        self.state = "ready"

    def abort(self) -> None:
        """Stop as soon as the current frame is saved; the heater is made safe."""
        self._abort.set()

    def pause(self) -> None:
        """Pause at the next segment boundary: triggers stop, the heater is made safe."""
        if self.state in ("ready", "running"):
            self._pause.set()
            self._set_state("pausing")

    def resume(self) -> None:
        """Go on with the next segment (or cancel a pause not yet reached)."""
        if self.state in ("pausing", "paused"):
            self._pause.clear()
            if self.state == "pausing":
                self._set_state("running")

    def _set_state(self, state: str) -> None:
        self.state = state
        self._emit(self.events.state_changed, state)

    def run(self) -> RunResult:
        """Run the whole schedule; always returns with the heater safe."""
        rig, writer = self.rig, self.writer
        wall_start = time.monotonic()
        status, message = "failed", ""
        rig.heater.make_safe()
        rig.camera.set_exposure_ms(self.exposure_ms)
        rig.camera.start(self.schedule.total_frames)
        t0 = rig.clock.now()
        rig.daq.start(self.schedule.frame_rate_hz)
        writer.log("run_started", daq_start_s=t0)
        daq = DaqHistory(rig, writer)
        if self.state == "ready":
            self._set_state("running")
        try:
            for segment in self.schedule.segments:
                if self._pause.is_set():
                    self._wait_paused(segment, t0)
                self._run_segment(segment, t0, daq)
            status = "complete"
        except (RunAborted, KeyboardInterrupt):
            status, message = "aborted", "stopped on request"
        except TjumpError as e:
            message = str(e)
            raise
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            raise
        finally:
            safe_message = self._shut_down(daq)
            if safe_message:
                status, message = "failed", f"{message}; {safe_message}".strip("; ")
            writer.log("run_finished", status=status, message=message)
            writer.close(status, message=message, listener_errors=self._listener_errors)
            self._set_state("finished")
        result = RunResult(
            status,
            writer.frames_written,
            self.schedule.total_frames,
            writer.directory,
            writer.frames_written / self.schedule.frame_rate_hz,
            time.monotonic() - wall_start,
            message,
        )
        self._emit(self.events.finished, result)
        return result

    def _run_segment(self, segment: Segment, t0: float, daq: DaqHistory) -> None:
        rig, fps = self.rig, self.schedule.frame_rate_hz
        self._check_abort()
        drive = rig.heater.set_temperature(segment.setpoint_K)
        self.writer.log(
            "segment_started",
            segment=segment.index,
            kind=segment.kind,
            setpoint_K=segment.setpoint_K,
            drive_V=drive,
            cycle=segment.cycle,
            step=segment.step,
            time_s=rig.clock.now() - t0,
            frame=segment.first_frame,
        )
        self._emit(self.events.segment_started, segment)
        train = self._train
        exposure_samples = max(1, math.ceil(self.exposure_ms / 1e3 * rig.daq.sample_rate_hz))
        last_progress = 0.0
        released = segment.first_frame  # frames whose time the clock has been let reach
        for f in range(segment.first_frame, segment.end_frame):
            self._check_abort()
            if f >= released - self.lookahead_frames // 2:
                released = min(f + 1 + self.lookahead_frames, segment.end_frame)
                rig.clock.run_to(t0 + train.time_of(released, fps))
            frame = rig.camera.next_frame(_FRAME_TIMEOUT_S)
            daq_index = train.sample_of(f, fps, rig.daq.sample_rate_hz)
            drive_v, current = daq.mean(daq_index, exposure_samples)
            record = FrameRecord(
                frame=f,
                time_s=round(train.time_of(f, fps), 9),
                temperature_K=segment.setpoint_K,
                segment=segment.index,
                kind=segment.kind,
                step=segment.step,
                cycle=segment.cycle,
                drive_V=round(float(drive_v), 6),
                current_A=round(float(current), 7),
                daq_index=daq_index,
                camera_frame=frame.number,
            )
            self.writer.write_frame(frame.image, record)
            self._emit(self.events.frame_acquired, frame.image, record)
            self._measure(f, frame.image)
            now = time.monotonic()
            if now - last_progress > _PROGRESS_EVERY_S or f + 1 == segment.end_frame:
                last_progress = now
                self._emit(self.events.progress, self._progress(segment, f + 1))
        self.writer.log(
            "segment_finished", segment=segment.index, time_s=train.time_of(segment.end_frame, fps)
        )
        self._emit(self.events.segment_finished, segment)

    def _measure(self, frame: int, image: NDArray[np.uint16]) -> None:
        """Online traces: detect in the first frames, then one row per frame."""
        first_detection = self.traces.detections is None
        rows = self.traces.add(image)
        if rows is None:
            return
        d = self.traces.detections
        if first_detection and d is not None:
            self.writer.write_live_particles(d.x, d.y, d.peak, d.flags)
            self.writer.log("particles_found", count=len(d), usable=int(d.usable.sum()))
            self._emit(self.events.particles_found, d)
        first = frame + 1 - len(rows)
        self.writer.write_live_traces(first, rows)
        self._emit(self.events.traces_measured, first, rows)

    def _wait_paused(self, segment: Segment, t0: float) -> None:
        """Stop triggering, make the heater safe and wait for resume or abort; then start
        a new pulse train, so frame times stay on the DAQ's timebase across the gap."""
        rig = self.rig
        rig.daq.stop_triggers()
        rig.heater.make_safe()
        paused_at = rig.clock.now() - t0
        self.writer.log("paused", time_s=paused_at, before_segment=segment.index)
        self._set_state("paused")
        while self._pause.is_set():
            self._check_abort()
            time.sleep(_PAUSE_POLL_S)
            rig.clock.run_to(rig.clock.now() + _PAUSE_POLL_S)  # virtual time keeps pace
        index = rig.daq.start_triggers()
        self._train = _PulseTrain(index / rig.daq.sample_rate_hz, index, segment.first_frame)
        self.writer.log(
            "resumed", time_s=self._train.start_s, gap_s=self._train.start_s - paused_at
        )
        self._set_state("running")

    def _progress(self, segment: Segment, frames_done: int) -> Progress:
        fps, total = self.schedule.frame_rate_hz, self.schedule.total_frames
        return Progress(
            frames_done,
            total,
            segment.kind,
            segment.setpoint_K,
            segment.cycle,
            frames_done / fps,
            (total - frames_done) / fps,
        )

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise RunAborted("run aborted")

    def _emit(self, signal: SignalInstance, *args: Any) -> None:
        try:
            signal.emit(*args)
        except Exception as e:  # a listener's fault must not stop the acquisition
            self._listener_errors += 1
            if self._listener_errors == 1:
                self.writer.log("listener_error", error=f"{type(e).__name__}: {e}")

    def _shut_down(self, daq: DaqHistory) -> str:
        """Heater safe first, then stop triggering and the camera; save what remains.
        Returns a message if the heater could not be confirmed safe."""
        message = ""
        try:
            self.rig.heater.make_safe()
            self.writer.log("heater_safe")
        except Exception as e:
            message = f"HEATER NOT CONFIRMED SAFE: {e}"
            self.writer.log("heater_unsafe", error=str(e))
        for stop in (self.rig.daq.stop, self.rig.camera.stop, daq.pull):
            try:
                stop()
            except Exception as e:
                self.writer.log("shutdown_error", error=f"{type(e).__name__}: {e}")
        self.rig.save_truth(self.writer.directory / TRUTH_DIR)
        return message
