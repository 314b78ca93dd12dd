"""Runs a schedule on a rig: heater steps on frame edges, every frame to disk, online
traces, and the heater left safe on every way out."""

from __future__ import annotations

import contextlib
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
from tjump.devices.interfaces import CameraFrame
from tjump.errors import CameraTimeout, LimitError, RunAborted, TjumpError
from tjump.protocol.schedule import Schedule, Segment
from tjump.rig.build import Rig
from tjump.sequencer.events import Progress, RunEvents
from tjump.sequencer.timing import KEEP_S, DaqHistory, PulseTrain, TrainCounts
from tjump.sequencer.watchdog import Watchdog
from tjump.storage.layout import TRUTH_DIR, FrameRecord
from tjump.storage.writer import RunWriter

FRAME_TIMEOUT_S = 5.0
SHUTTER_LINE = "shutter"
_PROGRESS_EVERY_S = 0.1
_POLL_S = 0.05


@dataclass(frozen=True)
class RunResult:
    status: str  # complete | aborted | failed
    frames: int
    frames_planned: int
    directory: Path
    experiment_s: float
    wall_s: float
    message: str = ""
    dropped_frames: int = 0
    session_frames: int = -1  # frames of this session (a resumed run); -1: same as frames

    def __post_init__(self) -> None:
        if self.session_frames < 0:
            object.__setattr__(self, "session_frames", self.frames)


class Sequencer:
    """One run of a schedule on a rig, writing to a `RunWriter`.

    `time_offset_s` and the schedule's first frame number place a resumed run on the
    timeline of the run it continues (which then takes no online traces: its particles
    were found in the first session's baseline)."""

    def __init__(
        self,
        rig: Rig,
        schedule: Schedule,
        writer: RunWriter,
        lookahead_frames: int = 16,
        baseline_frames: int = 20,
        time_offset_s: float = 0.0,
        watchdog_s: float = 30.0,
        online_traces: bool = True,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
    ) -> None:
        self.rig = rig
        self.schedule = schedule
        self.writer = writer
        self.lookahead_frames = lookahead_frames
        self.time_offset_s = time_offset_s
        self.watchdog_s = watchdog_s
        self.frame_timeout_s = frame_timeout_s
        self.events = RunEvents()
        self.traces = OnlineTraces(baseline_frames) if online_traces else None
        self.state = "ready"
        self._abort = threading.Event()
        self._pause = threading.Event()
        self._heater_lock = threading.Lock()
        self._watchdog_fired = False
        self._listener_errors = 0
        self._train: PulseTrain | None = None
        self._train_start: TrainCounts | None = None  # counts when the train started
        self._train_mismatches = 0
        channels = rig.daq.channels
        self._drive_column = channels.index("drive_V")
        self._current_column = channels.index("current_A")
        self._film = rig.config.film  # R(T) of the film: its temperature from V/I
        self._dropped = 0  # frames triggered that never arrived
        self._early_frame: CameraFrame | None = None  # arrived after frames were lost
        self._armed: dict[int, float] = {}  # heat steps programmed ahead: drive voltage
        self._following = {
            a.index: b for a, b in zip(schedule.segments, schedule.segments[1:], strict=False)
        }
        self._t0 = 0.0  # clock time when the DAQ started
        self._time_above_s = 0.0
        self._experiment_s = 0.0
        left = np.cumsum([s.duration_s for s in reversed(schedule.segments)])[::-1]
        self._left_after = {
            s.index: float(left[i + 1]) if i + 1 < len(left) else 0.0
            for i, s in enumerate(schedule.segments)
        }

    # -- control, from any thread -------------------------------------------------------

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

    # -- the run ---------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the whole schedule; always returns or raises with the heater safe."""
        rig, writer = self.rig, self.writer
        wall_start = time.monotonic()
        status, message = "failed", ""
        daq = DaqHistory(rig.daq, writer)
        try:
            self._make_safe()
            self._start_acquisition()
            with Watchdog(self.watchdog_s, self._watchdog_expired) as watchdog:
                for segment in self.schedule.segments:
                    if self._pause.is_set():
                        self._wait_paused(segment, daq, watchdog)
                    self._run_segment(segment, daq, watchdog)
            if self._train is not None:
                self._end_train()
            status = "complete"
        except (RunAborted, KeyboardInterrupt):
            status, message = "aborted", "stopped on request"
            if self._watchdog_fired:
                status = "failed"
                message = f"watchdog: the acquisition loop stalled for over {self.watchdog_s:g} s"
        except TjumpError as e:
            message = str(e)
            raise
        except Exception as e:
            message = f"{type(e).__name__}: {e}"
            raise
        finally:
            unsafe = self._shut_down(daq)
            if unsafe:
                status, message = "failed", f"{message}; {unsafe}".strip("; ")
            self._finish(status, message)
        result = RunResult(
            status,
            writer.frames_written,
            self.schedule.total_frames,
            writer.directory,
            self._experiment_s,
            time.monotonic() - wall_start,
            message,
            self._dropped,
            writer.session_frames,
        )
        self._emit(self.events.finished, result)
        return result

    def _start_acquisition(self) -> None:
        """Arm the camera, then start the DAQ: its first trigger cannot be missed."""
        rig = self.rig
        first = next((s for s in self.schedule.segments if s.kind != "wait"), None)
        fps = first.frame_rate_hz if first else self.schedule.frame_rate_hz
        exposure = first.exposure_ms if first else self.schedule.segments[0].exposure_ms
        rig.camera.set_exposure_ms(exposure)
        rig.camera.set_interval_ms(1e3 / fps)  # a software-timed camera's own frame rate
        rig.camera.start(self.schedule.total_frames)
        self._train_start = TrainCounts(0, 0, 0)
        self._t0 = rig.clock.now()
        self.writer.sample_offset = round(self.time_offset_s * rig.daq.sample_rate_hz)
        rig.daq.start(fps)
        first_frame = first.first_frame if first else 0
        self._train = PulseTrain(0, first_frame, fps, exposure, rig.daq.sample_rate_hz)
        self.writer.log("run_started", time_s=self.time_offset_s, first_frame=first_frame)
        if self.state == "ready":
            self._set_state("running")

    def _now(self) -> float:
        """Experiment time: DAQ time since this session's start, plus the offset."""
        return self.time_offset_s + self.rig.clock.now() - self._t0

    def _run_segment(self, segment: Segment, daq: DaqHistory, watchdog: Watchdog) -> None:
        rig = self.rig
        self._check_abort()
        self._check_time_above(segment)
        train = self._train_for(segment)
        drive, bounded = self._step_heater(segment)
        if segment.light:
            rig.daq.set_digital(SHUTTER_LINE, True)
        self.writer.log(
            "segment_started",
            segment=segment.index,
            kind=segment.kind,
            setpoint_K=segment.setpoint_K,
            drive_V=drive,
            cycle=segment.cycle,
            step=segment.step,
            time_s=self._now(),
            frame=segment.first_frame,
            frame_rate_hz=segment.frame_rate_hz,
            light=segment.light,
            bounded_by_instrument=bounded,
        )
        self._emit(self.events.segment_started, segment)
        self._arm_next(segment, drive)
        if train is None:
            self._let_time_pass(segment.duration_s, daq, watchdog)
        else:
            self._acquire(segment, train, daq, watchdog)
        if segment.light:
            rig.daq.set_digital(SHUTTER_LINE, False)
        self._experiment_s = self._now()
        self.writer.flush_daq()
        self.writer.log("segment_finished", segment=segment.index, time_s=self._experiment_s)
        self._emit(self.events.segment_finished, segment)

    def _step_heater(self, segment: Segment) -> tuple[float, bool]:
        """Set the heater for `segment`; returns (drive voltage, whether the instrument
        itself will end it). A heat step armed during the segment before is only fired:
        the generator ends it after its duration even if this program stops."""
        heater = self.rig.heater
        with self._heater_lock:
            self._check_abort()
            if self._bounded(segment):
                volts = self._armed.pop(segment.index, None)
                if volts is None:  # not armed ahead (first step, after a pause): arm now
                    volts = heater.arm_heat_pulse(segment.setpoint_K, segment.duration_s)
                heater.fire_heat_pulse()
                return volts, True
            self._armed.clear()
            return heater.set_temperature(segment.setpoint_K), False

    def _arm_next(self, segment: Segment, drive: float) -> None:
        """While the film is at 0 V, program the next heat step, so that at its frame
        edge only a trigger is needed."""
        heater = self.rig.heater
        following = self._following.get(segment.index)
        if drive > 0 or following is None or not self._bounded(following):
            return
        if heater.bounds_heat_steps:
            with self._heater_lock:
                self._check_abort()  # the watchdog may have made the heater safe
                volts = heater.arm_heat_pulse(following.setpoint_K, following.duration_s)
            self._armed[following.index] = volts

    def _end_train(self) -> None:
        """Stop the pulse train, then compare for it the triggers sent, the exposures the
        DAQ counted and the frames the camera delivered; a mismatch (a missed trigger, an
        extra exposure, a lost frame) is recorded, in the log and the manifest."""
        rig = self.rig
        rig.daq.stop_triggers()
        self._train = None
        start, self._train_start = self._train_start, None
        if start is None:
            return
        counted = TrainCounts.now(rig.daq, rig.camera).since(start)
        fields = {"triggers": counted.triggers, "exposures": counted.exposures}
        self.writer.log("pulse_train_counted", time_s=self._now(), frames=counted.frames, **fields)
        if not counted.consistent:
            self._train_mismatches += 1
            self._log_quietly("pulse_train_mismatch", frames=counted.frames, **fields)

    def _bounded(self, segment: Segment) -> bool:
        """Whether the instrument itself ends `segment`'s heating: every heated segment
        (heat, ablation, hold, light, a cool above ambient) where the rig can bound one."""
        heater = self.rig.heater
        heated = segment.kind != "wait" and segment.setpoint_K > heater.ambient_K
        return heated and heater.bounds_heat_steps

    def _train_for(self, segment: Segment) -> PulseTrain | None:
        """The pulse train for `segment`: the running one if its rate and exposure fit,
        else a new one; none for a wait."""
        rig, train = self.rig, self._train
        if train is not None and segment.kind != "wait" and train.fits(segment):
            return train
        if train is not None:
            self._end_train()
        if segment.kind == "wait":
            return None
        rig.camera.set_exposure_ms(segment.exposure_ms)
        self._train_start = TrainCounts.now(rig.daq, rig.camera)
        index = rig.daq.start_triggers(segment.frame_rate_hz)
        self._train = PulseTrain(
            index,
            segment.first_frame,
            segment.frame_rate_hz,
            segment.exposure_ms,
            rig.daq.sample_rate_hz,
        )
        self.writer.log(
            "pulse_train",
            time_s=self._now(),
            sample=index,
            frame=segment.first_frame,
            frame_rate_hz=segment.frame_rate_hz,
        )
        return self._train

    def _acquire(
        self, segment: Segment, train: PulseTrain, daq: DaqHistory, watchdog: Watchdog
    ) -> None:
        rig, limits = self.rig, self.rig.heater.limits
        exposure_samples = max(1, math.ceil(segment.exposure_ms / 1e3 * rig.daq.sample_rate_hz))
        last_progress = 0.0
        released = segment.first_frame  # frames whose time the clock has been let reach
        # never further ahead than the DAQ samples kept for the frames' means
        ahead = max(0, min(self.lookahead_frames, int(segment.frame_rate_hz * KEEP_S / 2)))
        f = segment.first_frame
        while f < segment.end_frame:
            self._check_abort()
            watchdog.kick()
            if f >= released - ahead // 2:
                released = min(f + 1 + ahead, segment.end_frame)
                rig.clock.run_to(self._t0 + train.time_of(released))
            frame = self._next_frame(f)
            f = self._place(frame, f)
            if f >= segment.end_frame:  # frames lost up to the end of the segment
                self._early_frame = frame
                break
            session_index = train.sample_of(f)
            means = daq.mean(session_index, exposure_samples)
            drive_v, current = means[self._drive_column], means[self._current_column]
            if current > limits.max_current_A:
                raise LimitError(
                    "heater",
                    f"current {current:.4f} A is above the rig's max_current_A "
                    f"{limits.max_current_A:g} A",
                    "check the film and its wiring",
                )
            record = FrameRecord(
                frame=self.writer.next_frame,
                time_s=round(self.time_offset_s + train.time_of(f), 9),
                temperature_K=segment.setpoint_K,
                segment=segment.index,
                kind=segment.kind,
                step=segment.step,
                cycle=segment.cycle,
                drive_V=round(float(drive_v), 6),
                current_A=round(float(current), 7),
                daq_index=self.writer.sample_offset + session_index,
                camera_frame=frame.number,
                film_temperature_K=self._film_temperature(drive_v, current),
                schedule_frame=f,
                session=self.writer.session,
            )
            self.writer.write_frame(frame.image, record)
            self._emit(self.events.frame_acquired, frame.image, record)
            self._measure(record.frame, frame.image)
            now = time.monotonic()
            if now - last_progress > _PROGRESS_EVERY_S or f + 1 == segment.end_frame:
                last_progress = now
                self._emit(self.events.progress, self._progress(segment, f + 1))
            f += 1

    def _film_temperature(self, drive_V: float, current_A: float) -> float:
        """The film's temperature from V/I over the exposure, NaN where it cannot be read."""
        if self._film is None:
            return float("nan")
        value = float(self._film.temperature_K(np.array([drive_V]), np.array([current_A]))[0])
        return round(value, 3) if math.isfinite(value) else float("nan")

    def _place(self, frame: CameraFrame, expected: int) -> int:
        """The schedule frame `frame` belongs to, by the camera's own frame counter: a
        gap means frames were exposed but lost on the way, each one recorded."""
        index = self.schedule.segments[0].first_frame + frame.number
        if frame.number < 0 or index <= expected:
            return expected
        lost = list(range(expected, index))
        self._dropped += len(lost)
        self._log_quietly("frames_dropped", frames=lost, time_s=self._now())
        return index

    def _next_frame(self, frame: int) -> CameraFrame:
        """The camera's next frame; if none comes, say how many triggers went unanswered
        (a dropped frame is counted and recorded, never papered over)."""
        camera = self.rig.camera
        if self._early_frame is not None:
            early, self._early_frame = self._early_frame, None
            return early
        try:
            return camera.next_frame(self.frame_timeout_s)
        except CameraTimeout:
            triggered = min(self.rig.daq.triggers_sent(), self._frames_expected(frame))
            self._dropped = max(self._dropped, camera.dropped_frames(triggered))
            self._log_quietly("frame_missing", frame=frame, triggered=triggered)
            camera.check_frames(triggered)  # DroppedFrames, saying how many
            raise

    def _frames_expected(self, frame: int) -> int:
        """Frames this session should have had triggered up to and including `frame`."""
        return frame + 1 - self.schedule.segments[0].first_frame

    def _let_time_pass(self, seconds: float, daq: DaqHistory, watchdog: Watchdog) -> None:
        """A wait: time passes (instantly on a virtual clock), the DAQ's samples are still
        saved, abort still works."""
        clock = self.rig.clock
        end = clock.now() + seconds
        while (left := end - clock.now()) > 1e-9:
            self._check_abort()
            watchdog.kick()
            clock.sleep(min(0.5, left))
            daq.pull()

    def _check_time_above(self, segment: Segment) -> None:
        """The rig's max_time_above, enforced again while running."""
        limit = self.rig.heater.limits.max_time_above
        above = segment.setpoint_K > limit.temperature_K
        self._time_above_s = self._time_above_s + segment.duration_s if above else 0.0
        if self._time_above_s > limit.seconds:
            raise LimitError(
                "heater",
                f"segment {segment.index} would keep the film above "
                f"{limit.temperature_K:g} K for {self._time_above_s:g} s, over the rig's "
                f"max_time_above {limit.seconds:g} s",
            )

    def _measure(self, frame: int, image: NDArray[np.uint16]) -> None:
        """Online traces: detect in the first frames, then one row per frame."""
        if self.traces is None:
            return
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

    def _wait_paused(self, segment: Segment, daq: DaqHistory, watchdog: Watchdog) -> None:
        """Stop triggering, make the heater safe and wait for resume or abort; the next
        segment starts a new pulse train, so frame times stay on the DAQ's timebase."""
        rig = self.rig
        if self._train is not None:
            self._end_train()
        self._make_safe()
        self._armed.clear()
        self.writer.log("paused", time_s=self._now(), before_segment=segment.index)
        self._set_state("paused")
        paused_at = self._now()
        while self._pause.is_set():
            self._check_abort()
            watchdog.kick()
            time.sleep(_POLL_S)
            rig.clock.run_to(rig.clock.now() + _POLL_S)  # virtual time keeps pace
            daq.pull()
        self.writer.log("resumed", time_s=self._now(), gap_s=self._now() - paused_at)
        self._time_above_s = 0.0
        self._set_state("running")

    def _progress(self, segment: Segment, frames_done: int) -> Progress:
        here = (segment.end_frame - frames_done) / segment.frame_rate_hz
        return Progress(
            frames_done - self.schedule.segments[0].first_frame,
            self.schedule.total_frames,
            segment.index,
            segment.kind,
            segment.setpoint_K,
            segment.cycle,
            self._now(),
            self._left_after[segment.index] + here,
        )

    # -- safety ------------------------------------------------------------------------

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise RunAborted("run aborted")

    def _make_safe(self) -> None:
        with self._heater_lock:
            self.rig.heater.make_safe()

    def _watchdog_expired(self) -> None:
        """From the watchdog's thread: the loop is stuck; the heater goes safe now."""
        self._watchdog_fired = True
        self._abort.set()
        try:
            self._make_safe()
            self.writer.log("watchdog", error=f"no progress for {self.watchdog_s:g} s; heater safe")
        except Exception as e:
            self.writer.log("watchdog", error=f"heater not confirmed safe: {e}")

    def _shut_down(self, daq: DaqHistory) -> str:
        """Heater safe first, then stop triggering and the camera; save what remains.
        Returns a message if the heater could not be confirmed safe."""
        message = ""
        try:
            self._make_safe()
            self._log_quietly("heater_safe")
        except Exception as e:
            message = f"HEATER NOT CONFIRMED SAFE: {e}"
            self._log_quietly("heater_unsafe", error=str(e))

        def close_shutter() -> None:
            self.rig.daq.set_digital(SHUTTER_LINE, False)

        def save_truth() -> None:
            if self.rig.world is not None:  # a simulated rig: what it made happen
                self.rig.world.write_truth(self.writer.directory / TRUTH_DIR, self.time_offset_s)

        for step in (close_shutter, self.rig.daq.stop, self.rig.camera.stop, daq.pull, save_truth):
            try:
                step()
            except Exception as e:
                self._log_quietly("shutdown_error", error=f"{type(e).__name__}: {e}")
        return message

    def _log_quietly(self, event: str, **fields: Any) -> None:
        """Log, unless the disk itself is what failed."""
        with contextlib.suppress(OSError):
            self.writer.log(event, **fields)

    def _finish(self, status: str, message: str) -> None:
        """Record how the run ended; a disk that fails here must not hide the run's own
        error (the frames already written are safe)."""
        self._log_quietly("run_finished", status=status, message=message)
        try:
            self.writer.close(
                status,
                message=message,
                listener_errors=self._listener_errors,
                dropped_frames=self._dropped,
                pulse_train_mismatches=self._train_mismatches,
            )
        except TjumpError:
            if status != "failed":
                raise
        finally:
            self._set_state("finished")

    # -- signals -----------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self._emit(self.events.state_changed, state)

    def _emit(self, signal: SignalInstance, *args: Any) -> None:
        try:
            signal.emit(*args)
        except Exception as e:  # a listener's fault must not stop the acquisition
            self._listener_errors += 1
            if self._listener_errors == 1:
                cause = e.__cause__ or e  # psygnal wraps the listener's own exception
                self._log_quietly("listener_error", error=f"{type(cause).__name__}: {cause}")
