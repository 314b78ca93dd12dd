"""Sustained acquisition through the whole path: simulated camera -> MMCore -> sequencer ->
TIFF pages on disk -> online traces, at 640 x 480 uint16 with 100 particles.

Prints:
  - frames/s of the whole path with the simulated rig free-running (as fast as it goes),
    frames dropped, and the ratio to a bare tifffile page-per-frame write of the same
    frames, and to pymmcore-plus's MDA writing an OME-TIFF from the same camera frames;
  - frames dropped with the simulated rig paced to real time at 100 and 500 frames/s (the
    camera then triggers whether or not tjump keeps up, as in the lab);
  - with --memory, resident memory over 100,000 frames (128 x 128, to spare the disk).

    python scripts/bench_acquisition.py [--frames 3000] [--memory]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import yaml
from pymmcore_plus.experimental.unicore import CameraDevice, UniMMCore

from tjump.clock import VirtualClock
from tjump.errors import TjumpError
from tjump.sequencer import open_run, plan_run, run_plan
from tjump.sim.rig import build_sim_rig, install
from tjump.storage import RunDirectory

install()  # simulated rig files can be read and built

ROOT = Path(__file__).resolve().parent.parent


def write_rig(folder: Path, width: int, height: int, particles: int, daq_hz: float) -> Path:
    """The shipped simulated rig, resized."""
    rig = yaml.safe_load((ROOT / "configs/rigs/sim.yaml").read_text())
    rig["calibration"] = str(ROOT / "configs/calibrations/heater-sim.csv")
    rig["daq"] = {"sample_rate_hz": daq_hz}
    rig["camera"] = {**rig.get("camera", {}), "max_frame_rate_hz": min(1000.0, daq_hz)}
    sim = rig.setdefault("simulation", {})
    sim["sample"] = {"particles": particles, "references": 4, "min_separation_px": 6.0}
    sim["sensor"] = {"width": width, "height": height}
    path = folder / f"rig-{width}x{height}.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def write_protocol(folder: Path, seconds: float, fps: float, exposure_ms: float) -> Path:
    path = folder / f"protocol-{fps:g}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": f"bench-{fps:g}",
                "frame_rate_hz": fps,
                "exposure_ms": exposure_ms,
                "steps": [
                    {"kind": "baseline", "duration_s": 2},
                    {
                        "kind": "series",
                        "temperatures_K": [384.9],
                        "cycles": 1,
                        "heat_s": seconds / 2,
                        "cool_s": seconds / 2 - 2,
                    },
                ],
            }
        )
    )
    return path


def full_path(folder: Path, frames: int, pool: np.ndarray | None) -> tuple[float, int]:
    """Free-running: frames/s and frames dropped through the whole tjump path. With
    `pool`, the simulated camera replays those frames instead of rendering new ones, so
    the figure is the acquisition path's own, not the simulator's."""
    rig_file = write_rig(folder, 640, 480, 100, 200.0)
    plan = plan_run(write_protocol(folder, frames / 10, 10, 50), rig_file)
    out = folder / f"run-{'replay' if pool is not None else 'rendered'}"
    with build_sim_rig(plan.rig) as rig:
        if pool is not None:
            rig.model.renderer = ReplayRenderer(pool)  # type: ignore[assignment]
        start = time.perf_counter()
        result = run_plan(plan, out, rig=rig)
        wall = time.perf_counter() - start
    return result.frames / wall, plan.schedule.total_frames - result.frames


class ReplayRenderer:
    """Stands in for the simulator's renderer: copies recorded frames in turn."""

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = pool
        self.count = 0

    def render(self, scene: object, out: np.ndarray) -> None:
        out[:] = self.pool[self.count % len(self.pool)]
        self.count += 1

    def electrons_per_peak_fraction(self) -> float:
        return 1.0


def rendered_pool(folder: Path, count: int) -> np.ndarray:
    """`count` simulated frames of the 640 x 480 rig with 100 particles."""
    rig_file = write_rig(folder, 640, 480, 100, 200.0)
    plan = plan_run(write_protocol(folder, 20, 10, 50), rig_file)
    run_plan(plan, folder / "pool")
    return RunDirectory(folder / "pool").read_frames_range(0, count)


def bare_tifffile(frames: np.ndarray, path: Path) -> float:
    """Frames/s of tifffile alone writing one flushed page per frame."""
    with path.open("wb") as f, tifffile.TiffWriter(f) as tif:
        start = time.perf_counter()
        for frame in frames:
            tif.write(frame, contiguous=False, metadata=None)
            f.flush()
        return len(frames) / (time.perf_counter() - start)


class PoolCamera(CameraDevice):
    """A unicore camera that serves frames from memory as fast as it is asked."""

    def __init__(self, frames: np.ndarray) -> None:
        super().__init__()
        self.frames = frames
        self._exposure = 1.0

    def get_exposure(self) -> float:
        return self._exposure

    def set_exposure(self, exposure: float) -> None:
        self._exposure = exposure

    def shape(self) -> tuple[int, int]:
        return self.frames.shape[1:]  # type: ignore[return-value]

    def dtype(self) -> Any:
        return np.uint16

    def start_sequence(self, n: int | None, get_buffer: Any) -> Iterator[Mapping[str, str]]:
        for i in range(n if n is not None else 2**62):
            get_buffer(self.shape(), np.uint16)[:] = self.frames[i % len(self.frames)]
            yield {}


def mda_ome_tiff(frames: np.ndarray, count: int, path: Path) -> float:
    """Frames/s of pymmcore-plus's MDA writing an OME-TIFF from the same frames."""
    import useq

    core = UniMMCore(mm_path=tempfile.gettempdir())
    core.loadPyDevice("Pool", PoolCamera(frames))
    core.initializeAllDevices()
    core.setCameraDevice("Pool")
    core.setAutoShutter(False)
    core.definePixelSizeConfig("px")
    core.setPixelSizeUm("px", 0.37)
    core.setPixelSizeConfig("px")
    # room for every frame, in whole frames (pymmcore-plus 0.18.1's buffer misreports
    # an overflow otherwise): the figure is MDA's writing, not a race with the camera
    frame_bytes = frames[0].nbytes
    core.setCircularBufferMemoryFootprint(count * frame_bytes / 2**20)  # type: ignore[arg-type]
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": count})
    start = time.perf_counter()
    core.mda.run(sequence, output=str(path))
    rate = count / (time.perf_counter() - start)
    core.setCameraDevice("")
    del core
    return rate


def paced(folder: Path, fps: float, seconds: float) -> tuple[int, int, str]:
    """Frames written and dropped with the simulated rig paced to real time."""
    rig_file = write_rig(folder, 640, 480, 100, 1000.0)
    plan = plan_run(write_protocol(folder, seconds, fps, min(1.0, 500 / fps)), rig_file)
    with build_sim_rig(plan.rig) as rig:
        assert isinstance(rig.clock, VirtualClock)
        rig.clock.pace(1.0)
        out = folder / f"paced-{fps:g}"
        try:
            status = run_plan(plan, out, rig=rig).status
        except TjumpError as e:
            status = f"failed: {e}"
        finally:
            rig.clock.stop()
    written = RunDirectory(out).frame_count()
    return written, plan.schedule.total_frames - written, status


def memory(folder: Path, frames: int) -> tuple[float, float, float]:
    """Resident memory after the camera's circular buffer (512 MB, 16,384 frames of
    128 x 128) has been filled once, at the end, and at its peak."""
    rig = write_rig(folder, 128, 128, 20, 200.0)
    plan = plan_run(write_protocol(folder, frames / 10, 10, 50), rig)
    rss: list[tuple[int, float]] = []

    def sample(p: Any) -> None:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        rss.append((p.frames_done, pages * resource.getpagesize() / 2**20))

    runner = open_run(plan, folder / "memory")
    runner.events.progress.connect(sample)
    runner.run()
    after_fill = [m for n, m in rss if 20_000 <= n <= 25_000]
    last = [m for n, m in rss if n >= frames * 9 // 10]
    return float(np.mean(after_fill)), float(np.mean(last)), max(m for _, m in rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--memory", action="store_true", help="also the 100,000-frame run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pool = rendered_pool(folder, 200)
        rendered, dropped = full_path(folder, args.frames, None)
        print(
            f"simulated rig, 640 x 480, 100 particles, rendering every frame: "
            f"{rendered:.0f} frames/s, {dropped} dropped"
        )
        rate, dropped = full_path(folder, args.frames, pool)
        print(
            f"whole path (camera -> MMCore -> sequencer -> disk -> traces), replayed frames: "
            f"{rate:.0f} frames/s, {dropped} dropped"
        )
        frames = pool[np.arange(args.frames) % len(pool)]
        bare = bare_tifffile(frames, folder / "bare.tif")
        print(
            f"bare tifffile page per frame, same frames: {bare:.0f} frames/s "
            f"-> tjump / bare = {rate / bare:.2f}"
        )
        del frames
        mda = mda_ome_tiff(pool, args.frames, folder / "mda.ome.tif")
        print(
            f"pymmcore-plus MDA to OME-TIFF, same frames: {mda:.0f} frames/s "
            f"-> tjump / MDA = {rate / mda:.1f}x"
        )
        for fps in (100.0, 500.0):
            written, lost, status = paced(folder, fps, 10.0)
            print(
                f"paced to real time at {fps:g} frames/s for 10 s: {written} frames written, "
                f"{lost} dropped ({status})"
            )
        if args.memory:
            first, last, peak = memory(folder, 100_000)
            print(
                f"100,000 frames (128 x 128): RSS {first:.0f} MB in the first tenth, "
                f"{last:.0f} MB in the last, peak {peak:.0f} MB, growth {last - first:+.1f} MB"
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process {peak:.0f} MB")


if __name__ == "__main__":
    main()
