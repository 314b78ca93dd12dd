"""The adaptive decisions: when a heat step ends, and when a temperature has had enough
cycles for every particle's mean nucleation time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from tjump.analysis.adaptive import (
    HoldEnd,
    hold_end,
    leverage_target,
    relative_precision,
    series_decision,
)
from tjump.analysis.kinetics import censored_mean
from tjump.protocol.schema import MAX_LEVERAGE_SCALE


def test_precision_without_censoring_is_one_over_root_m_n() -> None:
    rng = np.random.default_rng(1)
    for shape, n in ((1.0, 10), (8.0, 5), (4.0, 40)):
        waits = rng.gamma(shape, 10.0 / shape, n)
        hold = np.full(n, 1e4)
        assert relative_precision(waits, hold, shape) == pytest.approx(
            1 / math.sqrt(shape * n), rel=1e-6
        )


def test_precision_is_the_curvature_of_the_censored_likelihood() -> None:
    """Independently: the second derivative in ln(mean) of the same log-likelihood, by
    finite differences at its own optimum."""
    rng = np.random.default_rng(2)
    shape = 3.0
    waits = rng.gamma(shape, 20.0 / shape, 12)
    hold = rng.uniform(8.0, 30.0, 12)  # each cycle its own (adaptive) hold
    waits[waits > hold] = np.nan
    ev = np.isfinite(waits)

    def nll(ln_mean: float) -> float:
        scale = math.exp(ln_mean) / shape
        ll = stats.gamma.logpdf(waits[ev], shape, scale=scale).sum()
        return float(-(ll + stats.gamma.logsf(hold[~ev], shape, scale=scale).sum()))

    best = optimize.minimize_scalar(nll, bounds=(0.0, 8.0), method="bounded").x
    assert censored_mean(waits, hold, shape) == pytest.approx(math.exp(best), rel=1e-3)
    h = 1e-3
    curvature = (nll(best + h) - 2 * nll(best) + nll(best - h)) / h**2
    assert 0 < (~ev).sum() < len(waits)
    assert relative_precision(waits, hold, shape) == pytest.approx(
        1 / math.sqrt(curvature), rel=0.02
    )


def test_precision_matches_the_scatter_of_the_estimate() -> None:
    """Over many simulated particles, censored at a hold near the mean, the stated
    precision is the real scatter of ln(mean) (within 15 %)."""
    rng = np.random.default_rng(3)
    shape, mean, cycles = 4.0, 10.0, 12
    estimates, stated = [], []
    for _ in range(200):
        waits = rng.gamma(shape, mean / shape, cycles)
        hold = np.full(cycles, 11.0)
        waits[waits > hold] = np.nan
        estimates.append(math.log(censored_mean(waits, hold, shape)))
        stated.append(relative_precision(waits, hold, shape))
    assert np.std(estimates) == pytest.approx(np.median(stated), rel=0.15)


def test_no_nucleation_has_no_precision() -> None:
    assert math.isnan(relative_precision(np.full(5, np.nan), np.full(5, 10.0), 2.0))


def decide(waits: np.ndarray, done_min: int = 3, done_max: int = 20, target: float = 0.2):
    holds = np.full(waits.shape[1], 50.0)
    tracked = np.ones(waits.shape[0], dtype=bool)
    return series_decision(waits, holds, tracked, target, 8.0, done_min, done_max)


def test_series_stops_when_every_switching_particle_is_known_well_enough() -> None:
    rng = np.random.default_rng(4)
    waits = rng.gamma(8.0, 5.0 / 8.0, (6, 4))  # m = 8, 4 cycles: 1/sqrt(32) = 18 %
    waits[5] = np.nan  # a particle that never switches is not waited for
    decision = decide(waits)
    assert decision.stop and decision.particles_measured == 5
    assert "precision reached after 4 cycles" in decision.reason


def test_series_goes_on_while_a_particle_is_short_of_the_target() -> None:
    rng = np.random.default_rng(5)
    waits = rng.gamma(8.0, 5.0 / 8.0, (6, 4))
    waits[2, 1:] = np.nan  # one nucleation in four cycles (three censored at 50 s)
    decision = decide(waits)
    assert not decision.stop and decision.worst_particle == 2
    assert decision.particles_short == 1 and decision.worst_precision > 0.2


def test_series_respects_its_minimum_and_maximum() -> None:
    rng = np.random.default_rng(6)
    precise = rng.gamma(8.0, 5.0 / 8.0, (3, 6))
    assert not decide(precise, done_min=8).stop
    short = precise.copy()
    short[0, 1:] = np.nan
    assert decide(short, done_max=6).stop
    assert "most cycles (6)" in decide(short, done_max=6).reason


def test_inert_particles_are_not_counted() -> None:
    rng = np.random.default_rng(7)
    waits = rng.gamma(8.0, 5.0 / 8.0, (3, 5))
    waits[1, 1:] = np.nan
    holds = np.full(5, 50.0)
    counted = series_decision(waits, holds, np.ones(3, bool), 0.2, 8.0, 1, 20)
    inert = series_decision(waits, holds, np.array([True, False, True]), 0.2, 8.0, 1, 20)
    assert not counted.stop and inert.stop


def test_hold_ends_at_the_fraction_between_the_minimum_and_the_maximum() -> None:
    assert hold_end(2.0, 10, 10, 0.9, 5.0, 50.0) is None  # before the minimum
    assert hold_end(6.0, 8, 10, 0.9, 5.0, 50.0) is None  # 80 % < 90 %
    assert hold_end(6.0, 9, 10, 0.9, 5.0, 50.0) is HoldEnd.SWITCHED
    assert hold_end(50.0, 1, 10, 0.9, 5.0, 50.0) is HoldEnd.LONGEST
    assert hold_end(6.0, 0, 0, 0.9, 5.0, 50.0) is None  # nothing tracked: the full hold


PAPER_K = [370.8, 374.3, 377.7, 381.0, 384.9]


def test_leverage_target_spreads_the_slope_error_evenly() -> None:
    """An error e in one temperature's ln(mean) moves the Arrhenius slope (Ea / R) of a
    straight line through all of them by e (x - mean x) / sum (x - mean x)^2, x = 1/T: with
    the scaled targets every temperature (not capped) moves Ea by the same amount."""
    x = 1.0 / np.array(PAPER_K)
    targets = np.array([leverage_target(0.1, PAPER_K, t) for t in PAPER_K])
    effect = targets * np.abs(x - x.mean()) / np.sum((x - x.mean()) ** 2)
    outer = int(np.argmax(np.abs(x - x.mean())))
    assert targets[outer] == pytest.approx(0.1)
    uncapped = targets < MAX_LEVERAGE_SCALE * 0.1
    assert uncapped.sum() == 4
    assert effect[uncapped] == pytest.approx(np.full(4, effect[outer]), rel=1e-9)
    assert targets[2] == pytest.approx(MAX_LEVERAGE_SCALE * 0.1)  # the centre: capped
    assert 0.19 < targets[1] < 0.22 and 0.19 < targets[3] < 0.22


def test_leverage_target_of_one_temperature_is_the_target() -> None:
    assert leverage_target(0.15, [380.0], 380.0) == 0.15
    two = [leverage_target(0.15, [375.0, 385.0], t) for t in (375.0, 385.0)]
    assert two == pytest.approx([0.15, 0.15])
