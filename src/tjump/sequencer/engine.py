"""The engine: what a run does to the instruments, segment by segment, and what comes
back. It arms and fires the heater, keeps the pulse trains, places each camera frame on
the DAQ's timebase and enforces the rig's limits while running; it *yields* what it
acquires (frames with their records, DAQ samples, notes for the log) and never writes
anything: the runner hands each item to the sinks (sequencer/runner.py, `_feed`)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from tjump.devices.interfaces import CameraFrame, DaqBlock, DaqChannel, DaqLine
from tjump.errors import CameraTimeout, LimitError, RunAborted
from tjump.protocol.schedule import Schedule, Segment
from tjump.rig.build import Rig
from tjump.rig.heater import TimeAbove
from tjump.sequencer.timing import KEEP_S, SETTLE_S, DaqHistory, PulseTrain, TrainCounts
from tjump.storage.layout import FrameRecord

FRAME_TIMEOUT_S = 5.0
# frames a virtual clock is let run ahead of the frames taken: a simulated camera renders
# that far ahead, and the world's physics runs in batches (at most half the DAQ samples
# kept, `KEEP_S`); a real clock runs by itself
LOOKAHEAD_FRAMES = 48


@dataclass(frozen=True)
class Acquired:
    """One frame and its frames.csv row."""

    image: NDArray[np.uint16]
    record: FrameRecord


@dataclass(frozen=True)
class Samples:
    """DAQ samples read since the last `Samples` (maybe none: then only a sign of life)."""

    blocks: tuple[DaqBlock, ...]


@dataclass(frozen=True)
class Note:
    """An event for the run's log. `quiet`: dropped if the disk itself is what failed."""

    event: str
    fields: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False


Output = Acquired | Samples | Note


class Engine(Protocol):
    """What the runner needs from an engine. Each generator yields often (at least once a
    frame, or every half second of a wait): the runner checks for abort and keeps its
    watchdog fed between items. `make_safe` may be called from any thread."""

    dropped_frames: int
    train_mismatches: int
    sample_offset: int  # DAQ samples of earlier sessions, for daq.csv's sample numbers

    def start(self) -> Iterator[Output]:
        """Make safe, then start the camera and the timebase."""
        ...

    def begin(self, segment: Segment) -> Iterator[Output]:
        """Set the heater, the light and the pulse train for `segment`."""
        ...

    def acquire(self, segment: Segment) -> Iterator[Output]:
        """Every frame of `segment` (a wait: time passing), the next heat step armed
        first where the film is at 0 V."""
        ...

    def end(self, segment: Segment) -> Iterator[Output]:
        """Close `segment` (the light off)."""
        ...

    def suspend(self) -> Iterator[Output]:
        """Stop triggering and make safe (a pause): the next `begin` starts afresh."""
        ...

    def end_early(self) -> None:
        """Cut the segment being acquired (from the acquiring thread, between frames): the
        heater goes to 0 V now, triggers stop, the frames already exposed are still
        yielded, and the next segment starts a new pulse train."""
        ...

    def idle(self, seconds: float) -> Iterator[Output]:
        """Let `seconds` pass while suspended, the DAQ still read."""
        ...

    def finish(self) -> Iterator[Output]:
        """After the last segment: the last pulse train ended and counted."""
        ...

    def stop(self) -> Iterator[Output]:
        """Stop what `start` started (each part tried), and the last samples."""
        ...

    def now(self) -> float:
        """Experiment time, seconds."""
        ...

    def make_safe(self) -> None: ...

    def close(self) -> None:
        """Let go of what the engine owns (a rig it built)."""
        ...


class RigEngine:
    """Runs a schedule's segments on a `Rig`.

    `first_frame` and `session` number this session's frames in the run; `time_offset_s`
    and the schedule's first frame place a resumed run on the timeline of the run it
    continues. `stop` is the runner's abort flag: it is also checked under the heater's
    lock, so a heater made safe by another thread is never switched on again."""

    def __init__(
        self,
        rig: Rig,
        schedule: Schedule,
        stop: threading.Event,
        first_frame: int = 0,
        session: int = 0,
        time_offset_s: float = 0.0,
        lookahead_frames: int = LOOKAHEAD_FRAMES,
        frame_timeout_s: float = FRAME_TIMEOUT_S,
        own_rig: bool = False,
        spare_frames: int = 0,
    ) -> None:
        self.rig = rig
        self.spare_frames = spare_frames  # beyond the schedule: cycles done again
        self.schedule = schedule
        self.time_offset_s = time_offset_s
        self.lookahead_frames = lookahead_frames
        self.frame_timeout_s = frame_timeout_s
        self.sample_offset = round(time_offset_s * rig.daq.sample_rate_hz)
        self.dropped_frames = 0  # frames triggered that never arrived
        self.train_mismatches = 0
        self._stop = stop
        self._own_rig = own_rig
        self._next_number = first_frame  # the run's number for the next frame taken
        self._session = session
        self._heater_lock = threading.Lock()
        self._daq = DaqHistory(rig.daq)
        self._started = False
        self._t0 = 0.0  # clock time when the DAQ started
        self._train: PulseTrain | None = None
        self._train_start: TrainCounts | None = None  # counts when the train started
        self._early_frame: CameraFrame | None = None  # arrived after frames were lost
        self._armed: dict[int, float] = {}  # heat steps programmed ahead: drive voltage
        self._drive = 0.0  # of the segment begun last
        self._cut = False  # end the segment being acquired at the frames already exposed
        self._train_next = -1  # the schedule frame the running train triggers next
        self._time_above = TimeAbove(rig.heater.limits.max_time_above)
        self._following = {
            a.index: b for a, b in zip(schedule.segments, schedule.segments[1:], strict=False)
        }
        channels = rig.daq.channels
        self._drive_column = channels.index(DaqChannel.DRIVE_V)
        self._current_column = channels.index(DaqChannel.CURRENT_A)
        self._film = rig.config.film  # R(T) of the film: its temperature from V/I

    # -- the run, as the runner drives it ----------------------------------------------

    def start(self) -> Iterator[Output]:
        """Arm the camera, then start the DAQ: its first trigger cannot be missed."""
        self.make_safe()
        rig = self.rig
        first = next((s for s in self.schedule.segments if s.kind.takes_frames), None)
        fps = first.frame_rate_hz if first else self.schedule.frame_rate_hz
        exposure = first.exposure_ms if first else self.schedule.segments[0].exposure_ms
        rig.camera.set_exposure_ms(exposure)
        rig.camera.set_interval_ms(1e3 / fps)  # a software-timed camera's own frame rate
        self._started = True
        rig.camera.start(self.schedule.total_frames + self.spare_frames + self._after_end_room())
        self._train_start = TrainCounts(0, 0, 0)
        self._t0 = rig.clock.now()
        rig.daq.start(fps)
        first_frame = first.first_frame if first else 0
        self._train = PulseTrain(0, first_frame, fps, exposure, rig.daq.sample_rate_hz)
        self._train_next = first_frame
        yield Note("run_started", {"time_s": self.time_offset_s, "first_frame": first_frame})

    def _after_end_room(self) -> int:
        """Room in the camera's sequence for the frames trains expose after their last
        segment's end (left out by `_end_train`): up to `SETTLE_S` of frames wherever a
        train can end, at every segment's boundary."""
        segments = [s for s in self.schedule.segments if s.kind.takes_frames]
        return sum(math.ceil(s.frame_rate_hz * SETTLE_S) for s in segments)

    def begin(self, segment: Segment) -> Iterator[Output]:
        self._check_stop()
        self._cut = False  # a cut asked for after the last frame of the segment before
        self._check_time_above(segment)
        yield from self._train_for(segment)
        drive, bounded = self._step_heater(segment)
        if segment.light:
            self.rig.daq.set_digital(DaqLine.SHUTTER, True)
        yield Note(
            "segment_started",
            {
                "segment": segment.index,
                "kind": segment.kind,
                "setpoint_K": segment.setpoint_K,
                "drive_V": drive,
                "cycle": segment.cycle,
                "step": segment.step,
                "time_s": self.now(),
                "frame": segment.first_frame,
                "frame_rate_hz": segment.frame_rate_hz,
                "light": segment.light,
                "bounded_by_instrument": bounded,
            },
        )
        self._drive = drive

    def acquire(self, segment: Segment) -> Iterator[Output]:
        self._arm_next(segment, self._drive)
        if self._train is None:
            yield from self._let_time_pass(segment.duration_s)
        else:
            yield from self._frames(segment, self._train)

    def end(self, segment: Segment) -> Iterator[Output]:
        if segment.light:
            self.rig.daq.set_digital(DaqLine.SHUTTER, False)
        yield Samples(tuple(self._daq.drain()))

    def suspend(self) -> Iterator[Output]:
        """Stop triggering and make the heater safe; the next segment starts a new pulse
        train, so frame times stay on the DAQ's timebase."""
        if self._train is not None:
            yield from self._end_train()
        self.make_safe()
        self._armed.clear()
        self._time_above.reset()  # the film cools while paused

    def end_early(self) -> None:
        with self._heater_lock:
            self._check_stop()
            self.rig.heater.make_safe()
            self._armed.clear()
        self._cut = True

    def idle(self, seconds: float) -> Iterator[Output]:
        clock = self.rig.clock
        clock.run_to(clock.now() + seconds)  # virtual time keeps pace
        self._daq.pull()
        yield Samples(tuple(self._daq.drain()))

    def finish(self) -> Iterator[Output]:
        if self._train is not None:
            yield from self._end_train()

    def stop(self) -> Iterator[Output]:
        """Light off, triggers and camera stopped, the last samples read; each step is
        tried whatever the one before did (a failure is a note)."""
        if not self._started:
            return
        rig = self.rig
        steps: tuple[Callable[[], None], ...] = (
            lambda: rig.daq.set_digital(DaqLine.SHUTTER, False),
            rig.daq.stop,
            rig.camera.stop,
            self._daq.pull,
        )
        for step in steps:
            try:
                step()
            except Exception as e:
                yield Note("shutdown_error", {"error": f"{type(e).__name__}: {e}"}, quiet=True)
        yield Samples(tuple(self._daq.drain()))

    def now(self) -> float:
        """Experiment time: DAQ time since this session's start, plus the offset."""
        return self.time_offset_s + self.rig.clock.now() - self._t0

    def make_safe(self) -> None:
        with self._heater_lock:
            self.rig.heater.make_safe()

    def close(self) -> None:
        if self._own_rig:
            self.rig.close()

    # -- the heater -------------------------------------------------------------------

    def _check_time_above(self, segment: Segment) -> None:
        """The rig's max_time_above, enforced again while running."""
        if not self._time_above.add(segment.setpoint_K, segment.duration_s):
            limit = self._time_above.limit
            raise LimitError(
                "heater",
                f"segment {segment.index} would keep the film above "
                f"{limit.temperature_K:g} K for {self._time_above.seconds:g} s, over the rig's "
                f"max_time_above {limit.seconds:g} s",
            )

    def _step_heater(self, segment: Segment) -> tuple[float, bool]:
        """Set the heater for `segment`; returns (drive voltage, whether the instrument
        itself will end it). A heat step armed during the segment before is only fired:
        the generator ends it after its duration even if this program stops."""
        heater = self.rig.heater
        with self._heater_lock:
            self._check_stop()
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
        with self._heater_lock:
            self._check_stop()  # the watchdog may have made the heater safe
            volts = heater.arm_heat_pulse(following.setpoint_K, following.duration_s)
        self._armed[following.index] = volts

    def _bounded(self, segment: Segment) -> bool:
        """Whether the instrument itself ends `segment`'s heating: every heated segment
        (heat, ablation, hold, light, a cool above ambient) where the rig can bound one."""
        heater = self.rig.heater
        return heater.bounds_heat_steps and segment.heated_above(heater.ambient_K)

    # -- pulse trains -------------------------------------------------------------------

    def _train_for(self, segment: Segment) -> Iterator[Output]:
        """Keep the running pulse train if its rate and exposure fit `segment` and the
        segment follows on from it, else end it and start a new one; none for a wait. (A
        closed loop skips segments: the train then starts anew, so the clock does not run
        through the skipped segments' time.)"""
        rig, train = self.rig, self._train
        follows = segment.first_frame == self._train_next
        if train is not None and segment.kind.takes_frames and train.fits(segment) and follows:
            return
        if train is not None:
            yield from self._end_train()
        if not segment.kind.takes_frames:
            return
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
        self._train_next = segment.first_frame
        yield Note(
            "pulse_train",
            {
                "time_s": self.now(),
                "sample": index,
                "frame": segment.first_frame,
                "frame_rate_hz": segment.frame_rate_hz,
            },
        )

    def _end_train(self) -> Iterator[Output]:
        """Stop the pulse train, then compare for it the triggers sent, the exposures the
        DAQ counted and the frames the camera delivered; a mismatch (a missed trigger, an
        extra exposure, a lost frame) is recorded, in the log and the manifest. Frames the
        train exposed after its last segment's end (triggers keep coming while the last
        frames are saved) are read and left out, so the next train starts with its own."""
        rig = self.rig
        rig.daq.stop_triggers()
        self._train = None
        start, self._train_start = self._train_start, None
        if start is None:
            return
        counted = TrainCounts.settled(rig.daq, rig.camera, start)
        waiting = rig.camera.frames_waiting()
        after = waiting + (self._early_frame is not None)
        self._early_frame = None
        for _ in range(waiting):
            rig.camera.next_frame(self.frame_timeout_s)
        fields = {
            "frames": counted.frames,
            "triggers": counted.triggers,
            "exposures": counted.exposures,
        }
        yield Note("pulse_train_counted", {"time_s": self.now(), **fields, "after_end": after})
        if not counted.consistent:
            self.train_mismatches += 1
            yield Note("pulse_train_mismatch", fields, quiet=True)

    # -- frames ----------------------------------------------------------------------

    def _frames(self, segment: Segment, train: PulseTrain) -> Iterator[Output]:
        """Each frame of `segment`, placed by the camera's counter, with the DAQ's means
        over its exposure; the clock is let run a few frames ahead at most."""
        rig, limits = self.rig, self.rig.heater.limits
        exposure_samples = max(1, math.ceil(segment.exposure_ms / 1e3 * rig.daq.sample_rate_hz))
        released = segment.first_frame  # frames whose time the clock has been let reach
        # never further ahead than the DAQ samples kept for the frames' means
        ahead = max(0, min(self.lookahead_frames, int(segment.frame_rate_hz * KEEP_S / 2)))
        f, end = segment.first_frame, segment.end_frame
        stopped = False  # the triggers, by a cut (even one that left every frame to come)
        while f < end:
            self._check_stop()
            if self._cut:  # only the frames already triggered are left
                self._cut, stopped = False, True
                rig.daq.stop_triggers()
                start = self._train_start or TrainCounts(0, 0, 0)
                triggered = TrainCounts.now(rig.daq, rig.camera).since(start).triggers
                end = min(end, max(train.first_frame + triggered, f))
                released = end
                if f >= end:
                    break
            if f >= released - ahead // 2:
                released = min(f + 1 + ahead, end)
                rig.clock.run_to(self._t0 + train.time_of(released))
            frame = yield from self._next_frame(f)
            placed = self._place(frame, f, train)
            if placed > f:
                lost = list(range(f, placed))
                self.dropped_frames += len(lost)
                yield Note("frames_dropped", {"frames": lost, "time_s": self.now()}, quiet=True)
                f = placed
            if f >= end:  # frames lost up to the end of the segment
                self._early_frame = frame
                break
            session_index = train.sample_of(f)
            means = self._daq.mean(session_index, exposure_samples)
            if self._daq.fresh:  # the frame that follows is the runner's sign of life
                yield Samples(tuple(self._daq.drain()))
            drive_v, current = means[self._drive_column], means[self._current_column]
            if current > limits.max_current_A:
                raise LimitError(
                    "heater",
                    f"current {current:.4f} A is above the rig's max_current_A "
                    f"{limits.max_current_A:g} A",
                    "check the film and its wiring",
                )
            record = FrameRecord(
                frame=self._next_number,
                time_s=round(self.time_offset_s + train.time_of(f), 9),
                temperature_K=segment.setpoint_K,
                segment=segment.index,
                kind=segment.kind,
                step=segment.step,
                cycle=segment.cycle,
                drive_V=round(float(drive_v), 6),
                current_A=round(float(current), 7),
                daq_index=self.sample_offset + session_index,
                camera_frame=frame.number,
                film_temperature_K=self._film_temperature(drive_v, current),
                schedule_frame=f,
                session=self._session,
            )
            self._next_number += 1
            yield Acquired(frame.image, record)
            f += 1
        self._train_next = segment.end_frame
        if stopped:  # cut: the next segment starts its own train
            yield from self._end_train()

    def _film_temperature(self, drive_V: float, current_A: float) -> float:
        """The film's temperature from V/I over the exposure, NaN where it cannot be read."""
        if self._film is None:
            return float("nan")
        value = float(self._film.temperature_K(np.asarray(drive_V), np.asarray(current_A)))
        return round(value, 3) if math.isfinite(value) else float("nan")

    def _place(self, frame: CameraFrame, expected: int, train: PulseTrain) -> int:
        """The schedule frame `frame` belongs to, by the camera's own frame counter
        counted from the pulse train's first trigger (a segment cut short or done again
        moves the schedule against the count): past `expected` means frames were exposed
        but lost on the way."""
        before = self._train_start.triggers if self._train_start is not None else 0
        index = train.first_frame + frame.number - before
        return expected if frame.number < 0 or index <= expected else index

    def _next_frame(self, frame: int) -> Generator[Output, None, CameraFrame]:
        """The camera's next frame (this generator's return value); if none comes, say
        how many triggers went unanswered (a dropped frame is counted and recorded,
        never papered over)."""
        camera = self.rig.camera
        if self._early_frame is not None:
            early, self._early_frame = self._early_frame, None
            return early
        try:
            return camera.next_frame(self.frame_timeout_s)
        except CameraTimeout:
            triggered = min(self.rig.daq.triggers_sent(), self._frames_expected(frame))
            self.dropped_frames = max(self.dropped_frames, camera.dropped_frames(triggered))
            yield Note("frame_missing", {"frame": frame, "triggered": triggered}, quiet=True)
            camera.check_frames(triggered)  # DroppedFrames, saying how many
            raise

    def _frames_expected(self, frame: int) -> int:
        """Frames this session should have had triggered up to and including `frame`."""
        return frame + 1 - self.schedule.segments[0].first_frame

    def _let_time_pass(self, seconds: float) -> Iterator[Output]:
        """A wait: time passes (instantly on a virtual clock), the DAQ's samples are
        still read, and the runner hears from it every half second."""
        clock = self.rig.clock
        end = clock.now() + seconds
        while (left := end - clock.now()) > 1e-9:
            self._check_stop()
            clock.sleep(min(0.5, left))
            self._daq.pull()
            yield Samples(tuple(self._daq.drain()))

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise RunAborted("run aborted")
