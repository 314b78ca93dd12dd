"""The protocol file: what to do, step by step, validated before any device is touched."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Step(_Strict):
    """What every step may override for itself."""

    frame_rate_hz: PositiveFloat | None = Field(None, description="default: the protocol's")
    exposure_ms: PositiveFloat | None = Field(None, description="default: the protocol's")


class BaselineStep(_Step):
    """Film at ambient, camera running: the particles' reference intensities."""

    kind: Literal["baseline"]
    duration_s: PositiveFloat


class SeriesStep(_Step):
    """For each temperature in turn, `cycles` jumps: heat to it, hold, cool, hold.
    (One temperature makes plain heat/cool cycles.)"""

    kind: Literal["series"]
    temperatures_K: list[PositiveFloat] = Field(min_length=1)
    cycles: PositiveInt
    heat_s: PositiveFloat
    cool_s: PositiveFloat
    low_K: PositiveFloat | None = Field(
        None, description="temperature between jumps; default the rig's ambient"
    )


class AblationStep(_Step):
    """Thermal ablation: a long hold far above the transition, then back to low."""

    kind: Literal["ablation"]
    temperature_K: PositiveFloat
    duration_s: PositiveFloat
    cool_s: PositiveFloat = 60.0


class HoldStep(_Step):
    """Hold one temperature (ambient if none) with the camera running."""

    kind: Literal["hold"]
    temperature_K: PositiveFloat | None = None
    duration_s: PositiveFloat


class LightStep(_Step):
    """Open the light-stimulus shutter (a DAQ line) for `duration_s`, camera running."""

    kind: Literal["light"]
    duration_s: PositiveFloat
    temperature_K: PositiveFloat | None = None


class WaitStep(_Strict):
    """Heater at ambient and the camera idle: no frames are taken."""

    kind: Literal["wait"]
    duration_s: PositiveFloat


class RepeatStep(_Strict):
    """Run `steps` `times` times over."""

    kind: Literal["repeat"]
    times: PositiveInt
    steps: list[Step] = Field(min_length=1)


Step = Annotated[
    BaselineStep | SeriesStep | AblationStep | HoldStep | LightStep | WaitStep | RepeatStep,
    Field(discriminator="kind"),
]
RepeatStep.model_rebuild()


class Protocol(_Strict):
    """A whole experiment."""

    name: str = Field(min_length=1)
    description: str = ""
    frame_rate_hz: PositiveFloat = 10.0
    exposure_ms: PositiveFloat | None = Field(
        None, description="camera exposure; default the rig's"
    )
    steps: list[Step] = Field(min_length=1)
