"""The gold-film heater: drive voltage to temperature, with the film's thermal lag."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from tjump.sim.config import ThermalConfig


class FilmThermalModel:
    """Temperature of the heated spot under a piecewise-constant drive.

    Steady state solves dT = R_th V^2 / (R0 (1 + alpha dT)); the approach to it is a sum
    of exponentials (`ThermalConfig.components`), integrated exactly between drive changes.
    """

    def __init__(self, config: ThermalConfig, ambient_K: float, current_limit_A: float) -> None:
        self.config = config
        self.ambient_K = ambient_K
        self.current_limit_A = current_limit_A
        response = config.step_response
        weights = np.array([c.weight for c in response])
        self._weights = weights / weights.sum()
        self._taus = np.array([c.tau_s for c in response])
        self._state = np.zeros(len(self._taus))  # each component's share of dT, in K

    def resistance(self, temperature_K: float | NDArray[np.float64]) -> NDArray[np.float64]:
        """Film resistance at a temperature."""
        c = self.config
        return np.asarray(c.r0_ohm * (1.0 + c.alpha_per_K * (temperature_K - self.ambient_K)))

    def steady_rise(self, drive_V: float) -> float:
        """Steady-state temperature rise for a drive, honouring the supply's current limit."""
        c = self.config
        if drive_V <= 0:
            return 0.0
        k = c.r_th_K_per_W * drive_V**2 / c.r0_ohm
        rise = (-1.0 + math.sqrt(1.0 + 4.0 * c.alpha_per_K * k)) / (2.0 * c.alpha_per_K)
        if drive_V / (c.r0_ohm * (1.0 + c.alpha_per_K * rise)) > self.current_limit_A:
            p = c.r_th_K_per_W * self.current_limit_A**2 * c.r0_ohm
            rise = p / (1.0 - p * c.alpha_per_K)
        return rise

    def film_voltage(
        self, drive_V: float, temperature_K: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Voltage actually across the film: the drive, unless the current limit bites."""
        limit = self.current_limit_A * self.resistance(temperature_K)
        return np.minimum(drive_V, limit)

    def temperature(self) -> float:
        """Current temperature of the heated spot."""
        return float(self.ambient_K + self._state.sum())

    def state(self) -> NDArray[np.float64]:
        """Each component's share of the rise above ambient now (K)."""
        return self._state.copy()

    def mean_rise(
        self, state: NDArray[np.float64], drive_V: float, start_s: float, end_s: float
    ) -> float:
        """Mean rise above ambient over [start_s, end_s] (seconds after `state`) under a
        constant drive (exact: each component relaxes exponentially)."""
        target = self._weights * self.steady_rise(drive_V)
        taus = self._taus
        if end_s - start_s <= 1e-12:
            decay = np.exp(-start_s / taus)
        else:
            decay = taus / (end_s - start_s) * (np.exp(-start_s / taus) - np.exp(-end_s / taus))
        return float((target + (state - target) * decay).sum())

    def advance(self, drive_V: float, dt: NDArray[np.float64]) -> NDArray[np.float64]:
        """Temperatures at times `dt` (increasing, seconds from now) under a constant drive;
        the state moves to the last of them."""
        target = self._weights * self.steady_rise(drive_V)
        decay = np.exp(-dt[:, None] / self._taus[None, :])
        parts = target + (self._state - target) * decay
        self._state = parts[-1].copy()
        return np.asarray(self.ambient_K + parts.sum(axis=1), dtype=np.float64)
