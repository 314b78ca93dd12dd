"""Nucleation events while a run records: the offline rule, frame by frame.

`LiveDetector` is fed one row of particle intensities per frame, with the frame's number,
time, segment and whether the heater is in a heating segment. It does what the offline
detector (`events.detect_events`) does, with the frames seen so far:

- each intensity is divided by the particle's baseline level and by the reference, the
  focal drift every particle shares: the median of that ratio over the usable particles
  not switched in this heat; when fewer than 3 are left, over every usable particle, those
  switched in this heat divided by 1 - their step (as the offline common mode does);
- at a jump each particle's level is the median of its last `PRE_FRAMES` frames before it;
- during the heat, a particle not yet switched whose last `confirm_frames` frames lie
  below its level by more than half the rule's smallest step is handed to the offline step
  finder with all its frames since the level: it has switched when the best step passes the
  same `StepRule` (`EVENT_RULE`, the offline default) and at least `confirm_frames` frames
  follow it. When the heat ends, the particles left are tested once more with all of it,
  as offline.

An event carries the offline sub-frame time. Live and offline events differ only where
offline knows more: it keeps a drop only if the particle returns on cooling, and its common
mode is fitted over the whole run. `FrameDetector` puts `OnlineTraces` in front, for a
consumer that has images rather than intensities.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.events import EVENT_RULE, HEAT, PRE_FRAMES, StepRule, find_step, switch_time
from tjump.analysis.model import Analysis
from tjump.analysis.traces import OnlineTraces
from tjump.storage.layout import FrameRecord

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class LiveEvent:
    """A particle switched in a heat."""

    particle: int  # column of the intensity rows (the live detection's particle id)
    segment: int
    cycle: int
    setpoint_K: float
    frame: int  # the frame at the change (offline's `switch_frame`; `time_s` says where)
    time_s: float  # run time of the switch, sub-frame
    nucleation_s: float  # from the jump
    step: float  # relative drop
    seen_frame: int  # the frame whose arrival confirmed it


@dataclass(frozen=True)
class LiveUpdate:
    """What one frame gives: the reference, the corrected intensities, new events."""

    reference: float
    corrected: FloatArray
    events: list[LiveEvent]


class _Heat:
    """The rows of the heat in progress, from the frames that set the level onwards."""

    def __init__(
        self, segment: int, cycle: int, setpoint_K: float, particles: int, capacity: int = 256
    ) -> None:
        self.segment, self.cycle, self.setpoint_K = segment, cycle, setpoint_K
        self.rows = np.empty((capacity, particles))
        self.frames = np.empty(capacity, dtype=np.int64)
        self.times = np.empty(capacity)
        self.count = 0
        self.jump = 0  # index of the first heated row
        self.jump_s = 0.0
        self.level = np.full(particles, np.nan)

    def append(self, frame: int, time_s: float, row: FloatArray) -> None:
        if self.count == len(self.rows):
            grow = len(self.rows)
            self.rows = np.concatenate([self.rows, np.empty_like(self.rows[:grow])])
            self.frames = np.concatenate([self.frames, np.empty_like(self.frames[:grow])])
            self.times = np.concatenate([self.times, np.empty_like(self.times[:grow])])
        self.rows[self.count] = row
        self.frames[self.count] = frame
        self.times[self.count] = time_s
        self.count += 1

    def start(self, time_s: float) -> None:
        """The rows so far set the level; the next row is the jump."""
        self.jump, self.jump_s = self.count, time_s
        if self.count:
            self.level = np.nanmedian(self.rows[: self.count], axis=0)


def _median(values: FloatArray) -> float:
    """np.median of a non-empty, finite array, without its per-call overhead."""
    k = values.size // 2
    if values.size % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return float(0.5 * (part[k - 1] + part[k]))


class LiveDetector:
    """Events frame by frame, by the offline rule (see the module's docstring).

    `baseline`: each particle's intensity at the start (e.g. the mean of the detection
    frames); `usable`: the particles the reference and `switched_fraction` count (default
    all); `inert`: particles that never get events and do not count in the fraction;
    `exposure_s`: the camera's exposure for the sub-frame time (default: the frame
    period, i.e. no dead time between exposures)."""

    def __init__(
        self,
        baseline: FloatArray,
        usable: BoolArray | None = None,
        inert: BoolArray | None = None,
        exposure_s: float | None = None,
        rule: StepRule = EVENT_RULE,
        confirm_frames: int = 3,
    ) -> None:
        n = len(baseline)
        self.baseline = np.where(baseline > 0, baseline, np.nan).astype(np.float64)
        all_ = np.ones(n, dtype=bool)
        self.usable = usable if usable is not None and usable.any() else all_
        self.inert = inert if inert is not None else np.zeros(n, dtype=bool)
        self.exposure_s = exposure_s
        self.rule = rule
        self.confirm_frames = max(int(confirm_frames), 1)
        self.switched = np.zeros(n, dtype=bool)  # in the current heat (or the last one)
        self._scale = np.ones(n)  # 1 - step of the particles switched in the current heat
        self.events: list[LiveEvent] = []
        self._pre: deque[tuple[int, float, FloatArray]] = deque(maxlen=PRE_FRAMES)
        self._heat: _Heat | None = None
        self._last: tuple[int, float, FloatArray] | None = None
        self._reference = 1.0
        self._level: FloatArray | None = None  # each particle's level before the last heat

    def add(
        self,
        frame: int,
        time_s: float,
        segment: int,
        heating: bool,
        intensity: FloatArray,
        cycle: int = 0,
        setpoint_K: float = float("nan"),
    ) -> LiveUpdate:
        """One frame's intensities (in frame order); a heat is a run of heating frames of
        one segment."""
        events: list[LiveEvent] = []
        new_heat = heating and (self._heat is None or self._heat.segment != segment)
        if self._heat is not None and (new_heat or not heating):
            events += self._finish(frame)
        if new_heat:
            self._begin(segment, cycle, setpoint_K, time_s)
        ratio = np.asarray(intensity, dtype=np.float64) / self.baseline
        self._reference = self._common(ratio)
        corrected = ratio / self._reference
        if self._heat is None:
            self._pre.append((frame, time_s, corrected))
        else:
            self._heat.append(frame, time_s, corrected)
            events += self._check(frame)
        self._last = (frame, time_s, corrected)
        self.events.extend(events)
        return LiveUpdate(self._reference, corrected, events)

    def add_record(self, record: FrameRecord, intensity: FloatArray) -> LiveUpdate:
        """`add` with what a run's frame record says about the frame."""
        return self.add(
            record.frame,
            record.time_s,
            record.segment,
            record.kind == HEAT,
            intensity,
            record.cycle,
            record.temperature_K,
        )

    def close(self) -> list[LiveEvent]:
        """The run ended: test the heat in progress with all of it (as its end would)."""
        if self._heat is None or self._last is None:
            return []
        events = self._finish(self._last[0])
        self.events.extend(events)
        return events

    def back_at_level(self, frames: int = 5) -> BoolArray:
        """Between heats: the particles whose mean over the last `frames` frames since the
        last heat lies within half the rule's smallest step of their level before that
        heat (back in low spin). None is back during a heat, before the first, or with
        fewer frames since it; a particle without a level never is."""
        n = len(self.baseline)
        if self._heat is not None or self._level is None or len(self._pre) < frames:
            return np.zeros(n, dtype=bool)
        recent = np.mean([row for _, _, row in list(self._pre)[-frames:]], axis=0)
        with np.errstate(invalid="ignore"):
            back = recent >= (1.0 - 0.5 * self.rule.min_step) * self._level
        return np.asarray(back & np.isfinite(self._level))

    def switched_fraction(self) -> float:
        """Fraction of the usable, non-inert particles switched in the current heat (or
        the last one, between heats); 0 before any heat."""
        pool = self.usable & ~self.inert
        return float(self.switched[pool].mean()) if pool.any() else 0.0

    # -- inside ------------------------------------------------------------------------

    def _common(self, ratio: FloatArray) -> float:
        """The reference of one frame (the last one when no particle gives one)."""
        low = ratio[self.usable & ~self.switched]
        low = low[np.isfinite(low)]
        if low.size >= 3:
            return _median(low)
        scale = self._scale if self._heat is not None else 1.0
        every = (ratio / scale)[self.usable]
        every = every[np.isfinite(every)]
        if every.size:
            return _median(every)
        return self._reference

    def _begin(self, segment: int, cycle: int, setpoint_K: float, time_s: float) -> None:
        heat = _Heat(segment, cycle, setpoint_K, len(self.baseline))
        before = list(self._pre) or ([self._last] if self._last is not None else [])
        for f, t, row in before:
            heat.append(f, t, row)
        heat.start(time_s)
        self._pre.clear()
        self._heat = heat
        self.switched[:] = False
        self._scale[:] = 1.0

    def _finish(self, seen_frame: int) -> list[LiveEvent]:
        heat = self._heat
        self._heat = None
        if heat is None:
            return []
        self._level = heat.level
        return self._test(heat, self._candidates(heat), seen_frame, 1)

    def _candidates(self, heat: _Heat) -> BoolArray:
        return np.asarray(~self.switched & ~self.inert & (heat.level > 0))

    def _check(self, seen_frame: int) -> list[LiveEvent]:
        heat = self._heat
        confirm = self.confirm_frames
        if heat is None or heat.count - heat.jump < confirm + 1:
            return []
        recent = heat.rows[heat.count - confirm : heat.count].sum(axis=0)
        with np.errstate(invalid="ignore"):
            dimmed = recent < (1.0 - 0.5 * self.rule.min_step) * confirm * heat.level
        if not dimmed.any():
            return []
        return self._test(heat, self._candidates(heat) & dimmed, seen_frame, confirm)

    def _test(
        self, heat: _Heat, candidates: BoolArray, seen_frame: int, confirm: int
    ) -> list[LiveEvent]:
        """The offline step finder on each candidate's rows; `confirm` rows must follow."""
        m = heat.count
        if heat.jump < 2 or m - heat.jump < 2:
            return []
        found: list[LiveEvent] = []
        for i in np.flatnonzero(candidates):
            y = heat.rows[:m, i] / heat.level[i]
            step = find_step(y, 0, heat.jump, True, self.rule.min_step, self.rule.min_t)
            if step is None or m - 1 - step.frame < confirm:
                continue
            times = heat.times[:m]
            period = float(np.median(np.diff(times)))
            exposure = self.exposure_s if self.exposure_s is not None else period
            waited = max(switch_time(step, times, exposure, period) - heat.jump_s, 0.0)
            self.switched[i] = True
            step_size = step.local_change / step.before
            if 0.0 < step_size < 1.0:
                self._scale[i] = 1.0 - step_size
            found.append(
                LiveEvent(
                    int(i),
                    heat.segment,
                    heat.cycle,
                    heat.setpoint_K,
                    int(heat.frames[step.frame]),
                    heat.jump_s + waited,
                    waited,
                    step_size,
                    seen_frame,
                )
            )
        return found


class FrameDetector:
    """Images in, events out: `OnlineTraces` finds the particles in the first
    `baseline_frames` frames and measures each frame; their mean intensity there is the
    `LiveDetector`'s baseline."""

    def __init__(
        self,
        baseline_frames: int = 20,
        exposure_s: float | None = None,
        rule: StepRule = EVENT_RULE,
        confirm_frames: int = 3,
    ) -> None:
        self.traces = OnlineTraces(baseline_frames)
        self.detector: LiveDetector | None = None
        self._exposure_s, self._rule, self._confirm = exposure_s, rule, confirm_frames
        self._waiting: list[FrameRecord] = []

    def add(self, image: NDArray[np.uint16], record: FrameRecord) -> list[LiveEvent]:
        """One frame and its record; the events it completes."""
        self._waiting.append(record)
        rows = self.traces.add(image)
        if rows is None or self.traces.detections is None:
            return []
        if self.detector is None:
            self.detector = LiveDetector(
                np.nanmean(rows, axis=0),
                self.traces.detections.usable,
                exposure_s=self._exposure_s,
                rule=self._rule,
                confirm_frames=self._confirm,
            )
        events: list[LiveEvent] = []
        for waiting, row in zip(self._waiting, rows, strict=True):
            events += self.detector.add_record(waiting, row).events
        self._waiting.clear()
        return events

    def switched_fraction(self) -> float:
        """See `LiveDetector.switched_fraction` (0 while the particles are not found)."""
        return self.detector.switched_fraction() if self.detector is not None else 0.0


@dataclass(frozen=True)
class Replay:
    """A recorded run's live events, placed in the offline analysis's cycles."""

    events: list[LiveEvent]
    cycles: list[int]  # the offline cycle of each event
    nucleation_s: FloatArray  # particle x cycle, as the offline events; NaN: no live event


def replay(
    analysis: Analysis, frames: Sequence[Mapping[str, str]], confirm_frames: int = 3
) -> Replay:
    """Feed a recorded run's traces to a `LiveDetector` frame by frame, as the run would
    have; `frames` is the run's frames table (one row per frame, in order)."""
    intensity = analysis.traces.intensity
    live = LiveDetector(
        intensity[:20].mean(axis=0),
        analysis.detections.usable,
        exposure_s=analysis.recording.exposure_s,
        confirm_frames=confirm_frames,
    )
    for k, row in enumerate(frames):
        live.add(
            int(row["frame"]),
            float(row["time_s"]),
            int(row["segment"]),
            row["kind"] == HEAT,
            intensity[k],
            int(row["cycle"]),
            float(row["temperature_K"]),
        )
    live.close()
    nucleation_s = np.full(analysis.events.nucleation_s.shape, np.nan)
    cycles = []
    for event in live.events:
        (j,) = [j for j, c in enumerate(analysis.cycles) if c.first <= event.frame < c.cool_first]
        nucleation_s[event.particle, j] = event.nucleation_s
        cycles.append(j)
    return Replay(live.events, cycles, nucleation_s)
