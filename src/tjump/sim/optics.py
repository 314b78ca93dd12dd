"""What the camera sees: particles as pixel-integrated Gaussian PSFs on a dark-field
background, with shot noise, read noise, hot pixels and 14-bit clipping.

Background pixels are drawn by inverse-CDF lookup from the exact distribution of
offset + round((Poisson(background) + Normal(0, read noise)) / gain): one random 16-bit
integer per pixel, several times cheaper than drawing normals. Particle pixels then get
their own Poisson photoelectrons on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf, ndtr
from scipy.stats import poisson

from tjump.sim.config import OpticsConfig, SensorConfig

_PATCH_RADIUS = 3  # pixels each side: 3.9 sigma of the default PSF
_TABLE_BITS = 16


@dataclass(frozen=True)
class Scene:
    """Everything needed to render one frame, computed by the world at the exposure's end."""

    index: int
    time_s: float
    exposure_s: float
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    electrons: NDArray[np.float64]  # total photoelectrons of each particle in this exposure


def background_table(sensor: SensorConfig, exposure_scale: float) -> NDArray[np.uint16]:
    """ADU value for each 16-bit uniform draw: the inverse CDF of a background pixel."""
    mean_e = sensor.background_e * exposure_scale
    g, r = sensor.gain_e_per_adu, max(sensor.read_noise_e, 1e-6)
    n_max = int(mean_e + 12 * np.sqrt(mean_e + 1) + 10)
    electrons = np.arange(n_max + 1)
    p_e = poisson.pmf(electrons, mean_e)
    hi_adu = int((n_max + 8 * r) / g) + 2
    lo_adu = int(-8 * r / g) - 2
    adu = np.arange(lo_adu, hi_adu + 1)
    edges = (adu[:, None] + 0.5) * g - electrons[None, :]
    cdf = (ndtr(edges / r) * p_e[None, :]).sum(axis=1)
    quantiles = (np.arange(2**_TABLE_BITS) + 0.5) / 2**_TABLE_BITS
    values = adu[np.minimum(np.searchsorted(cdf, quantiles), len(adu) - 1)]
    max_adu = 2**sensor.bit_depth - 1
    table: NDArray[np.uint16] = np.clip(values + round(sensor.offset_adu), 0, max_adu).astype(
        np.uint16
    )
    return table


class Flicker:
    """The light source's brightness, the same for every particle: white frame-to-frame
    noise plus a slow random walk back to 1 (Ornstein-Uhlenbeck)."""

    def __init__(self, optics: OpticsConfig, seed: int) -> None:
        self.optics = optics
        self._rng = np.random.default_rng([seed, 5])
        self._slow = 0.0
        self._last_s: float | None = None

    def next(self, time_s: float) -> float:
        """Brightness (around 1) of the exposure ending at `time_s`."""
        o = self.optics
        if o.flicker_rms == 0 and o.flicker_slow_rms == 0:
            return 1.0
        if o.flicker_slow_rms > 0:
            dt = 0.0 if self._last_s is None else max(time_s - self._last_s, 0.0)
            keep = float(np.exp(-dt / o.flicker_slow_s)) if self._last_s is not None else 0.0
            spread = o.flicker_slow_rms * float(np.sqrt(1.0 - keep**2))
            self._slow = keep * self._slow + spread * float(self._rng.normal())
        self._last_s = time_s
        return max(1.0 + self._slow + o.flicker_rms * float(self._rng.normal()), 0.0)


class Renderer:
    """Turns scenes into uint16 frames; owns the camera's noise generator."""

    def __init__(self, sensor: SensorConfig, optics: OpticsConfig, seed: int) -> None:
        self.sensor = sensor
        self._sigma = optics.psf_fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        self._rng = np.random.default_rng([seed, 2])
        self._max_adu = 2**sensor.bit_depth - 1
        self._tables: dict[float, NDArray[np.uint16]] = {}
        hot_rng = np.random.default_rng([seed, 3])
        n_px = sensor.width * sensor.height
        self.hot_pixels = hot_rng.choice(n_px, size=sensor.hot_pixels, replace=False)
        self._hot_values = hot_rng.uniform(0.1, 0.5, sensor.hot_pixels) * self._max_adu
        self._offsets = np.arange(-_PATCH_RADIUS, _PATCH_RADIUS + 1)

    def electrons_per_peak_fraction(self) -> float:
        """Total photoelectrons of a centred particle whose peak pixel is full scale."""
        half = 0.5 / (np.sqrt(2.0) * self._sigma)
        peak_share = float(erf(half)) ** 2
        return float(self._max_adu * self.sensor.gain_e_per_adu / peak_share)

    def _table(self, exposure_s: float) -> NDArray[np.uint16]:
        scale = round(exposure_s * 1e3 / self.sensor.reference_exposure_ms, 6)
        if scale not in self._tables:
            self._tables[scale] = background_table(self.sensor, scale)
        return self._tables[scale]

    def render(self, scene: Scene, out: NDArray[np.uint16]) -> None:
        """Fill `out` (height, width) with the frame for `scene`."""
        flat = out.reshape(-1)
        draws = self._rng.integers(0, 2**_TABLE_BITS, size=flat.size, dtype=np.uint16)
        # 16-bit draws index a 2**16 table: never out of range, so skip the bounds check
        np.take(self._table(scene.exposure_s), draws, out=flat, mode="wrap")
        self._add_particles(scene, flat)
        flat[self.hot_pixels] = np.maximum(flat[self.hot_pixels], self._hot_values)

    def _profiles(
        self, centre: NDArray[np.float64]
    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Pixel indices and pixel-integrated Gaussian weights along one axis."""
        base = np.rint(centre).astype(np.int64)
        pix = base[:, None] + self._offsets[None, :]
        scale = np.sqrt(2.0) * self._sigma
        lo = (pix - 0.5 - centre[:, None]) / scale
        hi = (pix + 0.5 - centre[:, None]) / scale
        return pix, 0.5 * (erf(hi) - erf(lo))

    def _add_particles(self, scene: Scene, flat: NDArray[np.uint16]) -> None:
        """Add each particle's Poisson photoelectrons. Sums of independent Poisson draws
        are Poisson, so overlapping particles need no special care."""
        h, w = self.sensor.height, self.sensor.width
        px, wx = self._profiles(scene.x)
        py, wy = self._profiles(scene.y)
        signal = scene.electrons[:, None, None] * wy[:, :, None] * wx[:, None, :]
        rows = np.broadcast_to(py[:, :, None], signal.shape)
        cols = np.broadcast_to(px[:, None, :], signal.shape)
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        index = (rows * w + cols)[inside]
        adu = np.rint(self._rng.poisson(signal[inside]) / self.sensor.gain_e_per_adu)
        # two full-scale particles on one pixel stay below 2**16: add, then clip
        np.add.at(flat, index, adu.astype(np.uint16))
        flat[index] = np.minimum(flat[index], self._max_adu)
