"""Particles are found where the simulator put them; hot pixels are not particles."""

from __future__ import annotations

import numpy as np

from tjump.analysis import ApertureTraces, OnlineTraces, detect_particles
from tjump.clock import VirtualClock
from tjump.sim.config import SimConfig
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
