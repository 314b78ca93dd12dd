"""Scenes to frames: the simulated camera's pixels, with numpy only (no scipy: it takes
seconds to import on a loaded machine), so the same code renders in the application's
process or starts quickly in a process of its own
(`tjump.sim.render_process`). The background's lookup tables come from
`tjump.sim.optics`, which knows the sensor's noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

PATCH_RADIUS = 3  # pixels each side: 3.9 sigma of the default PSF
TABLE_BITS = 16
_ERF_X = np.linspace(-7.0, 7.0, 2**14 + 1)  # steps of 8.5e-4: erf within 1e-7 between
_ERF_Y = np.array([math.erf(x) for x in _ERF_X.tolist()])


def erf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """The error function, interpolated in a table (within 1e-7; +-1 beyond +-7)."""
    return np.asarray(np.interp(x, _ERF_X, _ERF_Y), dtype=np.float64)


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one frame, computed by the world at the exposure's end."""

    index: int
    time_s: float
    exposure_s: float
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    electrons: NDArray[np.float64]  # total photoelectrons of each particle in this exposure


@dataclass(frozen=True)
class Pixels:
    """What rendering needs to know of the sensor and the optics."""

    height: int
    width: int
    max_adu: int
    gain_e_per_adu: float
    sigma_px: float  # the PSF's standard deviation
    hot_pixels: NDArray[np.int64]  # flat indices
    hot_values: NDArray[np.float64]
    seed: int


class FrameRenderer:
    """Fills frames from scenes; owns the camera's noise generator, so frames rendered in
    the same order are the same wherever they are rendered."""

    def __init__(self, pixels: Pixels) -> None:
        self.pixels = pixels
        self._rng = np.random.default_rng([pixels.seed, 2])
        self._offsets = np.arange(-PATCH_RADIUS, PATCH_RADIUS + 1)

    def render(self, scene: Scene, out: NDArray[np.uint16], table: NDArray[np.uint16]) -> None:
        """Fill `out` (height, width) with the frame for `scene`; `table` maps a 16-bit
        uniform draw to a background pixel at this exposure."""
        p = self.pixels
        flat = out.reshape(-1)
        draws = self._rng.integers(0, 2**TABLE_BITS, size=flat.size, dtype=np.uint16)
        # 16-bit draws index a 2**16 table: never out of range, so skip the bounds check
        np.take(table, draws, out=flat, mode="wrap")
        self._add_particles(scene, flat)
        flat[p.hot_pixels] = np.maximum(flat[p.hot_pixels], p.hot_values)

    def _profiles(
        self, centre: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Pixel indices and pixel-integrated Gaussian weights along one axis."""
        base = np.rint(centre).astype(np.int64)
        pix = base[:, None] + self._offsets[None, :]
        scale = np.sqrt(2.0) * self.pixels.sigma_px
        lo = (pix - 0.5 - centre[:, None]) / scale
        hi = (pix + 0.5 - centre[:, None]) / scale
        return pix, 0.5 * (erf(hi) - erf(lo))

    def _add_particles(self, scene: Scene, flat: NDArray[np.uint16]) -> None:
        """Add each particle's Poisson photoelectrons. Sums of independent Poisson draws
        are Poisson, so overlapping particles need no special care."""
        p = self.pixels
        h, w = p.height, p.width
        px, wx = self._profiles(scene.x)
        py, wy = self._profiles(scene.y)
        signal = scene.electrons[:, None, None] * wy[:, :, None] * wx[:, None, :]
        rows = np.broadcast_to(py[:, :, None], signal.shape)
        cols = np.broadcast_to(px[:, None, :], signal.shape)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        index = (rows * w + cols)[inside]
        adu = np.rint(self._rng.poisson(signal[inside]) / p.gain_e_per_adu)
        # two full-scale particles on one pixel stay below 2**16: add, then clip
        np.add.at(flat, index, adu.astype(np.uint16))
        flat[index] = np.minimum(flat[index], p.max_adu)
