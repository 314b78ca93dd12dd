"""Particle size from its initial intensity through a calibration curve (intensity vs size,
as measured against SEM sizes). The file is CSV with a header naming `intensity_adu` and
`size_nm` (lines starting with # are comments); intensities are background-subtracted
aperture sums at the calibration's exposure. Between points the curve is interpolated
linearly in log-log (a power law piece by piece); outside it the size is left empty."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.errors import InputError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class SizeCalibration:
    intensity_adu: FloatArray
    size_nm: FloatArray
    source: str

    def size(self, intensity_adu: FloatArray) -> FloatArray:
        """Sizes (nm) for intensities (ADU); NaN outside the calibrated range."""
        v = np.asarray(intensity_adu, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_v = np.log(v)
        inside = (v >= self.intensity_adu[0]) & (v <= self.intensity_adu[-1])
        sizes = np.exp(np.interp(log_v, np.log(self.intensity_adu), np.log(self.size_nm)))
        return np.asarray(np.where(inside, sizes, np.nan))


def load_size_calibration(path: Path) -> SizeCalibration:
    if not path.is_file():
        raise InputError(f"calibration file not found: {path}")
    try:
        lines = [
            ln
            for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"calibration file {path} cannot be read: {e}") from e
    rows = list(csv.DictReader(lines))
    if not rows or not {"intensity_adu", "size_nm"} <= set(rows[0]):
        raise InputError(f"calibration file {path} needs columns intensity_adu,size_nm")
    try:
        intensity = np.array([float(r["intensity_adu"]) for r in rows])
        size = np.array([float(r["size_nm"]) for r in rows])
    except (TypeError, ValueError) as e:
        raise InputError(f"calibration file {path} holds a value that is not a number") from e
    if len(rows) < 2 or np.any(intensity <= 0) or np.any(size <= 0):
        raise InputError(f"calibration file {path} needs two or more positive points")
    order = np.argsort(intensity)
    intensity, size = intensity[order], size[order]
    if np.any(np.diff(intensity) <= 0) or np.any(np.diff(size) <= 0):
        raise InputError(f"calibration file {path}: size must rise with intensity")
    return SizeCalibration(intensity, size, str(path))
