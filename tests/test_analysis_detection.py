"""Particles are found where the simulator put them; hot pixels are not particles."""

from __future__ import annotations

import numpy as np
import pytest

from tjump.analysis import ApertureTraces, OnlineTraces, detect_particles
from tjump.analysis.traces import extract_traces
from tjump.clock import VirtualClock
from tjump.sim.config import SampleConfig, SensorConfig, SimConfig
from tjump.sim.world import SimWorld


def baseline_frames(n: int, seed: int = 3) -> tuple[SimWorld, np.ndarray]:
    sim = SimConfig(seed=seed).model_copy(
        update={"sensor": SimConfig().sensor.model_copy(update={"width": 160, "height": 128})}
    )
    clock = VirtualClock()
    world = SimWorld(sim, 200.0, clock)
    world.start_daq(10.0)
    clock.run_to(n / 10.0)
    frames = np.empty((n, 128, 160), np.uint16)
    for i in range(n):
        scene = world.scenes.get_nowait()
        assert scene is not None
        world.renderer.render(scene, frames[i])
    return world, frames


def test_every_particle_found_within_a_tenth_of_a_pixel_and_no_hot_pixel() -> None:
    world, frames = baseline_frames(20)
    found = detect_particles(frames.mean(axis=0))
    p = world.particles
    distance = np.hypot(found.x[:, None] - p.x[None, :], found.y[:, None] - p.y[None, :])
    assert len(found) == len(p)
    assert np.all(distance.min(axis=1) < 0.1)
    assert len(set(distance.argmin(axis=1))) == len(p)
    hot_y, hot_x = np.divmod(world.renderer.hot_pixels, 160)
    to_hot = np.hypot(found.x[:, None] - hot_x[None, :], found.y[:, None] - hot_y[None, :])
    assert np.all(to_hot.min(axis=1) > 1.5)


def test_online_traces_match_offline_apertures() -> None:
    _, frames = baseline_frames(30)
    online = OnlineTraces(baseline_frames=20)
    rows = [r for frame in frames if (r := online.add(frame)) is not None]
    live = np.concatenate(rows)
    assert online.detections is not None
    d = online.detections
    offline = np.stack([ApertureTraces(d.x, d.y, (128, 160)).measure(f) for f in frames])
    assert live.shape == offline.shape == (30, len(d))
    np.testing.assert_allclose(live, offline)
    assert np.all(np.median(live, axis=0) > 0)


def test_close_pairs_7_px_apart_are_found_and_measured_on_their_own() -> None:
    """A sample with 8 pairs 7 px apart (one of each pair switching to high spin halfway):
    every particle is found within 0.15 px, and a switch dims its own trace by its step
    while its neighbour's stays within 1 %."""
    sample = SampleConfig(particles=26, references=4, close_pairs=8, pair_separation_px=(7.0, 7.0))
    sim = SimConfig(seed=5, sample=sample, sensor=SensorConfig(width=160, height=128))
    clock = VirtualClock()
    world = SimWorld(sim, 200.0, clock)
    p = world.particles
    distance = np.hypot(p.x[:, None] - p.x[None, :], p.y[:, None] - p.y[None, :])
    np.fill_diagonal(distance, np.inf)
    partner = distance.argmin(axis=1)
    paired = np.flatnonzero(np.isclose(distance.min(axis=1), 7.0))
    assert len(paired) == 16
    switching = np.array([i for i in paired if i < partner[i] and not p.is_reference[i]])
    assert len(switching) >= 5
    world.start_daq(10.0)
    clock.run_to(3.0)
    world.kinetics._changed_to[switching] = 1.0  # high spin from t = 3 s on
    world.kinetics._changed_at[switching] = 3.0
    clock.run_to(6.0)
    frames = np.empty((60, 128, 160), np.uint16)
    for i in range(60):
        scene = world.scenes.get_nowait()
        assert scene is not None
        world.renderer.render(scene, frames[i])
    found = detect_particles(frames[:20].mean(axis=0))
    to_truth = np.hypot(found.x[:, None] - p.x[None, :], found.y[:, None] - p.y[None, :])
    assert len(found) == len(p) and np.all(to_truth.min(axis=1) < 0.15)
    assert sorted(to_truth.argmin(axis=1)) == list(range(len(p)))
    match = to_truth.argmin(axis=0)  # detection of each true particle
    traces = extract_traces(
        [(0, frames)], 60, found.x, found.y, frames[:20].mean(axis=0), track=False
    ).intensity
    change = traces[35:].mean(axis=0) / traces[:25].mean(axis=0) - 1.0
    for i in switching:
        assert change[match[i]] == pytest.approx(-p.hs_dimming[i], abs=0.02)
        assert abs(change[match[partner[i]]]) < 0.01
