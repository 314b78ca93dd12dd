"""The simulated fast camera: frames at 500 frames/s around a trigger, showing each
particle's growth (the linear LS -> HS ramp of `growth_s`, about 4 ms at 400 nm, scaling
with size) from the simulated sample's own transitions.

A real fast camera records all the time; the simulated one renders a burst only when it
is read, from what the world recorded (the transitions and the particles), which is the
same picture without rendering 500 frames every simulated second. It refuses frames from
before it was armed, as the real one could not have them.
"""

from __future__ import annotations

import time

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from tjump.devices.fastcamera import Burst, Roi
from tjump.errors import CameraTimeout, DeviceError
from tjump.sim.config import SensorConfig
from tjump.sim.optics import Renderer, Scene
from tjump.sim.world import SimWorld

FloatArray = NDArray[np.float64]
_MARGIN_PX = 4.0  # particles this far outside the ROI still spill light into it
_WAIT_S = 0.002


class FastCameraConfig(BaseModel):
    """A high-speed CMOS camera (a MEMRECAM GX-8F-like one) on the same field of view and
    pixel grid as the main camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_rate_hz: PositiveFloat = 500.0
    exposure_ms: PositiveFloat = Field(1.9, description="at most one frame period")
    # photoelectrons per second collected from a particle, relative to the main camera:
    # high-speed work turns the illumination up (the main camera's exposure is set for a
    # dim light that keeps its 14-bit pixels unsaturated at 50 ms); with less light a
    # growth of one or two frames is lost in the shot noise
    light_factor: PositiveFloat = 50.0
    sensor: SensorConfig = SensorConfig(
        bit_depth=14,
        offset_adu=64.0,
        gain_e_per_adu=8.0,
        read_noise_e=10.0,
        background_e=2.0,
        reference_exposure_ms=1.9,
        hot_pixels=0,
    )


def ramp_area(u: FloatArray, growth_s: FloatArray) -> FloatArray:
    """Integral over time of a 0 -> 1 linear ramp of duration `growth_s` starting at 0."""
    g = growth_s
    return np.asarray(np.where(u <= 0, 0.0, np.where(u < g, u * u / (2 * g), u - g / 2)))


class SimFastCamera:
    """Renders bursts around its triggers from the simulated world's truth."""

    def __init__(self, world: SimWorld, config: FastCameraConfig | None = None) -> None:
        self.world = world
        self.config = config or FastCameraConfig()
        self.name = "fast camera (simulated)"
        if self.config.exposure_ms > 1e3 / self.config.frame_rate_hz:
            raise DeviceError(self.name, "exposure is longer than one frame period")
        self._armed_at: float | None = None
        self._pre = self._post = 0.0
        self._trigger_s: float | None = None
        self._bursts = 0

    @property
    def frame_rate_hz(self) -> float:
        return self.config.frame_rate_hz

    def arm(self, pre_s: float, post_s: float) -> None:
        self._armed_at = self.world.clock.now()
        self._pre, self._post = pre_s, post_s

    def trigger(self) -> None:
        if self._armed_at is None:
            raise DeviceError(self.name, "triggered before it was armed")
        self._trigger_s = self.world.clock.now()

    def read_burst(self, roi: Roi, timeout_s: float) -> Burst:
        at, armed = self._trigger_s, self._armed_at
        if at is None or armed is None:
            raise DeviceError(self.name, "a burst was asked for before any trigger")
        rate, exposure = self.config.frame_rate_hz, self.config.exposure_ms / 1e3
        offsets = np.arange(-round(self._pre * rate), round(self._post * rate)) / rate
        offsets = offsets[at + offsets >= armed]
        deadline = time.monotonic() + timeout_s
        while self.world.clock.now() < at + offsets[-1] + exposure:
            if time.monotonic() > deadline:
                raise CameraTimeout(self.name, f"the burst did not end within {timeout_s:g} s")
            time.sleep(_WAIT_S)
        self._trigger_s = None
        self._bursts += 1
        frames = self._render(at + offsets, exposure, roi)
        return Burst(frames, offsets, exposure, rate, roi)

    def close(self) -> None:
        """Nothing to let go of: the simulated camera renders on demand."""
        self._armed_at = None

    def _render(self, starts: FloatArray, exposure: float, roi: Roi) -> NDArray[np.uint16]:
        world, cfg = self.world, self.config
        p = world.particles
        near = np.flatnonzero(
            (p.x > roi.x0 - _MARGIN_PX)
            & (p.x < roi.x0 + roi.width + _MARGIN_PX)
            & (p.y > roi.y0 - _MARGIN_PX)
            & (p.y < roi.y0 + roi.height + _MARGIN_PX)
        )
        main = world.config.sensor
        per_s = (
            p.peak_fraction[near]
            * world.renderer.electrons_per_peak_fraction()
            / (main.reference_exposure_ms / 1e3)
            * cfg.light_factor
            * (1.0 - world.kinetics.ablation()[near] * world.config.sample.ablation.dimming)
        )
        hs = self._high_spin(near, starts, exposure)  # (frames, particles)
        electrons = per_s[None, :] * exposure * (1.0 - p.hs_dimming[near][None, :] * hs)
        sensor = cfg.sensor.model_copy(update={"width": roi.width, "height": roi.height})
        renderer = Renderer(sensor, world.config.optics, world.config.seed * 7919 + self._bursts)
        out = np.empty((len(starts), roi.height, roi.width), dtype=np.uint16)
        for k, start in enumerate(starts):
            scene = Scene(
                k, float(start), exposure, p.x[near] - roi.x0, p.y[near] - roi.y0, electrons[k]
            )
            renderer.render(scene, out[k])
        return out

    def _high_spin(self, particles: NDArray[np.intp], starts: FloatArray, e: float) -> FloatArray:
        """Each particle's high-spin fraction averaged over each exposure, from every
        transition the world made: +1 ramps up, -1 ramps down."""
        hs = np.zeros((len(starts), len(particles)))
        growth = self.world.particles.growth_s
        column = {int(i): j for j, i in enumerate(particles)}
        for tr in self.world.transitions:
            j = column.get(tr.particle)
            if j is None:
                continue
            g = np.full(len(starts), growth[tr.particle])
            mean = (ramp_area(starts + e - tr.time_s, g) - ramp_area(starts - tr.time_s, g)) / e
            hs[:, j] += mean if tr.to_high_spin else -mean
        return hs
