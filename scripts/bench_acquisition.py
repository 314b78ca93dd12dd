"""Sustained acquisition through the whole path: simulated camera -> MMCore -> sequencer ->
TIFF pages on disk -> online traces, at 640 x 480 uint16 with 100 particles.

What the figures measure. The simulator's renderer draws a 640 x 480 frame in about 3 ms
of CPU, more than tjump spends on it, so a run that renders every frame measures the
renderer. The goal figures therefore come from *replayed* frames (`SimWorld.replay`):
200 frames the simulator rendered beforehand, which the simulated camera copies into
MMCore's buffer in its own thread, one copy per trigger, as a real camera's driver does;
the sample is then not simulated (its frames are not drawn). Everything else is the
normal simulated rig: the heater's physics and the DAQ on the virtual clock, the heater's
instruments over their sockets, and all of tjump (engine, run directory, live traces).
The rendered figure is printed too, with the camera rendering in its own process as
`tjump run` builds it, and that process's CPU per frame.

Each round measures, in an order that rotates from round to round, on the same frames:
  - the whole path (frames/s, dropped frames, the application's CPU per frame);
  - a bare tifffile page-per-frame write (one flushed page per frame);
  - pymmcore-plus's MDA writing an OME-TIFF from a Python camera serving the frames;
  - tjump's own page writer alone (`PageWriter`: the least the whole path can cost);
each into a new file that is deleted and synced to disk before the next measure starts,
so no measure pays for another's writes. The ratios are printed per round, then their
medians. Then: frames dropped with the simulated rig paced to real time at 100 and 500
frames/s (the camera then triggers whether or not tjump keeps up, as in the lab); with
--memory, resident memory over 100,000 frames (128 x 128, to spare the disk).

    python scripts/bench_acquisition.py [--frames 3000] [--rounds 3] [--memory]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
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
from tjump.storage.pages import PageWriter
from tjump.storage.writer import DESCRIPTION_BYTES

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


def full_path(folder: Path, frames: int, pool: np.ndarray | None) -> dict[str, float]:
    """Free-running through the whole tjump path: frames/s, frames dropped, CPU per frame
    of the application and of the renderer's process. With `pool`, the simulated camera
    replays those frames (copied into MMCore's buffer, as a real camera's are) instead of
    rendering new ones; without, it renders each in its own process, as `tjump run` does."""
    rig_file = write_rig(folder, 640, 480, 100, 200.0)
    plan = plan_run(write_protocol(folder, frames / 10, 10, 50), rig_file)
    out = folder / f"run-{'replay' if pool is not None else 'rendered'}"
    children = _cpu_s(resource.RUSAGE_CHILDREN)
    with build_sim_rig(plan.rig, camera_process=pool is None) as rig:
        rig.model.replay = pool  # None: the sample simulated and rendered
        start, cpu = time.perf_counter(), time.process_time()
        result = run_plan(plan, out, rig=rig)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    renderer = _cpu_s(resource.RUSAGE_CHILDREN) - children  # its process, once it ended
    shutil.rmtree(out)
    os.sync()
    return {
        "fps": result.frames / wall,
        "dropped": plan.schedule.total_frames - result.frames,
        "cpu_ms": cpu / result.frames * 1e3,
        "renderer_ms": renderer / result.frames * 1e3,
    }


def _cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


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


def page_writer(frames: np.ndarray, path: Path) -> float:
    """Frames/s of tjump's page writer alone (a 512-byte description per page, as a run
    directory's): the floor of the whole path's cost."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        pages = PageWriter(fd, (frames.shape[1], frames.shape[2]), DESCRIPTION_BYTES)
        description = "{}".ljust(DESCRIPTION_BYTES)
        start = time.perf_counter()
        for frame in frames:
            pages.write(frame, description)
        return len(frames) / (time.perf_counter() - start)
    finally:
        os.close(fd)


def written_and_gone(measure: Callable[[Path], float], path: Path) -> float:
    """`measure(path)`, then the file deleted and the disk synced: the next measure
    starts with no dirty pages of this one."""
    try:
        return measure(path)
    finally:
        path.unlink(missing_ok=True)
        os.sync()


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
    """Frames written and dropped with the simulated rig paced to real time (the camera
    rendering in its own process, as `tjump run` builds it)."""
    rig_file = write_rig(folder, 640, 480, 100, 1000.0)
    plan = plan_run(write_protocol(folder, seconds, fps, min(1.0, 500 / fps)), rig_file)
    out = folder / f"paced-{fps:g}"
    with build_sim_rig(plan.rig, camera_process=True) as rig:
        assert isinstance(rig.clock, VirtualClock)
        rig.clock.pace(1.0)
        start = time.perf_counter()
        try:
            status = run_plan(plan, out, rig=rig).status
        except TjumpError as e:
            status = f"failed: {str(e).splitlines()[0][:80]}"
        finally:
            rig.clock.stop()
        status += f", {time.perf_counter() - start:.1f} s wall"
    written = RunDirectory(out).frame_count()
    shutil.rmtree(out)
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true", help="also the 100,000-frame run")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pool = rendered_pool(folder, 200)
        shutil.rmtree(folder / "pool")
        rendered = full_path(folder, args.frames, None)
        print(
            f"rendering every frame (camera in its own process): {rendered['fps']:.0f} "
            f"frames/s, {rendered['dropped']:g} dropped; CPU per frame: application "
            f"{rendered['cpu_ms']:.2f} ms, renderer {rendered['renderer_ms']:.2f} ms",
            flush=True,
        )
        frames = pool[np.arange(args.frames) % len(pool)]
        cpu_ms: list[float] = []  # the application's, per replayed frame
        measures: dict[str, Callable[[], float]] = {
            "tjump": lambda: _replayed(folder, args.frames, pool, cpu_ms),
            "bare": lambda: written_and_gone(partial(bare_tifffile, frames), folder / "b.tif"),
            "mda": lambda: written_and_gone(
                partial(mda_ome_tiff, pool, args.frames), folder / "mda.ome.tif"
            ),
            "pages": lambda: written_and_gone(partial(page_writer, frames), folder / "p.tif"),
        }
        names = list(measures)
        rounds: list[dict[str, float]] = []
        print(
            "round | frames/s: whole path (replayed), bare tifffile, MDA OME-TIFF, tjump pages"
            " alone | whole / bare (goal >= 0.9), whole / MDA (goal >= 3), pages / bare"
        )
        for r in range(args.rounds):
            figures = {name: measures[name]() for name in names[r % 4 :] + names[: r % 4]}
            rounds.append(figures)
            loads.append(os.getloadavg()[0])
            print(_round_line(str(r + 1), figures), flush=True)
        medians = {key: float(np.median([f[key] for f in rounds])) for key in names}
        ratios = [(f["tjump"] / f["bare"], f["tjump"] / f["mda"]) for f in rounds]
        print(
            f"median | {medians['tjump']:.0f}, {medians['bare']:.0f}, {medians['mda']:.0f}, "
            f"{medians['pages']:.0f} | {np.median([a for a, _ in ratios]):.2f}x, "
            f"{np.median([b for _, b in ratios]):.1f}x (medians of the rounds' ratios)"
        )
        print(f"application CPU per replayed frame: median {np.median(cpu_ms):.2f} ms")
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
    loads.append(os.getloadavg()[0])
    print(f"peak RSS of this process {peak:.0f} MB; load average (1 min) {min(loads):.1f} to "
          f"{max(loads):.1f} on {os.cpu_count()} cores")  # fmt: skip


def _replayed(folder: Path, frames: int, pool: np.ndarray, cpu_ms: list[float]) -> float:
    """The whole path's frames/s on replayed frames; its CPU per frame goes to `cpu_ms`."""
    figures = full_path(folder, frames, pool)
    if figures["dropped"]:
        raise SystemExit(f"the whole path dropped {figures['dropped']:g} frames")
    cpu_ms.append(figures["cpu_ms"])
    return figures["fps"]


def _round_line(label: str, f: dict[str, float]) -> str:
    return (
        f"{label:>5} | {f['tjump']:.0f}, {f['bare']:.0f}, {f['mda']:.0f}, {f['pages']:.0f} | "
        f"{f['tjump'] / f['bare']:.2f}x, {f['tjump'] / f['mda']:.1f}x, "
        f"{f['pages'] / f['bare']:.2f}x"
    )


if __name__ == "__main__":
    main()
