"""Finding particles in a (baseline) image: bright, PSF-sized spots above the noise.

A spot is a local maximum of the image smoothed with the PSF, standing `threshold_sigma`
robust standard deviations above the local background. Hot pixels, which are as bright
but one pixel wide, are told apart by their neighbours (a PSF shares about half its peak
with each neighbour, a hot pixel almost nothing) and replaced by the median of their
neighbours before smoothing, so a hot pixel beside a particle neither hides it nor pulls
its centre. Positions are refined to sub-pixel by a background-subtracted centroid. Spots
near the edge or near each other are flagged, not merged or dropped, so the user sees them.
Two particles 5 px apart or more are found as two (7 px is a close pair on a real sample)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

FloatArray = NDArray[np.float64]

EDGE = 1  # flag: aperture would cross the image edge
CROWDED = 2  # flag: another particle closer than `min_separation_px`


@dataclass(frozen=True)
class Detections:
    """Particles found in one image; index = particle id."""

    x: FloatArray  # column, pixels
    y: FloatArray  # row, pixels
    peak: FloatArray  # background-subtracted peak of the smoothed image (ADU)
    flags: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.x)

    @property
    def usable(self) -> NDArray[np.bool_]:
        return np.asarray(self.flags == 0)


def detect_particles(
    image: NDArray[np.generic],
    psf_sigma_px: float = 0.76,
    threshold_sigma: float = 8.0,
    edge_px: int = 6,
    min_separation_px: float = 6.0,
) -> Detections:
    """Particles in `image` (2-D, any numeric type), brightest first."""
    img = np.asarray(image, dtype=np.float64)
    background = _background(img)
    signal = _without_hot_pixels(img - background)
    smooth = ndimage.gaussian_filter(signal, psf_sigma_px)
    noise = 1.4826 * np.median(np.abs(smooth - np.median(smooth)))
    noise = max(float(noise), 1e-9)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=5)) & (smooth > threshold_sigma * noise)
    rows, cols = np.nonzero(peaks)
    x, y = _centroids(signal, rows, cols)
    order = np.argsort(-smooth[rows, cols])
    x, y, peak = x[order], y[order], smooth[rows, cols][order]
    flags = np.zeros(len(x), dtype=np.int64)
    h, w = img.shape
    flags[(x < edge_px) | (y < edge_px) | (x > w - 1 - edge_px) | (y > h - 1 - edge_px)] |= EDGE
    if len(x) > 1:
        distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
        np.fill_diagonal(distance, np.inf)
        flags[distance.min(axis=1) < min_separation_px] |= CROWDED
    return Detections(x, y, peak, flags)


def _background(img: FloatArray, size: int = 15, step: int = 2) -> FloatArray:
    """The local background: a `size`-pixel running median, taken on every `step`-th
    pixel and spread back (50 times faster than on every pixel at 640 x 480, and the
    dark-field background varies slowly)."""
    small = ndimage.median_filter(img[::step, ::step], size=size // step)
    spread = np.repeat(np.repeat(small, step, axis=0), step, axis=1)
    return np.asarray(spread[: img.shape[0], : img.shape[1]])


def _without_hot_pixels(signal: FloatArray) -> FloatArray:
    """`signal` with every hot pixel (a pixel well above the noise whose 4-neighbours carry
    less than a fifth of its value on average, where a PSF's carry about half) replaced by
    the median of its 8 neighbours."""
    padded = np.pad(signal, 1, mode="constant")
    neighbours = (padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]) / 4
    noise = 1.4826 * float(np.median(np.abs(signal - np.median(signal)))) + 1e-9
    hot = (signal > 8.0 * noise) & (neighbours < 0.2 * signal)
    if not hot.any():
        return signal
    ring = np.ones((3, 3), dtype=bool)
    ring[1, 1] = False
    cleaned = signal.copy()
    cleaned[hot] = ndimage.median_filter(signal, footprint=ring, mode="nearest")[hot]
    return cleaned


def _centroids(
    signal: FloatArray, rows: NDArray[np.intp], cols: NDArray[np.intp], half: int = 2
) -> tuple[FloatArray, FloatArray]:
    """Intensity-weighted centre of the positive signal in a (2 half + 1)^2 box."""
    padded = np.pad(signal, half, mode="constant")
    offsets = np.arange(-half, half + 1)
    r = rows[:, None, None] + half + offsets[None, :, None]
    c = cols[:, None, None] + half + offsets[None, None, :]
    box = np.clip(padded[r, c], 0.0, None)
    total = box.sum(axis=(1, 2))
    total[total == 0] = 1.0
    dy = (box.sum(axis=2) * offsets[None, :]).sum(axis=1) / total
    dx = (box.sum(axis=1) * offsets[None, :]).sum(axis=1) / total
    return cols + dx, rows + dy
