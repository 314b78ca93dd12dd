"""The sample: spin-crossover nanoparticles with their own kinetics, and inert references.

Nucleation is a race against a random threshold: each particle accumulates the integral of
its Arrhenius rate k(T) = A exp(-Ea / RT) at its actual (lagging) temperature, and switches
LS -> HS when the integral passes a Gamma-distributed threshold of mean 1. At constant T the
waiting time has mean 1/k and a coefficient of variation 1/sqrt(shape): roughly Gaussian
histograms that narrow as T rises, as published. Below its reverse temperature a particle
returns to LS and its accumulated progress is lost, so each heating cycle starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tjump.sim.config import SampleConfig

R_KJ_PER_MOL_K = 8.314462618e-3
_NO_TRANSITION = -1.0e6  # seconds: long before any run

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Particles:
    """Fixed properties of every particle; index = particle id."""

    x: FloatArray
    y: FloatArray
    size_nm: FloatArray
    is_reference: NDArray[np.bool_]
    peak_fraction: FloatArray
    ea_kj_mol: FloatArray
    ln_prefactor: FloatArray
    ablated_ea_kj_mol: FloatArray
    ablated_ln_prefactor: FloatArray
    hs_dimming: FloatArray
    growth_s: FloatArray
    reverse_K: FloatArray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Transition:
    """One spin transition, as the simulator made it happen."""

    particle: int
    time_s: float
    to_high_spin: bool
    temperature_K: float


def place(
    n: int, width: int, height: int, margin: float, separation: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Random positions at least `separation` apart and `margin` from the edges."""
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(200 * n):
        if len(xs) == n:
            break
        x = rng.uniform(margin, width - 1 - margin)
        y = rng.uniform(margin, height - 1 - margin)
        if all((x - a) ** 2 + (y - b) ** 2 >= separation**2 for a, b in zip(xs, ys, strict=True)):
            xs.append(x)
            ys.append(y)
    if len(xs) < n:
        raise ValueError(
            f"cannot place {n} particles {separation} px apart on a {width} x {height} sensor"
        )
    return np.array(xs), np.array(ys)


def pair_up(
    x: FloatArray,
    y: FloatArray,
    pairs: int,
    separation: tuple[float, float],
    width: int,
    height: int,
    margin: float,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Move `pairs` particles next to others: each sits at a distance drawn from
    `separation` from a partner, further than that from every other particle, at least
    `margin` from the edges. The particles are then shuffled, so a pair's members are of any
    kind and size."""
    x, y = x.copy(), y.copy()
    n = len(x)
    order = rng.permutation(n)
    movers, partners = order[:pairs], order[pairs : 2 * pairs]
    for mover, partner in zip(movers, partners, strict=True):
        for _ in range(500):
            d = rng.uniform(*separation)
            angle = rng.uniform(0.0, 2.0 * np.pi)
            px, py = x[partner] + d * np.cos(angle), y[partner] + d * np.sin(angle)
            inside = margin <= px <= width - 1 - margin and margin <= py <= height - 1 - margin
            others = np.hypot(x - px, y - py)
            others[[mover, partner]] = np.inf
            if inside and others.min() >= max(separation[1], d + 1.0):
                x[mover], y[mover] = px, py
                break
        else:
            raise ValueError(f"cannot place {pairs} close pairs on a {width} x {height} sensor")
    shuffle = rng.permutation(n)
    return x[shuffle], y[shuffle]


def make_particles(config: SampleConfig, width: int, height: int, seed: int) -> Particles:
    """Draw a sample: SCO particles first, then the references; `close_pairs` of them
    beside another (drawn from their own random stream: a sample without pairs is the same
    as before pairs existed)."""
    rng = np.random.default_rng([seed, 0])
    n_sco, n_ref = config.particles, config.references
    n = n_sco + n_ref
    x, y = place(n, width, height, config.edge_margin_px, config.min_separation_px, rng)
    if config.close_pairs:
        x, y = pair_up(
            x,
            y,
            config.close_pairs,
            config.pair_separation_px,
            width,
            height,
            config.edge_margin_px,
            np.random.default_rng([seed, 6]),
        )
    is_ref = np.arange(n) >= n_sco

    size = rng.uniform(*config.size_nm, n)
    ea_cfg = config.ea
    slope = (ea_cfg.at_500nm_kj_mol - ea_cfg.at_100nm_kj_mol) / 400.0
    ea = (ea_cfg.at_100nm_kj_mol + slope * (size - 100.0)) * np.exp(
        rng.normal(0.0, ea_cfg.scatter, n)
    )
    outlier = rng.random(n) < ea_cfg.outlier_fraction
    ea = np.where(outlier, ea * ea_cfg.outlier_factor, ea)
    tau_ref = config.tau_reference_s * np.exp(rng.normal(0.0, config.tau_log_sigma, n))
    t_ref = config.tau_reference_K
    ln_a = np.log(1.0 / tau_ref) + ea / (R_KJ_PER_MOL_K * t_ref)

    abl = config.ablation
    ea_abl = abl.ea_kj_mol * np.exp(rng.normal(0.0, abl.ea_scatter, n))
    ln_k_ref = ln_a - ea / (R_KJ_PER_MOL_K * t_ref)
    ln_a_abl = ln_k_ref + ea_abl / (R_KJ_PER_MOL_K * (t_ref - abl.transition_shift_K))

    peak = config.peak_fraction_at_100nm * (size / 100.0) ** config.brightness_exponent
    peak = np.where(is_ref, rng.uniform(*config.reference_peak_fraction, n), peak)
    return Particles(
        x=x,
        y=y,
        size_nm=np.where(is_ref, np.nan, size),
        is_reference=is_ref,
        peak_fraction=peak,
        ea_kj_mol=np.where(is_ref, np.nan, ea),
        ln_prefactor=np.where(is_ref, np.nan, ln_a),
        ablated_ea_kj_mol=np.where(is_ref, np.nan, ea_abl),
        ablated_ln_prefactor=np.where(is_ref, np.nan, ln_a_abl),
        hs_dimming=np.where(is_ref, 0.0, rng.uniform(*config.hs_dimming, n)),
        growth_s=config.growth_ms_at_400nm * 1e-3 * np.nan_to_num(size, nan=400.0) / 400.0,
        reverse_K=rng.uniform(*config.reverse_K, n),
    )


class SampleKinetics:
    """The evolving state of every particle: spin state, nucleation progress, ablation."""

    def __init__(self, particles: Particles, config: SampleConfig, seed: int) -> None:
        self.particles = particles
        self.config = config
        n = len(particles)
        self._rngs = [np.random.default_rng([seed, 1, i]) for i in range(n)]
        self.high_spin = np.zeros(n, dtype=bool)
        self.progress = np.zeros(n)
        self.threshold = np.array([self._draw_threshold(i) for i in range(n)])
        self.ablation_dose_s = np.zeros(n)
        self._changed_at = np.full(n, _NO_TRANSITION)
        self._changed_to = np.zeros(n)
        self._sco = np.flatnonzero(~particles.is_reference)

    def _draw_threshold(self, i: int) -> float:
        shape = self.config.waiting_time_shape
        return float(self._rngs[i].gamma(shape, 1.0 / shape))

    def ablation(self) -> FloatArray:
        """Fraction of the way each particle is to its ablated state (0 to 1)."""
        return np.asarray(
            1.0 - np.exp(-self.ablation_dose_s / self.config.ablation.time_constant_s)
        )

    def kinetic_parameters(self) -> tuple[FloatArray, FloatArray]:
        """Current (Ea in kJ/mol, ln prefactor), moved towards the ablated values."""
        a = self.ablation()
        p = self.particles
        ea = (1 - a) * p.ea_kj_mol + a * p.ablated_ea_kj_mol
        ln_a = (1 - a) * p.ln_prefactor + a * p.ablated_ln_prefactor
        return ea, ln_a

    def advance(
        self, times: FloatArray, temps: FloatArray, dt: float, temp_before: float
    ) -> list[Transition]:
        """Move every particle through ticks ending at `times` with temperatures `temps`
        (`temp_before`: the temperature when the first tick began)."""
        sco = self._sco
        cold = temps[None, :] < self.particles.reverse_K[sco, None]
        if cold.all() and not self.high_spin.any():  # nothing can switch: only forget
            self._end_blocks(sco, np.zeros(len(sco)), np.ones(len(sco), dtype=bool))
            return []
        ea, ln_a = (values[sco] for values in self.kinetic_parameters())
        ln_rate = ln_a[:, None] - ea[:, None] / (R_KJ_PER_MOL_K * temps[None, :])
        increments = np.where(cold, 0.0, np.exp(np.minimum(ln_rate, 50.0)) * dt)
        transitions = self._switch(sco, increments, cold, times, temps, dt, temp_before)
        self.ablation_dose_s[sco] += np.count_nonzero(temps > self.config.ablation.onset_K) * dt
        return transitions

    def _switch(
        self,
        sco: NDArray[np.intp],
        increments: FloatArray,
        cold: NDArray[np.bool_],
        times: FloatArray,
        temps: FloatArray,
        dt: float,
        temp_before: float,
    ) -> list[Transition]:
        """Find and apply each particle's transitions within the ticks, in order."""
        n_ticks = len(times)
        ticks = np.arange(n_ticks)
        start = np.zeros(len(sco), dtype=int)
        pending = np.ones(len(sco), dtype=bool)
        transitions: list[Transition] = []
        while pending.any():
            active = ticks[None, :] >= start[:, None]
            reset = cold & active
            cum = np.cumsum(np.where(active, increments, 0.0), axis=1)
            last_reset = np.maximum.accumulate(np.where(reset, ticks[None, :], -1), axis=1)
            at_reset = np.take_along_axis(cum, np.maximum(last_reset, 0), axis=1)
            progress = self.progress[sco]
            prog = np.where(last_reset >= 0, cum - at_reset, progress[:, None] + cum)
            high = self.high_spin[sco][:, None]
            up = ~high & (prog >= self.threshold[sco][:, None]) & active
            event = (up | (high & reset)) & pending[:, None]
            has_event = event.any(axis=1)
            first = np.argmax(event, axis=1)
            ended = np.flatnonzero(pending & ~has_event)
            self._end_blocks(sco[ended], prog[ended, -1], np.any(reset[ended], axis=1))
            for j in np.flatnonzero(has_event):
                i, k = int(sco[j]), int(first[j])
                if self.high_spin[i]:
                    transitions.append(self._switch_down(i, k, times, temps, dt, temp_before))
                else:
                    before = prog[j, k - 1] if k > start[j] else progress[j]
                    transitions.append(self._switch_up(i, k, before, prog[j, k], times, temps, dt))
                start[j] = k + 1
            pending = has_event & (start < n_ticks)
        return transitions

    def _end_blocks(
        self, ids: NDArray[np.intp], progress: FloatArray, was_reset: NDArray[np.bool_]
    ) -> None:
        """Particles `ids` went through the block without switching: a reset (cold) one
        with progress draws a new threshold, the others keep their `progress`."""
        for i in ids[was_reset & (self.progress[ids] > 0)]:
            self.threshold[i] = self._draw_threshold(int(i))
        self.progress[ids] = np.where(self.high_spin[ids], 0.0, progress)

    def _switch_up(
        self,
        i: int,
        k: int,
        before: float,
        after: float,
        times: FloatArray,
        temps: FloatArray,
        dt: float,
    ) -> Transition:
        frac = (self.threshold[i] - before) / (after - before) if after > before else 1.0
        t = float(times[k] - dt + dt * min(max(frac, 0.0), 1.0))
        self.high_spin[i] = True
        self.progress[i] = 0.0
        self.threshold[i] = self._draw_threshold(i)
        self._changed_at[i], self._changed_to[i] = t, 1.0
        return Transition(i, t, True, float(temps[k]))

    def _switch_down(
        self,
        i: int,
        k: int,
        times: FloatArray,
        temps: FloatArray,
        dt: float,
        temp_before: float,
    ) -> Transition:
        t_rev = self.particles.reverse_K[i]
        prev = temps[k - 1] if k > 0 else temp_before
        frac = (prev - t_rev) / (prev - temps[k]) if prev > temps[k] else 1.0
        t = float(times[k] - dt + dt * min(max(frac, 0.0), 1.0))
        self.high_spin[i] = False
        self.progress[i] = 0.0
        self._changed_at[i], self._changed_to[i] = t, 0.0
        return Transition(i, t, False, float(temps[k]))

    def mean_high_spin(self, start: float | FloatArray, end: float | FloatArray) -> FloatArray:
        """Fraction of HS in each particle averaged over [start, end] (an exposure; with
        columns of starts and ends, one row per exposure).

        Growth is a linear ramp over `growth_s` from the last transition."""
        g = self.particles.growth_s
        to = self._changed_to

        def ramp_area(t: float | FloatArray) -> FloatArray:
            u = t - self._changed_at
            return np.asarray(np.where(u <= 0, 0.0, np.where(u < g, u * u / (2 * g), u - g / 2)))

        mean_ramp = (ramp_area(end) - ramp_area(start)) / (end - start)
        # before the last change the particle was in the opposite state
        return np.asarray((1.0 - to) + (2.0 * to - 1.0) * mean_ramp)
