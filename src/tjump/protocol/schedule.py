"""A protocol unrolled into segments: stretches of constant setpoint, light and camera
settings, each a whole number of frames (none for a wait)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from tjump.errors import InputError
from tjump.protocol.schema import (
    AblationStep,
    BaselineStep,
    HoldStep,
    LightStep,
    Protocol,
    RepeatStep,
    SeriesStep,
    Step,
    WaitStep,
)


class SegmentKind(StrEnum):
    """What a segment does; its value is the `kind` text of frames.csv and the run log."""

    BASELINE = "baseline"  # ambient, frames for finding particles
    HEAT = "heat"  # one heating of a series
    COOL = "cool"  # the cooling after a heat or an ablation
    ABLATION = "ablation"
    HOLD = "hold"
    LIGHT = "light"  # the sample lit, at a set temperature
    WAIT = "wait"  # time passes, no frames

    @property
    def takes_frames(self) -> bool:
        return self is not SegmentKind.WAIT


@dataclass(frozen=True)
class Segment:
    """A stretch of constant heater setpoint and camera settings.

    `field` is where in the protocol file the segment comes from (for messages); `step` is
    the index of its top-level step; `cycle` counts heating cycles within one temperature
    of a series (1-based, 0 outside one); a `wait` segment takes no frames."""

    index: int
    kind: SegmentKind
    setpoint_K: float
    first_frame: int
    frames: int
    duration_s: float
    frame_rate_hz: float
    exposure_ms: float
    step: int
    cycle: int
    field: str
    light: bool = False

    @property
    def end_frame(self) -> int:
        return self.first_frame + self.frames

    def heated_above(self, ambient_K: float) -> bool:
        """Whether the heater drives the film above `ambient_K` (never in a wait)."""
        return self.kind.takes_frames and self.setpoint_K > ambient_K


@dataclass(frozen=True)
class Schedule:
    segments: tuple[Segment, ...]

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.segments)

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    @property
    def frame_rate_hz(self) -> float:
        """The first segment's frame rate (the protocol's, unless it overrides it)."""
        return self.segments[0].frame_rate_hz

    def from_segment(self, index: int) -> Schedule:
        """The schedule from segment `index` on, frames numbered as before."""
        return Schedule(self.segments[index:])


def frames_in(seconds: float, frame_rate_hz: float) -> int:
    """Whole frames in a duration (at least one)."""
    return max(1, round(seconds * frame_rate_hz))


@dataclass
class _Builder:
    protocol: Protocol
    ambient_K: float
    default_exposure_ms: float
    segments: list[Segment] = field(default_factory=list)

    def add(
        self,
        kind: SegmentKind,
        setpoint: float,
        seconds: float,
        step: Step,
        top: int,
        cycle: int,
        where: str,
        light: bool = False,
    ) -> None:
        first = self.segments[-1].end_frame if self.segments else 0
        fps = getattr(step, "frame_rate_hz", None) or self.protocol.frame_rate_hz
        exposure = (
            getattr(step, "exposure_ms", None)
            or self.protocol.exposure_ms
            or self.default_exposure_ms
        )
        frames = frames_in(seconds, fps) if kind.takes_frames else 0
        duration = frames / fps if kind.takes_frames else seconds
        self.segments.append(
            Segment(
                len(self.segments),
                kind,
                setpoint,
                first,
                frames,
                duration,
                fps,
                exposure,
                top,
                cycle,
                where,
                light,
            )
        )

    def steps(self, steps: Sequence[Step], at: str, top: int | None = None) -> None:
        for i, step in enumerate(steps):
            self.step(step, f"{at}.{i}", i if top is None else top)

    def step(self, step: Step, at: str, top: int) -> None:
        ambient = self.ambient_K
        if isinstance(step, BaselineStep):
            self.add(
                SegmentKind.BASELINE, ambient, step.duration_s, step, top, 0, f"{at}.duration_s"
            )
        elif isinstance(step, SeriesStep):
            low = step.low_K if step.low_K is not None else ambient
            for j, temp in enumerate(step.temperatures_K):
                for cycle in range(1, step.cycles + 1):
                    self.add(
                        SegmentKind.HEAT,
                        temp,
                        step.heat_s,
                        step,
                        top,
                        cycle,
                        f"{at}.temperatures_K.{j}",
                    )
                    self.add(SegmentKind.COOL, low, step.cool_s, step, top, cycle, f"{at}.low_K")
        elif isinstance(step, AblationStep):
            self.add(
                SegmentKind.ABLATION,
                step.temperature_K,
                step.duration_s,
                step,
                top,
                0,
                f"{at}.temperature_K",
            )
            self.add(SegmentKind.COOL, ambient, step.cool_s, step, top, 0, f"{at}.cool_s")
        elif isinstance(step, HoldStep):
            temp = step.temperature_K if step.temperature_K is not None else ambient
            self.add(SegmentKind.HOLD, temp, step.duration_s, step, top, 0, f"{at}.temperature_K")
        elif isinstance(step, LightStep):
            temp = step.temperature_K if step.temperature_K is not None else ambient
            self.add(
                SegmentKind.LIGHT,
                temp,
                step.duration_s,
                step,
                top,
                0,
                f"{at}.temperature_K",
                light=True,
            )
        elif isinstance(step, WaitStep):
            self.add(SegmentKind.WAIT, ambient, step.duration_s, step, top, 0, f"{at}.duration_s")
        elif isinstance(step, RepeatStep):
            for _ in range(step.times):
                self.steps(step.steps, f"{at}.steps", top)


MAX_SEGMENTS = 100_000
MAX_FRAMES = 20_000_000  # 28 h at 200 frames/s; 10 TB of 640 x 480 frames
MAX_DURATION_S = 7 * 86_400.0
MAX_REPEAT_DEPTH = 8


@dataclass
class _Size:
    segments: int = 0
    frames: int = 0
    seconds: float = 0.0

    def add(self, other: _Size, times: int = 1) -> None:
        self.segments += other.segments * times
        self.frames += other.frames * times
        self.seconds += other.seconds * times


def _size(steps: Sequence[Step], protocol: Protocol, at: str, depth: int) -> _Size:
    """What `steps` unroll to, counted without unrolling them."""
    total = _Size()
    for i, step in enumerate(steps):
        where = f"{at}.{i}"
        if isinstance(step, RepeatStep):
            if depth >= MAX_REPEAT_DEPTH:
                raise InputError(
                    f"{where}: repeat steps nest more than {MAX_REPEAT_DEPTH} deep; "
                    "flatten the protocol"
                )
            total.add(_size(step.steps, protocol, f"{where}.steps", depth + 1), step.times)
            continue
        fps = getattr(step, "frame_rate_hz", None) or protocol.frame_rate_hz
        if isinstance(step, SeriesStep):
            per = len(step.temperatures_K) * step.cycles
            total.add(
                _Size(
                    2,
                    frames_in(step.heat_s, fps) + frames_in(step.cool_s, fps),
                    step.heat_s + step.cool_s,
                ),
                per,
            )
        elif isinstance(step, AblationStep):
            total.add(
                _Size(
                    2,
                    frames_in(step.duration_s, fps) + frames_in(step.cool_s, fps),
                    step.duration_s + step.cool_s,
                )
            )
        elif isinstance(step, WaitStep):
            total.add(_Size(1, 0, step.duration_s))
        else:
            total.add(_Size(1, frames_in(step.duration_s, fps), step.duration_s))
    return total


def check_size(protocol: Protocol, source: str) -> None:
    """Refuse a protocol whose schedule would be too big to run, before unrolling it."""
    size = _size(protocol.steps, protocol, "steps", 0)
    problems = []
    if size.segments > MAX_SEGMENTS:
        problems.append(f"{size.segments} segments (at most {MAX_SEGMENTS})")
    if size.frames > MAX_FRAMES:
        problems.append(f"{size.frames} frames (at most {MAX_FRAMES})")
    if size.seconds > MAX_DURATION_S:
        problems.append(f"{size.seconds:.0f} s of experiment (at most {MAX_DURATION_S:.0f} s)")
    if problems:
        raise InputError(
            f"protocol {source}: steps unroll to "
            + ", ".join(problems)
            + "; split it into several protocols"
        )


def build_schedule(
    protocol: Protocol, ambient_K: float, default_exposure_ms: float, source: str = ""
) -> Schedule:
    """Unroll every step into segments, in order (after checking the size they unroll to)."""
    check_size(protocol, source or f"'{protocol.name}'")
    builder = _Builder(protocol, ambient_K, default_exposure_ms)
    builder.steps(protocol.steps, "steps")
    return Schedule(tuple(builder.segments))
