"""The heater film's measured behaviour: its resistance against temperature (a second
thermometer, read through V/I) and its step response (how far behind the setpoint the
film is). `tjump calibrate` measures both and writes them to the file a rig's
`heater_model` names; a rig may also give them inline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from tjump.files import load_yaml, validate

FloatArray = NDArray[np.float64]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThermalComponent(_Strict):
    """One exponential of the film's step response: `weight` of the step, reached with
    time constant `tau_s`."""

    weight: float = Field(gt=0, le=1)
    tau_s: PositiveFloat


class FilmResistance(_Strict):
    """R(T) = R0 (1 + alpha (T - T0)): the film's resistance is a thermometer."""

    r0_ohm: PositiveFloat = Field(description="film resistance at t0_K")
    alpha_per_K: PositiveFloat = Field(description="temperature coefficient of resistance")
    t0_K: PositiveFloat = Field(293.0, description="temperature at which R = R0")

    def temperature_K(self, drive_V: FloatArray, current_A: FloatArray) -> FloatArray:
        """Film temperature from drive and current; NaN where the drive is off (no V/I)."""
        v = np.asarray(drive_V, dtype=np.float64)
        i = np.asarray(current_A, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = self.t0_K + (v / i / self.r0_ohm - 1.0) / self.alpha_per_K
        return np.asarray(np.where((np.abs(v) > 0.01) & (np.abs(i) > 1e-5), t, np.nan))


class HeaterModel(_Strict):
    """What `tjump calibrate` measured on a rig."""

    film_resistance: FilmResistance
    step_response: tuple[ThermalComponent, ...] = Field(min_length=1)
    step_response_source: str = Field("", description="which thermometer measured it")
    notes: dict[str, float] = Field(
        default_factory=dict, description="uncertainties and checks of the measurement"
    )


def load_heater_model(path: Path) -> HeaterModel:
    """Read a heater model file; one clear message naming every bad field."""
    return validate(HeaterModel, load_yaml(path, "heater model"), f"heater model file {path}")


def write_heater_model(path: Path, model: HeaterModel) -> None:
    """Write `model` as YAML (through a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))
    tmp.replace(path)
