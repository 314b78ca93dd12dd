"""The rig file: which devices, their settings, the heater calibration and the limits that
no protocol or control may cross."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from tjump.files import load_yaml, validate
from tjump.sim.config import SimConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeAboveLimit(_Strict):
    """At most `seconds` in one go above `temperature_K`."""

    temperature_K: PositiveFloat
    seconds: PositiveFloat


class Limits(_Strict):
    """Hard limits of the rig. The sequencer and the heater both enforce them."""

    max_temperature_K: PositiveFloat
    max_drive_V: PositiveFloat
    max_current_A: PositiveFloat
    max_time_above: TimeAboveLimit


class CameraSettings(_Strict):
    exposure_ms: PositiveFloat = 50.0
    max_frame_rate_hz: PositiveFloat = 200.0
    pixel_size_um: PositiveFloat = 0.37


class DaqSettings(_Strict):
    sample_rate_hz: PositiveFloat = 200.0


class RigConfig(_Strict):
    """A whole rig as described by its YAML file."""

    name: str
    description: str = ""
    kind: Literal["simulated"]
    ambient_K: PositiveFloat = 293.0
    calibration: Path = Field(description="CSV of temperature_K,drive_V (relative to the rig file)")
    limits: Limits
    camera: CameraSettings = CameraSettings()
    daq: DaqSettings = DaqSettings()
    simulation: SimConfig = SimConfig()


def load_rig(path: Path) -> RigConfig:
    """Read and check a rig file; relative paths in it are taken from its folder."""
    data = load_yaml(path, "rig")
    rig = validate(RigConfig, data, f"rig file {path}")
    calibration = (
        rig.calibration if rig.calibration.is_absolute() else path.parent / rig.calibration
    )
    return rig.model_copy(update={"calibration": calibration.resolve()})
