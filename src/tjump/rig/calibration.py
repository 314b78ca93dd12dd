"""Heater calibration: which drive voltage gives which steady temperature.

T(V) is monotonic but not linear (the film's resistance rises with temperature), so the
calibration is a measured table, interpolated."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.errors import InputError


@dataclass(frozen=True)
class HeaterCalibration:
    temperature_K: NDArray[np.float64]
    drive_V: NDArray[np.float64]
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.temperature_K) < 2:
            raise InputError(f"heater calibration {self.source} needs at least two points")
        if np.any(np.diff(self.temperature_K) <= 0) or np.any(np.diff(self.drive_V) < 0):
            raise InputError(f"heater calibration {self.source} must rise in temperature and drive")

    @property
    def range_K(self) -> tuple[float, float]:
        return float(self.temperature_K[0]), float(self.temperature_K[-1])

    def drive_for(self, temperature_K: float) -> float:
        """Drive voltage that holds `temperature_K` at steady state."""
        lo, hi = self.range_K
        if not lo <= temperature_K <= hi:
            raise InputError(
                f"{temperature_K} K is outside the heater calibration ({lo}-{hi} K, {self.source})"
            )
        return float(np.interp(temperature_K, self.temperature_K, self.drive_V))


def load_calibration(path: Path) -> HeaterCalibration:
    """Read a `temperature_K,drive_V` CSV."""
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        temps = np.array([float(r["temperature_K"]) for r in rows])
        volts = np.array([float(r["drive_V"]) for r in rows])
    except FileNotFoundError as e:
        raise InputError(f"heater calibration file not found: {path}") from e
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(
            f"heater calibration {path} must be a CSV with columns temperature_K,drive_V"
        ) from e
    return HeaterCalibration(temps, volts, str(path))
