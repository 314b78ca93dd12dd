"""The stop rule of an adaptive series: has every particle's mean nucleation time at this
temperature been measured to the stated relative precision yet?

The estimate is the analysis' own (`kinetics.censored_mean`: Gamma waiting times of a
fixed shape m, a cycle without a nucleation censored at its own hold). Its precision is
the observed information of ln(mean) at that estimate: with t the events, h the holds of
the censored cycles, mu the mean and x = m h / mu,

    I = sum over events of m t / mu  +  sum over censored of x L (m - x + x L),

where L = gamma pdf / survival of x (shape m, scale 1). The standard error of ln(mean) is
1 / sqrt(I), which is also the relative standard error of the mean. Without censoring it
is 1 / sqrt(m n) for n events, the familiar result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from tjump.analysis.kinetics import censored_mean
from tjump.protocol.schema import MAX_LEVERAGE_SCALE

FloatArray = NDArray[np.float64]


def relative_precision(waiting_s: FloatArray, hold_s: FloatArray, shape: float) -> float:
    """Relative standard error of one particle's censored mean waiting time over its
    cycles (`waiting_s` NaN where it did not switch within `hold_s`); NaN without any
    nucleation (no mean to know)."""
    t = np.asarray(waiting_s, dtype=np.float64)
    hold = np.broadcast_to(np.asarray(hold_s, dtype=np.float64), t.shape)
    mean = censored_mean(t, hold, shape)
    if not math.isfinite(mean):
        return float("nan")
    ev = np.isfinite(t) & (t <= hold)
    info = float(np.sum(shape * t[ev] / mean))
    x = shape * hold[~ev] / mean
    if len(x):
        hazard = np.exp(stats.gamma.logpdf(x, shape) - stats.gamma.logsf(x, shape))
        info += float(np.sum(x * hazard * (shape - x + x * hazard)))
    return 1.0 / math.sqrt(info) if info > 0 else float("inf")


def leverage_target(target: float, temperatures_K: Sequence[float], temperature_K: float) -> float:
    """The precision a series' temperature needs when the aim is Ea: `target` at the
    outermost temperatures, looser towards the centre of the series in 1/T, where a mean
    nucleation time barely moves the Arrhenius slope. The slope's error from one
    temperature's ln(mean) scales with that temperature's distance from the centre, so
    the target is divided by it (relative to the outermost), up to `MAX_LEVERAGE_SCALE`
    times looser."""
    inverse = 1.0 / np.asarray(temperatures_K, dtype=np.float64)
    distance = np.abs(inverse - inverse.mean())
    widest = float(distance.max())
    if widest <= 0.0:  # one temperature: nothing to weigh
        return target
    leverage = abs(1.0 / temperature_K - float(inverse.mean())) / widest
    return target / max(leverage, 1.0 / MAX_LEVERAGE_SCALE)


@dataclass(frozen=True)
class SeriesDecision:
    """Whether a temperature of an adaptive series has had enough cycles, and why."""

    stop: bool
    reason: str
    worst_precision: float  # NaN while no particle has a nucleation
    worst_particle: int  # -1 if none
    particles_measured: int  # particles with at least one nucleation
    particles_short: int  # of those, how many are above the target


def series_decision(
    waiting_s: FloatArray,
    hold_s: FloatArray,
    tracked: NDArray[np.bool_],
    target: float,
    shape: float,
    min_cycles: int,
    max_cycles: int,
) -> SeriesDecision:
    """Decide after the cycles so far at one temperature: `waiting_s` (particles, cycles)
    from each jump (NaN: no nucleation in that cycle's hold), `hold_s` (cycles,) the holds,
    `tracked` the particles that count (not inert)."""
    waiting = np.asarray(waiting_s, dtype=np.float64)
    done = waiting.shape[1]
    precision = np.full(waiting.shape[0], np.nan)
    for i in np.flatnonzero(tracked):
        precision[i] = relative_precision(waiting[i], hold_s, shape)
    measured = np.isfinite(precision) | np.isinf(precision)
    n_measured = int(measured.sum())
    short = measured & ~(precision <= target)
    worst = int(np.nanargmax(np.where(measured, precision, -1.0))) if n_measured else -1
    worst_value = float(precision[worst]) if worst >= 0 else float("nan")
    summary = (
        f"{n_measured - int(short.sum())} of {n_measured} particles' mean nucleation times "
        f"known to {target:.0%} (worst {worst_value:.1%}, particle {worst})"
        if n_measured
        else "no particle has nucleated yet"
    )

    def verdict(stop: bool, why: str) -> SeriesDecision:
        return SeriesDecision(stop, why, worst_value, worst, n_measured, int(short.sum()))

    if done >= max_cycles:
        return verdict(True, f"most cycles ({max_cycles}) done; {summary}")
    if done < min_cycles:
        return verdict(False, f"{done} of at least {min_cycles} cycles; {summary}")
    if n_measured and not short.any():
        return verdict(True, f"precision reached after {done} cycles: {summary}")
    return verdict(False, f"after {done} cycles, {summary}")


class HoldEnd(StrEnum):
    """Why a heat step ended: its fixed hold, the switched fraction reached, or its
    longest hold reached without it."""

    FIXED = "fixed"
    SWITCHED = "switched"
    LONGEST = "longest"


def hold_end(
    elapsed_s: float,
    switched: int,
    tracked: int,
    end_when_switched: float,
    min_hold_s: float,
    max_hold_s: float,
) -> HoldEnd | None:
    """Whether an adaptive heat step ends now, `elapsed_s` after its jump, with `switched`
    of the `tracked` particles switched; None to go on. A hold never ends before
    `min_hold_s` and always at `max_hold_s`."""
    if elapsed_s >= max_hold_s:
        return HoldEnd.LONGEST
    if elapsed_s >= min_hold_s and tracked > 0 and switched >= end_when_switched * tracked:
        return HoldEnd.SWITCHED
    return None


class CoolEnd(StrEnum):
    """Why an adaptive cool step ended: the film and the particles back, or its longest."""

    SETTLED = "settled"
    LONGEST = "longest"


def cool_end(
    elapsed_s: float,
    back: int,
    tracked: int,
    film_above_K: float,
    jump_K: float,
    film_within: float,
    min_cool_s: float,
    max_cool_s: float,
) -> CoolEnd | None:
    """Whether an adaptive cool step ends now, `elapsed_s` after it began, with `back` of
    the `tracked` particles back in low spin and the film `film_above_K` above the cool's
    temperature after a jump of `jump_K`; None to go on. It ends once every tracked
    particle is back and the film is within `film_within` of the jump (an unknown film,
    NaN, never is), not before `min_cool_s`, and always at `max_cool_s`."""
    if elapsed_s >= max_cool_s:
        return CoolEnd.LONGEST
    settled = film_above_K <= film_within * abs(jump_K)  # False for NaN
    if elapsed_s >= min_cool_s and back >= tracked and settled:
        return CoolEnd.SETTLED
    return None
