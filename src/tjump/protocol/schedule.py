"""A protocol unrolled into segments of constant setpoint, each a whole number of frames."""

from __future__ import annotations

from dataclasses import dataclass

from tjump.protocol.schema import AblationStep, BaselineStep, HoldStep, Protocol, SeriesStep


@dataclass(frozen=True)
class Segment:
    """A stretch of constant heater setpoint.

    `field` is where in the protocol file the segment comes from (for messages), `cycle`
    counts heating cycles within one temperature of a series (1-based, 0 outside one)."""

    index: int
    kind: str  # baseline | heat | cool | ablation | hold
    setpoint_K: float
    first_frame: int
    frames: int
    step: int
    cycle: int
    field: str

    @property
    def end_frame(self) -> int:
        return self.first_frame + self.frames


@dataclass(frozen=True)
class Schedule:
    segments: tuple[Segment, ...]
    frame_rate_hz: float

    @property
    def total_frames(self) -> int:
        return self.segments[-1].end_frame if self.segments else 0

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.frame_rate_hz


def frames_in(seconds: float, frame_rate_hz: float) -> int:
    """Whole frames in a duration (at least one)."""
    return max(1, round(seconds * frame_rate_hz))


def build_schedule(protocol: Protocol, ambient_K: float) -> Schedule:
    """Unroll every step into segments, in order."""
    fps = protocol.frame_rate_hz
    segments: list[Segment] = []

    def add(kind: str, setpoint: float, seconds: float, step: int, cycle: int, field: str) -> None:
        first = segments[-1].end_frame if segments else 0
        segments.append(
            Segment(
                len(segments), kind, setpoint, first, frames_in(seconds, fps), step, cycle, field
            )
        )

    for i, step in enumerate(protocol.steps):
        at = f"steps.{i}"
        if isinstance(step, BaselineStep):
            add("baseline", ambient_K, step.duration_s, i, 0, f"{at}.duration_s")
        elif isinstance(step, SeriesStep):
            low = step.low_K if step.low_K is not None else ambient_K
            for j, temp in enumerate(step.temperatures_K):
                for cycle in range(1, step.cycles + 1):
                    add("heat", temp, step.heat_s, i, cycle, f"{at}.temperatures_K.{j}")
                    add("cool", low, step.cool_s, i, cycle, f"{at}.low_K")
        elif isinstance(step, AblationStep):
            add("ablation", step.temperature_K, step.duration_s, i, 0, f"{at}.temperature_K")
            add("cool", ambient_K, step.cool_s, i, 0, f"{at}.cool_s")
        elif isinstance(step, HoldStep):
            temp = step.temperature_K if step.temperature_K is not None else ambient_K
            add("hold", temp, step.duration_s, i, 0, f"{at}.temperature_K")
    return Schedule(tuple(segments), fps)
