"""The simulator behaves as the published instrument and the sample do."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tjump.clock import VirtualClock
from tjump.rig import load_calibration
from tjump.sim.config import SampleConfig, SimConfig, ThermalConfig
from tjump.sim.sample import R_KJ_PER_MOL_K, SampleKinetics, make_particles
from tjump.sim.thermal import FilmThermalModel
from tjump.sim.world import SimWorld

from conftest import CALIBRATION


def test_film_step_response_matches_the_published_rise() -> None:
    model = FilmThermalModel(ThermalConfig(), 293.0, current_limit_A=1.0)
    rise = model.steady_rise(1.0)
    temps = model.advance(1.0, np.array([0.1, 1.0, 10.0]))
    fraction = (temps - 293.0) / rise
    assert fraction == pytest.approx([0.35, 0.80, 0.93], abs=0.01)


def test_steady_state_is_not_linear_in_drive() -> None:
    model = FilmThermalModel(ThermalConfig(), 293.0, current_limit_A=1.0)
    # dT = R_th V^2 / R(T): doubling V less than quadruples dT because R rises with T
    assert 3.0 < model.steady_rise(1.6) / model.steady_rise(0.8) < 4.0


def test_current_limit_caps_the_temperature() -> None:
    free = FilmThermalModel(ThermalConfig(), 293.0, current_limit_A=1.0)
    limited = FilmThermalModel(ThermalConfig(), 293.0, current_limit_A=0.03)
    assert limited.steady_rise(1.5) < free.steady_rise(1.5)


def test_calibration_reaches_its_temperatures_in_the_simulator() -> None:
    calibration = load_calibration(CALIBRATION)
    model = FilmThermalModel(ThermalConfig(), 293.0, current_limit_A=0.2)
    for target in (350.8, 370.8, 384.9, 473.0):
        assert 293.0 + model.steady_rise(calibration.drive_for(target)) == pytest.approx(
            target, abs=0.05
        )


def test_waiting_times_have_the_arrhenius_mean_and_a_gaussian_like_spread() -> None:
    config = SampleConfig(particles=3, references=0, waiting_time_shape=8.0)
    drawn = make_particles(config, 64, 64, seed=3)
    temp, mean_wait = 380.0, np.array([1.5, 3.0, 6.0])
    ln_a = np.log(1 / mean_wait) + drawn.ea_kj_mol / (R_KJ_PER_MOL_K * temp)
    particles = replace(drawn, ln_prefactor=ln_a)
    kinetics = SampleKinetics(particles, config, seed=3)
    dt, t = 0.005, 0.0
    waits: list[list[float]] = [[], [], []]
    for _cycle in range(200):  # 30 s at 380 K, then a moment at 293 K
        start = t
        for _block in range(30):
            times = t + dt * (1 + np.arange(200))
            for tr in kinetics.advance(times, np.full(200, temp), dt, temp):
                waits[tr.particle].append(tr.time_s - start)
            t = times[-1]
        kinetics.advance(t + dt * (1 + np.arange(2)), np.full(2, 293.0), dt, temp)
        t += 2 * dt
    for i in range(3):
        w = np.array(waits[i])
        assert len(w) == 200  # every cycle switched, once
        assert w.mean() == pytest.approx(mean_wait[i], rel=0.1)
        assert w.std() / w.mean() == pytest.approx(1 / np.sqrt(8.0), rel=0.2)


def test_sample_sizes_brightness_and_references() -> None:
    config = SampleConfig(particles=60, references=5)
    p = make_particles(config, 640, 480, seed=1)
    sco = ~p.is_reference
    assert p.is_reference.sum() == 5
    assert np.all((p.size_nm[sco] >= 100) & (p.size_nm[sco] <= 500))
    assert np.all((p.peak_fraction >= 0.05) & (p.peak_fraction <= 0.61))
    order = np.argsort(p.size_nm[sco])
    assert np.all(np.diff(p.peak_fraction[sco][order]) > 0)  # larger is brighter
    # Ea falls with size on average; a minority is at least twice the mean
    ea = p.ea_kj_mol[sco]
    small, large = ea[p.size_nm[sco] < 250], ea[p.size_nm[sco] > 350]
    assert np.median(small) > np.median(large)
    distances = np.hypot(p.x[:, None] - p.x[None, :], p.y[:, None] - p.y[None, :])
    assert distances[~np.eye(len(p), dtype=bool)].min() >= config.min_separation_px


def test_ablation_dims_and_lowers_the_barrier() -> None:
    clock = VirtualClock()
    world = SimWorld(SimConfig(sample=SampleConfig(particles=10, references=2)), 200.0, clock)
    drive = load_calibration(CALIBRATION).drive_for(473.0)
    world.set_drive(volts=drive, on=True)
    clock.run_to(200.0)
    ablated = world.kinetics.ablation()[~world.particles.is_reference]
    assert np.all(ablated > 0.9)
    ea, _ = world.kinetics.kinetic_parameters()
    sco = ~world.particles.is_reference
    assert np.all(np.abs(ea[sco] - 90.0) < 20.0)
    assert np.all(world.particles.ea_kj_mol[sco] > 120.0)


def test_close_pairs_vary_as_on_a_real_sample() -> None:
    """`close_pairs` puts that many particles beside another (at separations drawn from
    the range), of every kind; the rest stay apart, and the sample is otherwise drawn as
    without pairs."""
    plain = SampleConfig(particles=40, references=4)
    config = SampleConfig(particles=40, references=4, close_pairs=6, pair_separation_px=(6.5, 9))
    p, q = make_particles(plain, 192, 192, seed=2), make_particles(config, 192, 192, seed=2)
    distances = np.hypot(q.x[:, None] - q.x[None, :], q.y[:, None] - q.y[None, :])
    np.fill_diagonal(distances, np.inf)
    nearest = distances.min(axis=1)
    close = nearest < 9.0
    assert close.sum() == 12 and np.all((nearest[close] >= 6.5) & (nearest[close] <= 9.0))
    assert np.ptp(nearest[close]) > 0.5  # the separations vary
    assert np.all(nearest[~close] >= 8.0)
    assert q.is_reference.sum() == 4 and np.array_equal(q.size_nm, p.size_nm, equal_nan=True)
    assert set(np.round(q.x, 6)) - set(np.round(p.x, 6))  # moved ones are new positions
    with pytest.raises(ValueError, match="close_pairs"):
        SampleConfig(particles=4, references=1, close_pairs=3)
    with pytest.raises(ValueError, match="pair_separation_px"):
        SampleConfig(pair_separation_px=(9.0, 7.0))
