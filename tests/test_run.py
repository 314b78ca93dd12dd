"""A protocol runs end to end on the simulated rig: timing on the virtual clock, every
frame on disk, particles that visibly switch, and the heater safe at the end."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tjump.rig import load_calibration
from tjump.sequencer import RunResult, plan_run, run_plan
from tjump.sim.rig import build_sim_rig
from tjump.sim.world import SimWorld
from tjump.storage import RunDirectory

from conftest import CALIBRATION, rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
FPS = 10


@pytest.fixture(scope="module")
def finished_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunResult, SimWorld, Path]]:
    """Baseline 3 s, then 3 cycles of 12 s at 384.9 K / 6 s at 293 K on a 96 x 96 rig."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "rig.yaml").write_text(rig_yaml(particles=10, references=3))
    (folder / "p.yaml").write_text(series_protocol(cycles=3))
    plan = plan_run(folder / "p.yaml", folder / "rig.yaml")
    rig = build_sim_rig(plan.rig)
    result = run_plan(plan, folder / "out", rig=rig)
    yield result, rig.model, folder / "out"
    rig.close()


def test_every_frame_is_on_disk_and_in_the_table(
    finished_run: tuple[RunResult, SimWorld, Path],
) -> None:
    result, _, out = finished_run
    run = RunDirectory(out)
    expected = (3 + 3 * 18) * FPS
    assert result.status == "complete"
    assert result.frames == expected
    assert run.frame_count() == expected
    assert len(run.frames_table()) == expected
    assert run.manifest()["status"] == "complete"
    assert run.manifest()["frames"] == expected
    for chunk in run.chunk_files():
        with tifffile.TiffFile(chunk) as tif:
            page = tif.pages[0].asarray()
            assert page.shape == (96, 96)
            assert page.dtype == np.uint16


def test_jumps_start_on_frame_edges_at_the_calibrated_drive(
    finished_run: tuple[RunResult, SimWorld, Path],
) -> None:
    _, _, out = finished_run
    run = RunDirectory(out)
    starts = [e for e in run.log() if e["event"] == "segment_started"]
    assert [e["kind"] for e in starts] == ["baseline"] + ["heat", "cool"] * 3
    for event in starts:  # the DAQ time of each step is exactly its first frame's
        assert event["time_s"] == pytest.approx(event["frame"] / FPS, abs=1e-9)
    rows = run.frames_table()
    heat_drive = load_calibration(CALIBRATION).drive_for(384.9)
    for event in starts:
        first = rows[event["frame"]]
        assert float(first["temperature_K"]) == event["setpoint_K"]
        assert int(first["segment"]) == event["segment"]
        expected_drive = heat_drive if event["kind"] == "heat" else 0.0
        assert float(first["drive_V"]) == pytest.approx(expected_drive, abs=0.002)
        previous = rows[event["frame"] - 1] if event["frame"] else None
        if previous is not None:
            assert int(previous["segment"]) == event["segment"] - 1
    assert [int(r["camera_frame"]) for r in rows] == list(range(len(rows)))
    assert [float(r["time_s"]) for r in rows] == pytest.approx(np.arange(len(rows)) / FPS)


def test_heater_is_off_after_the_run(finished_run: tuple[RunResult, SimWorld, Path]) -> None:
    _, world, out = finished_run
    assert (world.drive_volts, world.drive_on) == (0.0, False)
    assert any(e["event"] == "heater_safe" for e in RunDirectory(out).log())


def aperture(frames: np.ndarray, x: float, y: float) -> np.ndarray:
    """Background-subtracted 5 x 5 sums around (x, y) in every frame."""
    r, c = round(y), round(x)
    box = frames[:, r - 2 : r + 3, c - 2 : c + 3].astype(float)
    ring = frames[:, r - 4 : r + 5, c - 4 : c + 5].astype(float)
    background = (ring.sum(axis=(1, 2)) - box.sum(axis=(1, 2))) / (81 - 25)
    return box.sum(axis=(1, 2)) - 25 * background


def test_transitions_are_in_the_pixels(finished_run: tuple[RunResult, SimWorld, Path]) -> None:
    """Each simulated LS -> HS switch dims its particle by its HS dimming (13-17 %), seen
    in the frames after dividing out the references' common-mode focal drift."""
    _, world, out = finished_run
    frames = RunDirectory(out).read_frames()
    p = world.particles
    refs = np.flatnonzero(p.is_reference)
    reference = np.mean([aperture(frames, p.x[i], p.y[i]) for i in refs], axis=0)
    distance = np.hypot(p.x[:, None] - p.x[None, :], p.y[:, None] - p.y[None, :])
    hot_y, hot_x = np.divmod(world.renderer.hot_pixels, frames.shape[2])
    hot = np.hypot(p.x[:, None] - hot_x[None, :], p.y[:, None] - hot_y[None, :]).min(axis=1)
    # no neighbour and no hot pixel inside the aperture or its background ring
    isolated = (np.sort(distance, axis=1)[:, 1] > 10) & (hot > 6)
    ups = [t for t in world.transitions if t.to_high_spin and isolated[t.particle]]
    assert len(ups) >= 10
    drops = []
    for tr in ups:
        k = int(tr.time_s * FPS)  # the frame whose exposure the switch falls in (or after)
        if k < 8 or k + 6 >= len(frames):
            continue
        trace = aperture(frames, p.x[tr.particle], p.y[tr.particle]) / reference
        before, after = trace[k - 4 : k].mean(), trace[k + 2 : k + 6].mean()
        drops.append((1 - after / before, p.hs_dimming[tr.particle]))
    measured, truth = np.array(drops).T
    assert len(measured) >= 10
    assert np.abs(measured - truth).max() < 0.03
    assert np.median(measured) == pytest.approx(0.15, abs=0.02)


def test_same_seed_same_recording(write_file: WriteFile) -> None:
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=3, cool_s=1, baseline_s=1))
    plan = plan_run(protocol, rig)
    digests = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        run_plan(plan, protocol.parent / name, seed=seed)
        frames = RunDirectory(protocol.parent / name).read_frames()
        digests.append(hashlib.sha256(frames.tobytes()).hexdigest())
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]
