"""The result of analysing one recording: every value the tables, the figures and the GUI
show, typed. `tjump.analysis.pipeline` computes it; `tables` and `report` only format and
write it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis.detection import Detections
from tjump.analysis.events import Cycle, EventTable
from tjump.analysis.kinetics import ArrheniusFit, AvramiFit, Response
from tjump.analysis.recording import Recording
from tjump.analysis.traces import TraceSet

FloatArray = NDArray[np.float64]


@dataclass
class EnsembleKinetics:
    """One temperature of one series, over all usable particles and cycles."""

    series: int
    temperature_K: float
    hold_s: float
    grid_s: FloatArray  # time since the jump
    remaining: FloatArray  # fraction of particle-cycles not yet switched
    mean_intensity: FloatArray  # ensemble average of the normalised traces
    first_order_k: float
    avrami_switched: AvramiFit | None  # JMAK fit of the switched fraction
    avrami_intensity: AvramiFit | None  # JMAK fit of the ensemble-averaged dimming
    nucleation_rate_per_s: float


@dataclass(frozen=True)
class TemperatureStats:
    """One particle at one temperature of one series, over the cycles used in fits."""

    particle: int
    series: int
    temperature_K: float
    cycles: int
    events: int
    mean_nucleation_s: float  # of the cycles that switched (NaN: none)
    sd_nucleation_s: float  # NaN: fewer than two
    ml_mean_nucleation_s: float  # censored maximum-likelihood mean at the fit's shape
    fit_mean_nucleation_s: float  # 1 / k(T) of the particle's Arrhenius fit (NaN: no fit)
    avrami: AvramiFit | None  # JMAK of the fraction of cycles switched against time


@dataclass(frozen=True)
class Population:
    """The activation energies of one series over the usable particles with one."""

    particles_with_ea: int
    ea_mean_kj_mol: float = float("nan")
    ea_median_kj_mol: float = float("nan")
    ea_sd_kj_mol: float = float("nan")
    ea_mean_without_outliers_kj_mol: float | None = None
    outliers: tuple[int, ...] = ()  # Ea at least twice the mean
    ea_vs_size_slope_kj_mol_per_100nm: float | None = None  # with >= 3 sized particles
    ea_vs_size_correlation: float | None = None


@dataclass
class Analysis:
    """Everything found in one recording: per particle and cycle (events), per particle and
    series (fits), per particle and temperature, per temperature (ensemble) and per series
    (populations, first-order Ea)."""

    recording: Recording
    detections: Detections
    traces: TraceSet
    cycles: list[Cycle]
    common: FloatArray
    events: EventTable
    initial_intensity: FloatArray
    size_nm: FloatArray | None
    fits: dict[int, list[ArrheniusFit]]  # series -> per particle
    ensemble: list[EnsembleKinetics]
    first_order_ea: dict[int, tuple[float, float]]  # series -> (Ea, ln A)
    skip_cycles: int
    response: Response | None = None
    start_K: FloatArray | None = None  # (cycles, components): film state at each jump
    ambient_K: float = 293.0
    timings: dict[str, float] = field(default_factory=dict)
    inert: NDArray[np.bool_] | None = None  # inert reference particles
    thermometry: dict[str, Any] = field(default_factory=dict)
    populations: dict[int, Population] = field(default_factory=dict)  # per series
    per_temperature: list[TemperatureStats] = field(default_factory=list)

    @property
    def series(self) -> list[int]:
        return sorted({c.series for c in self.cycles})

    def used(self, c: Cycle) -> bool:
        return c.cycle > self.skip_cycles

    @property
    def event_count(self) -> int:
        return int(np.isfinite(self.events.nucleation_s).sum())

    @property
    def events_in_fits(self) -> int:
        """Events of usable particles in the cycles used in fits."""
        used = np.array([self.used(c) for c in self.cycles])
        waits = self.events.nucleation_s[self.detections.usable][:, used]
        return int(np.isfinite(waits).sum())

    @property
    def median_step(self) -> float | None:
        step = self.events.step
        return float(np.nanmedian(step)) if np.isfinite(step).any() else None

    @property
    def median_return_s(self) -> float | None:
        back = self.events.return_s
        return float(np.nanmedian(back)) if np.isfinite(back).any() else None

    @property
    def defocus_proxy(self) -> FloatArray:
        """sqrt(1/c - 1) of the common mode c: proportional to the substrate's temperature
        rise for a Lorentzian focus curve."""
        return np.asarray(np.sqrt(np.clip(1.0 / self.common - 1.0, 0.0, None)))

    def temperatures(self, series: int) -> list[float]:
        """The temperatures of a series, coldest first."""
        return sorted({c.temperature_K for c in self.cycles if c.series == series})

    def cycles_at(
        self, series: int, temperature_K: float | None = None, used_only: bool = True
    ) -> list[int]:
        """Indices of the cycles of `series` (at `temperature_K` if given; only those used
        in fits unless `used_only` is False)."""
        return [
            j
            for j, c in enumerate(self.cycles)
            if c.series == series
            and (temperature_K is None or c.temperature_K == temperature_K)
            and (self.used(c) or not used_only)
        ]

    def hold_s(self, chosen: list[int]) -> float:
        """The shortest hold of the chosen cycles (a common censoring time)."""
        return min(self.cycles[j].hold_s for j in chosen)
