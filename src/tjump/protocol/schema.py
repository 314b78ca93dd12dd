"""The protocol file: what to do, step by step, validated before any device is touched."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Bounds that no real protocol comes near; they keep every number finite and every schedule
# small enough to unroll (see schedule_size for the whole-schedule limits).
MAX_STEP_S = 86_400.0  # one step lasts at most a day
MIN_FRAME_RATE_HZ = 0.5  # the sequencer keeps 10 s of DAQ samples for the frames' means
MAX_FRAME_RATE_HZ = 10_000.0
MAX_EXPOSURE_MS = 60_000.0
MAX_TEMPERATURE_K = 2_000.0
MAX_COUNT = 100_000  # cycles of a series, times of a repeat
MAX_LIST = 10_000  # steps in a list, temperatures in a series
MAX_NAME = 80
MAX_LEVERAGE_SCALE = 4.0  # an adaptive series' target is at most this much looser
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+()-]*")

Seconds = Annotated[float, Field(gt=0, le=MAX_STEP_S)]
Kelvin = Annotated[float, Field(gt=0, le=MAX_TEMPERATURE_K)]
FrameRate = Annotated[float, Field(ge=MIN_FRAME_RATE_HZ, le=MAX_FRAME_RATE_HZ)]
Exposure = Annotated[float, Field(gt=0, le=MAX_EXPOSURE_MS)]
Count = Annotated[int, Field(gt=0, le=MAX_COUNT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=False)


class _Step(_Strict):
    """What every step may override for itself."""

    frame_rate_hz: FrameRate | None = Field(None, description="default: the protocol's")
    exposure_ms: Exposure | None = Field(None, description="default: the protocol's")


class BaselineStep(_Step):
    """Film at ambient, camera running: the particles' reference intensities."""

    kind: Literal["baseline"]
    duration_s: Seconds


class AdaptiveHold(_Strict):
    """End a heat step once `end_when_switched` of the tracked (non-inert) particles have
    switched, but not before `min_hold_s` nor after the step's `heat_s`."""

    end_when_switched: float = Field(
        gt=0, le=1, description="fraction of the tracked particles switched (0 to 1]"
    )
    min_hold_s: Seconds


class AdaptiveCycles(_Strict):
    """Stop a temperature of a series once every particle's mean nucleation time is known
    to `target_relative_precision` (one standard error over the mean, from the same
    censored estimate the analysis uses), after at least `min_cycles` and at most the
    step's `cycles`. Particles with no nucleation yet have no mean and are not waited for.

    With `scale_by_leverage`, the target applies at the series' outermost temperatures and
    is looser towards its centre (in 1/T), where a mean barely moves the Arrhenius slope
    (Ea): divided by the temperature's distance from the centre over the outermost one,
    at most `MAX_LEVERAGE_SCALE` times the target."""

    target_relative_precision: float = Field(gt=0, lt=1)
    min_cycles: Count
    waiting_time_shape: float = Field(
        1.0,
        ge=0.3,
        le=60.0,
        description="Gamma shape of the waiting times assumed by the estimate; 1 "
        "(exponential) is the most cautious, `tjump analyze` reports each particle's",
    )
    scale_by_leverage: bool = Field(
        False, description="loosen the target towards the centre of the series (for Ea)"
    )


class AdaptiveCool(_Strict):
    """End a cool step once the film is back near the cool's temperature and every
    tracked particle is back in its low-spin level, but not before `min_cool_s` nor after
    the step's `cool_s`. The film is judged by where the step response says it is (the
    setpoints so far, superposed) and by V/I where the drive lets it be read: within
    `film_within` of the last jump's size (0.05: 4.5 K above 293 K after a 90 K jump)."""

    film_within: float = Field(
        gt=0, le=0.5, description="fraction of the last jump the film may still be above"
    )
    min_cool_s: Seconds


class SeriesStep(_Step):
    """For each temperature in turn, `cycles` jumps: heat to it, hold, cool, hold.
    (One temperature makes plain heat/cool cycles.)

    With `adaptive_hold` a heat may end early (heat_s is then its longest); with
    `adaptive_cool` a cool may (cool_s is then its longest); with `adaptive_cycles` a
    temperature may stop early (cycles is then its most)."""

    kind: Literal["series"]
    temperatures_K: list[Kelvin] = Field(min_length=1, max_length=MAX_LIST)
    cycles: Count
    heat_s: Seconds
    cool_s: Seconds
    low_K: Kelvin | None = Field(
        None, description="temperature between jumps; default the rig's ambient"
    )
    adaptive_hold: AdaptiveHold | None = None
    adaptive_cool: AdaptiveCool | None = None
    adaptive_cycles: AdaptiveCycles | None = None

    @model_validator(mode="after")
    def _adaptive_within_fixed(self) -> SeriesStep:
        """The adaptive minima lie within the step's own (maximum) hold and cycles."""
        hold, cool, series = self.adaptive_hold, self.adaptive_cool, self.adaptive_cycles
        if hold is not None and hold.min_hold_s > self.heat_s:
            raise ValueError(
                f"adaptive_hold.min_hold_s {hold.min_hold_s:g} s is longer than heat_s "
                f"{self.heat_s:g} s (the longest a heat lasts)"
            )
        if cool is not None and cool.min_cool_s > self.cool_s:
            raise ValueError(
                f"adaptive_cool.min_cool_s {cool.min_cool_s:g} s is longer than cool_s "
                f"{self.cool_s:g} s (the longest a cool lasts)"
            )
        if series is not None and series.min_cycles > self.cycles:
            raise ValueError(
                f"adaptive_cycles.min_cycles {series.min_cycles} is more than cycles "
                f"{self.cycles} (the most a temperature gets)"
            )
        return self


class AblationStep(_Step):
    """Thermal ablation: a long hold far above the transition, then back to low."""

    kind: Literal["ablation"]
    temperature_K: Kelvin
    duration_s: Seconds
    cool_s: Seconds = 60.0


class HoldStep(_Step):
    """Hold one temperature (ambient if none) with the camera running."""

    kind: Literal["hold"]
    temperature_K: Kelvin | None = None
    duration_s: Seconds


class LightStep(_Step):
    """Open the light-stimulus shutter (a DAQ line) for `duration_s`, camera running."""

    kind: Literal["light"]
    duration_s: Seconds
    temperature_K: Kelvin | None = None


class WaitStep(_Strict):
    """Heater at ambient and the camera idle: no frames are taken."""

    kind: Literal["wait"]
    duration_s: Seconds


class RepeatStep(_Strict):
    """Run `steps` `times` times over."""

    kind: Literal["repeat"]
    times: Count
    steps: list[Step] = Field(min_length=1, max_length=MAX_LIST)


Step = Annotated[
    BaselineStep | SeriesStep | AblationStep | HoldStep | LightStep | WaitStep | RepeatStep,
    Field(discriminator="kind"),
]
RepeatStep.model_rebuild()


def series_steps(steps: Sequence[Step]) -> Iterator[SeriesStep]:
    """Every series step, those inside repeats included."""
    for step in steps:
        if isinstance(step, SeriesStep):
            yield step
        elif isinstance(step, RepeatStep):
            yield from series_steps(step.steps)


class Suspend(_Strict):
    """Make the heater safe and pause when the film's temperature, measured through V/I,
    leaves `band_K` around where it should be, or its current jumps by more than
    `current_jump_fraction` from one frame to the next at a steady drive; after
    `resume_after_s` the interrupted cycle starts again, at most `max_resumes` times in a
    run, after which (and in an ablation, which cannot be repeated) the run aborts."""

    band_K: float = Field(gt=0, le=200)
    current_jump_fraction: float = Field(0.1, gt=0, le=1)
    max_resumes: int = Field(3, ge=0, le=100)
    resume_after_s: Seconds = 10.0
    settle_s: float = Field(
        1.0,
        ge=0,
        le=MAX_STEP_S,
        description="seconds after each drive change before the current is watched",
    )


class Burst(_Strict):
    """The fast camera: keep `pre_s` of frames in its memory and, when a nucleation is
    detected live in `trigger` (a particle id, or any particle), save `pre_s` before the
    trigger and `post_s` after it. `pre_s` must cover the live detection's delay (a few
    frames of the main camera)."""

    trigger: Literal["any"] | Annotated[int, Field(ge=0, le=MAX_COUNT)] = "any"
    pre_s: float = Field(1.0, gt=0, le=10.0)
    post_s: float = Field(0.1, gt=0, le=10.0)
    max_bursts: Count = Field(100, description="bursts saved in a run, at most")


class Protocol(_Strict):
    """A whole experiment."""

    name: str = Field(
        description=f"names the run directory: letters, digits, space and ._+()- "
        f"(at most {MAX_NAME} characters)"
    )
    description: str = Field("", max_length=MAX_LIST)
    frame_rate_hz: FrameRate = 10.0
    exposure_ms: Exposure | None = Field(None, description="camera exposure; default the rig's")
    steps: list[Step] = Field(min_length=1, max_length=MAX_LIST)
    suspend: Suspend | None = Field(
        None, description="pause (and abort after repeats) when the heater misbehaves"
    )
    burst: Burst | None = Field(None, description="fast-camera bursts on live nucleations")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        """A name becomes part of a folder name: nothing that could leave `runs/`."""
        if not 0 < len(name) <= MAX_NAME:
            raise ValueError(f"must be 1 to {MAX_NAME} characters long, not {len(name)}")
        if not _NAME.fullmatch(name) or ".." in name:
            raise ValueError(
                "may hold only letters, digits, space and ._+()- , start with a letter or "
                "digit, and not contain '..'"
            )
        return name
