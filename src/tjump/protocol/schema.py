"""The protocol file: what to do, step by step, validated before any device is touched."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class SeriesStep(_Step):
    """For each temperature in turn, `cycles` jumps: heat to it, hold, cool, hold.
    (One temperature makes plain heat/cool cycles.)"""

    kind: Literal["series"]
    temperatures_K: list[Kelvin] = Field(min_length=1, max_length=MAX_LIST)
    cycles: Count
    heat_s: Seconds
    cool_s: Seconds
    low_K: Kelvin | None = Field(
        None, description="temperature between jumps; default the rig's ambient"
    )


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
