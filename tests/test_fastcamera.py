"""The fast camera: the ring of frames around a trigger (Micro-Manager, on UniMMCore with
a small Python camera), bursts in the run directory, and the simulated camera's growth
measured back within 1 ms of the simulator's truth."""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymmcore_plus.experimental.unicore import UniMMCore

from tjump.analysis.growth import GROWTH_CSV, growth_from_run, write_growth_table
from tjump.clock import VirtualClock
from tjump.devices.fastcamera import Burst, MicroManagerFastCamera, Roi
from tjump.errors import DeviceError
from tjump.rig import load_calibration
from tjump.sim.config import SampleConfig, SimConfig
from tjump.sim.fastcamera import SimFastCamera
from tjump.sim.world import SimWorld
from tjump.storage.bursts import BURSTS_CSV, BurstWriter, read_bursts

from conftest import CALIBRATION
from mm_devices import CountingCamera


@pytest.fixture
def fast_camera() -> Iterator[MicroManagerFastCamera]:
    core = UniMMCore(mm_path=tempfile.gettempdir())
    core.loadPyDevice("Fast", CountingCamera())
    core.initializeAllDevices()
    camera = MicroManagerFastCamera(core, "Fast", frame_rate_hz=500.0)
    yield camera
    camera.close()


def test_micro_manager_burst_keeps_frames_before_and_after_the_trigger(
    fast_camera: MicroManagerFastCamera,
) -> None:
    with pytest.raises(DeviceError, match="before any trigger"):
        fast_camera.read_burst(Roi(0, 0, 4, 4), 0.1)
    fast_camera.arm(pre_s=0.02, post_s=0.01)  # 10 frames before, 5 after
    while fast_camera._ring.latest < 30:
        pass
    fast_camera.trigger()
    burst = fast_camera.read_burst(Roi(5, 3, 8, 6), timeout_s=5.0)
    assert burst.frames.shape == (15, 6, 8)
    numbers = burst.frames[:, 0, 0].astype(int)
    assert np.array_equal(np.diff(numbers), np.ones(14))  # none lost, none repeated
    assert np.allclose(burst.offset_s, np.arange(-10, 5) / 500.0)
    assert burst.exposure_s == pytest.approx(0.002)


def burst(n: int = 12, value: int = 100) -> Burst:
    frames = np.full((n, 9, 7), value, dtype=np.uint16)
    frames[:, 4, 3] += np.arange(n, dtype=np.uint16)
    return Burst(frames, (np.arange(n) - 8) / 500.0, 0.0019, 500.0, Roi(10, 20, 7, 9))


def test_bursts_are_stored_with_their_daq_times(tmp_path: Path) -> None:
    writer = BurstWriter(tmp_path)
    writer.write(burst(), particle=3, trigger_time_s=101.5)
    writer.write(burst(20, 7), particle=5, trigger_time_s=230.25)
    records = list(read_bursts(tmp_path))
    assert [(r.burst, r.particle, r.frames) for r in records] == [(0, 3, 12), (1, 5, 20)]
    frames, time_s = records[0].read()
    assert np.array_equal(frames, burst().frames)  # frames in == frames on disk
    assert time_s == pytest.approx(101.5 + (np.arange(12) - 8) / 500.0, abs=1e-6)
    assert records[1].roi == Roi(10, 20, 7, 9) and records[1].exposure_ms == pytest.approx(1.9)
    assert BurstWriter(tmp_path).count == 2  # a resumed run numbers on


def test_a_burst_cut_short_by_a_crash_is_not_listed(tmp_path: Path) -> None:
    BurstWriter(tmp_path).write(burst(), particle=1, trigger_time_s=1.0)
    # a crash between the files and the index row leaves files no row names
    (tmp_path / "bursts" / "0001.tif").write_bytes(b"II*\x00 torn")
    assert [r.burst for r in read_bursts(tmp_path)] == [0]
    assert not list(read_bursts(tmp_path / "elsewhere"))


def test_simulated_fast_camera_refuses_what_it_cannot_have() -> None:
    world = SimWorld(SimConfig(), 20_000.0, VirtualClock())
    camera = SimFastCamera(world)
    with pytest.raises(DeviceError, match="before it was armed"):
        camera.trigger()
    world.clock.sleep(1.0)
    camera.arm(pre_s=2.0, post_s=0.02)
    world.clock.sleep(0.5)
    camera.trigger()
    world.clock.sleep(0.05)
    got = camera.read_burst(Roi(0, 0, 8, 8), timeout_s=1.0)
    # recording began 0.5 s before the trigger: no frames from before then
    assert got.offset_s[0] == pytest.approx(-0.5) and got.offset_s[-1] == pytest.approx(0.018)
    assert len(got.frames) == 260


def test_growth_from_simulated_bursts_is_within_1_ms_of_the_truth(tmp_path: Path) -> None:
    """Heats at 384.9 K; a nucleation of a particle of 200 nm or more (one at a time, as
    live detection would, the particle with the fewest bursts first) fires a burst centred
    on it. Particles with three bursts or more get a growth time."""
    calibration = load_calibration(CALIBRATION)
    world = SimWorld(SimConfig(sample=SampleConfig(particles=30, references=0)), 20_000.0,
                     VirtualClock())  # fmt: skip
    clock, p = world.clock, world.particles
    camera = SimFastCamera(world)
    writer = BurstWriter(tmp_path)
    camera.arm(pre_s=0.1, post_s=0.04)
    clock.sleep(1.0)
    bursts = np.zeros(len(p), dtype=int)
    for _cycle in range(6):
        world.set_drive(calibration.drive_for(384.9), True)
        end, seen = clock.now() + 6.0, len(world.transitions)
        while clock.now() < end:
            clock.sleep(0.03)
            new = [
                tr.particle
                for tr in world.transitions[seen:]
                if tr.to_high_spin and p.size_nm[tr.particle] >= 200
            ]
            if new:
                camera.trigger()
                fired_at = clock.now()
                clock.sleep(0.04)
                i = min(new, key=lambda i: bursts[i])
                x, y = round(p.x[i]), round(p.y[i])
                got = camera.read_burst(Roi(x - 8, y - 8, 17, 17), timeout_s=1.0)
                writer.write(got, i, fired_at)
                bursts[i] += 1
            seen = len(world.transitions)
        world.set_drive(0.0, False)
        clock.sleep(3.0)
    fits = growth_from_run(tmp_path)
    write_growth_table(fits, tmp_path / GROWTH_CSV)
    stated = [fit for fit in fits if fit.status == "ok"]
    assert len(stated) >= 8
    assert all(fit.bursts >= 3 for fit in stated)
    for fit in stated:
        truth = p.growth_s[fit.particle]
        assert abs(fit.growth_s - truth) < 1e-3, (fit, truth)
    with (tmp_path / GROWTH_CSV).open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(fits) and sum(int(r["bursts"]) for r in rows) == writer.count
    assert (tmp_path / BURSTS_CSV).exists()


def test_a_burst_read_out_too_late_names_the_frames_lost(
    fast_camera: MicroManagerFastCamera,
) -> None:
    fast_camera.arm(pre_s=0.02, post_s=0.01)  # a ring of 515 frames: about 1 s at 500/s
    while fast_camera._ring.latest < 30:
        time.sleep(0.001)
    fast_camera.trigger()
    gone_round = fast_camera._ring.latest + 515 + 5 + 10  # the ring, the post frames, a margin
    deadline = time.monotonic() + 30.0  # a loaded machine streams slower than 500/s
    while fast_camera._ring.latest < gone_round and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(DeviceError, match="15 of the frames around the trigger were overwritten"):
        fast_camera.read_burst(Roi(0, 0, 4, 4), timeout_s=5.0)
