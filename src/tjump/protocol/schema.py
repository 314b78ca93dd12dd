"""The protocol file: what to do, step by step, validated before any device is touched."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BaselineStep(_Strict):
    """Film at ambient, camera running: the particles' reference intensities."""

    kind: Literal["baseline"]
    duration_s: PositiveFloat


class SeriesStep(_Strict):
    """For each temperature in turn, `cycles` jumps: heat to it, hold, cool, hold."""

    kind: Literal["series"]
    temperatures_K: list[PositiveFloat] = Field(min_length=1)
    cycles: PositiveInt
    heat_s: PositiveFloat
    cool_s: PositiveFloat
    low_K: PositiveFloat | None = Field(
        None, description="temperature between jumps; default the rig's ambient"
    )


class AblationStep(_Strict):
    """Thermal ablation: a long hold far above the transition, then back to low."""

    kind: Literal["ablation"]
    temperature_K: PositiveFloat
    duration_s: PositiveFloat
    cool_s: PositiveFloat = 60.0


class HoldStep(_Strict):
    """Hold one temperature (ambient for a plain wait) with the camera running."""

    kind: Literal["hold"]
    temperature_K: PositiveFloat | None = None
    duration_s: PositiveFloat


Step = Annotated[BaselineStep | SeriesStep | AblationStep | HoldStep, Field(discriminator="kind")]


class Protocol(_Strict):
    """A whole experiment."""

    name: str = Field(min_length=1)
    description: str = ""
    frame_rate_hz: PositiveFloat = 10.0
    exposure_ms: PositiveFloat | None = Field(
        None, description="camera exposure; default the rig's"
    )
    steps: list[Step] = Field(min_length=1)
