"""What the camera sees: particles as pixel-integrated Gaussian PSFs on a dark-field
background, with shot noise, read noise, hot pixels and 14-bit clipping.

Background pixels are drawn by inverse-CDF lookup from the exact distribution of
offset + round((Poisson(background) + Normal(0, read noise)) / gain): one random 16-bit
integer per pixel, several times cheaper than drawing normals. Particle pixels then get
their own Poisson photoelectrons on top.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import erf, ndtr
from scipy.stats import poisson

from tjump.sim.config import OpticsConfig, SensorConfig
from tjump.sim.frames import TABLE_BITS, FrameRenderer, Pixels, Scene

__all__ = ["Flicker", "Renderer", "Scene", "background_table"]


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
    quantiles = (np.arange(2**TABLE_BITS) + 0.5) / 2**TABLE_BITS
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
    """Turns scenes into uint16 frames: the background's tables for each exposure, and
    the pixels (`FrameRenderer`), which own the camera's noise generator."""

    def __init__(self, sensor: SensorConfig, optics: OpticsConfig, seed: int) -> None:
        self.sensor = sensor
        self._sigma = optics.psf_fwhm_px / (2.0 * np.sqrt(2.0 * np.log(2.0)))
        self._max_adu = 2**sensor.bit_depth - 1
        self._electrons_per_peak = self._electrons_at_full_peak()  # asked for every frame
        self._tables: dict[float, NDArray[np.uint16]] = {}
        hot_rng = np.random.default_rng([seed, 3])
        n_px = sensor.width * sensor.height
        self.hot_pixels = hot_rng.choice(n_px, size=sensor.hot_pixels, replace=False)
        hot_values = hot_rng.uniform(0.1, 0.5, sensor.hot_pixels) * self._max_adu
        self.pixels = Pixels(
            sensor.height,
            sensor.width,
            self._max_adu,
            sensor.gain_e_per_adu,
            float(self._sigma),
            self.hot_pixels,
            hot_values,
            seed,
        )
        self.frames = FrameRenderer(self.pixels)

    def electrons_per_peak_fraction(self) -> float:
        """Total photoelectrons of a centred particle whose peak pixel is full scale."""
        return self._electrons_per_peak

    def _electrons_at_full_peak(self) -> float:
        half = 0.5 / (np.sqrt(2.0) * self._sigma)
        peak_share = float(erf(half)) ** 2
        return float(self._max_adu * self.sensor.gain_e_per_adu / peak_share)

    def table_key(self, exposure_s: float) -> float:
        """The exposure, relative to the reference one, that names its background table."""
        return round(exposure_s * 1e3 / self.sensor.reference_exposure_ms, 6)

    def table(self, exposure_s: float) -> NDArray[np.uint16]:
        """The background lookup table at `exposure_s`."""
        scale = self.table_key(exposure_s)
        if scale not in self._tables:
            self._tables[scale] = background_table(self.sensor, scale)
        return self._tables[scale]

    def render(self, scene: Scene, out: NDArray[np.uint16]) -> None:
        """Fill `out` (height, width) with the frame for `scene`."""
        self.frames.render(scene, out, self.table(scene.exposure_s))
