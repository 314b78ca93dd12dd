"""Heater calibration: which drive voltage gives which steady temperature.

T(V) is monotonic but not linear (the film's resistance rises with temperature), so the
calibration is a measured table, interpolated."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.errors import InputError
from tjump.files import read_text

MAX_BYTES = 1_000_000
MAX_POINTS = 10_000
TEMPERATURE_RANGE_K = (1.0, 1_000.0)
DRIVE_RANGE_V = (0.0, 210.0)


@dataclass(frozen=True)
class HeaterCalibration:
    temperature_K: NDArray[np.float64]
    drive_V: NDArray[np.float64]
    source: str = ""

    def __post_init__(self) -> None:
        where = f"heater calibration {self.source}"
        if len(self.temperature_K) < 2:
            raise InputError(f"{where} needs at least two points")
        if len(self.temperature_K) > MAX_POINTS:
            raise InputError(f"{where} has {len(self.temperature_K)} points; at most {MAX_POINTS}")
        for name, values, (lo, hi) in (
            ("temperature_K", self.temperature_K, TEMPERATURE_RANGE_K),
            ("drive_V", self.drive_V, DRIVE_RANGE_V),
        ):
            if not np.all(np.isfinite(values)) or np.any(values < lo) or np.any(values > hi):
                raise InputError(f"{where}: every {name} must be a finite number in {lo:g}-{hi:g}")
        if np.any(np.diff(self.temperature_K) <= 0) or np.any(np.diff(self.drive_V) < 0):
            raise InputError(f"{where} must rise in temperature and drive")
        if self.drive_V[-1] <= self.drive_V[0]:
            raise InputError(f"{where}: drive_V never rises, so no temperature can be reached")

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
    """Read a `temperature_K,drive_V` CSV (at most MAX_BYTES, MAX_POINTS rows)."""
    text = read_text(path, "heater calibration", MAX_BYTES)
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        if len(rows) > MAX_POINTS:
            raise InputError(
                f"heater calibration {path} has {len(rows)} points; at most {MAX_POINTS}"
            )
        temps = np.array([float(r["temperature_K"]) for r in rows])
        volts = np.array([float(r["drive_V"]) for r in rows])
    except (KeyError, ValueError, TypeError, csv.Error) as e:
        raise InputError(
            f"heater calibration {path} must be a CSV with columns temperature_K,drive_V "
            f"holding numbers ({e})"
        ) from e
    return HeaterCalibration(temps, volts, str(path))
