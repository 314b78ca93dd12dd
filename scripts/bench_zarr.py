"""OME-Zarr export against the run directory's TIFFs: trace reading and export speed.

A run of N frames (default 10,000; or `--run RUN`, an existing one) at 640 x 480 with 100
particles on the simulated rig; the disk's write and cold-read speed measured with a plain
1 GB file (the baseline) before and after the export; `tjump export --ome-zarr` timed
against it (synced), and as it was before it read the TIFF pages past the page cache; then
the traces of every particle read by the analysis from the TIFFs and from the export, in
turn, each with a cold page cache (posix_fadvise DONTNEED on every file of both),
`--rounds` times, the medians compared. `--layouts` adds other tile sizes and codecs.
Goals: export at least at the disk's write speed; traces >= 10x faster from the export
(printed alone, and with what `tjump analyze` reads before them: opening the recording and
the mean image for detection). Memory on long runs: scripts/bench_memory.py.

    python scripts/bench_zarr.py [--frames 10000 | --run RUN] [--layouts] [--rounds 3]
                                 [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from tjump.analysis import detect_particles
from tjump.analysis.recording import open_recording
from tjump.analysis.traces import extract_traces
from tjump.storage import RunDirectory
from tjump.storage.zarr_export import ZarrLayout, export_ome_zarr

ROOT = Path(__file__).resolve().parent.parent
MIN_FREE_GB = 25.0
FRAME_MB = 640 * 480 * 2 / 1e6


def free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9


def drop_cache(*paths: Path) -> None:
    """Evict the files under `paths` from the page cache (written back first)."""
    os.sync()
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def disk_speed(folder: Path, size_mb: int = 1024) -> tuple[float, float]:
    """(write MB/s with fsync, cold read MB/s) of a plain file: the dd baseline."""
    path = folder / "dd.bin"
    block = np.random.default_rng(0).integers(0, 255, 4 * 2**20, dtype=np.uint8).tobytes()
    t = time.perf_counter()
    with path.open("wb") as f:
        for _ in range(size_mb // 4):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    write = size_mb * 2**20 / 1e6 / (time.perf_counter() - t)
    drop_cache(path)
    t = time.perf_counter()
    with path.open("rb") as f:
        while f.read(16 * 2**20):
            pass
    read = size_mb * 2**20 / 1e6 / (time.perf_counter() - t)
    path.unlink()
    return write, read


def make_rig(folder: Path, particles: int) -> Path:
    """configs/rigs/sim.yaml (640 x 480) with `particles` particles (4 of them references)."""
    rig = yaml.safe_load((ROOT / "configs" / "rigs" / "sim.yaml").read_text())
    rig["calibration"] = str(ROOT / "configs" / "calibrations" / "heater-sim.csv")
    rig["simulation"]["sample"] = {"particles": particles - 4, "references": 4}
    path = folder / "rig-640x480.yaml"
    path.write_text(yaml.safe_dump(rig))
    return path


def make_protocol(folder: Path, frames: int) -> Path:
    """Baseline, then cycles of 50 s hot / 50 s cold at 10 frames/s over three temperatures,
    `frames` frames in all (rounded to whole cycles)."""
    cycles = max((frames - 100) // 1000, 1)
    per_temperature = max(cycles // 3, 1)
    temps = [377.7, 381.0, 384.9][: min(3, cycles)]
    rest = frames - 100 - per_temperature * len(temps) * 1000
    path = folder / f"bench-{frames}.yaml"
    path.write_text(
        "name: bench\nframe_rate_hz: 10\nsteps:\n"
        f"  - {{kind: baseline, duration_s: {10 + max(rest, 0) / 10:g}}}\n"
        f"  - {{kind: series, temperatures_K: {temps}, cycles: {per_temperature}, "
        "heat_s: 50, cool_s: 50}\n"
    )
    return path


def make_run(folder: Path, frames: int, particles: int = 100) -> Path:
    """A simulated run; stopped early (SIGTERM: the run is aborted with the heater safe, its
    frames kept) if the disk falls below MIN_FREE_GB."""
    run = folder / f"run-{frames}"
    need = frames * FRAME_MB / 1e3
    if free_gb(folder) < MIN_FREE_GB + 1:
        raise SystemExit(f"not enough disk: {free_gb(folder):.0f} GB free")
    if free_gb(folder) - need < MIN_FREE_GB:
        print(f"  the run needs {need:.0f} GB of {free_gb(folder):.0f} GB free: it may stop early")
    rig, protocol = make_rig(folder, particles), make_protocol(folder, frames)
    t = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "tjump", "run", str(protocol), "--rig", str(rig), "-o", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stopped = False
    while child.poll() is None:
        if free_gb(folder) < MIN_FREE_GB:  # stop (SIGTERM aborts the run safely), keep it
            child.send_signal(signal.SIGTERM)
            child.wait()
            stopped = True
            print(f"  stopped early: less than {MIN_FREE_GB:.0f} GB free on the disk")
        time.sleep(2)
    if child.returncode != 0 and not stopped:
        raise SystemExit(f"the run failed: {child.stderr.read().decode() if child.stderr else ''}")
    count = RunDirectory(run).frame_count()
    print(
        f"  (simulated {count} frames of 640 x 480, {particles} particles, "
        f"in {time.perf_counter() - t:.0f} s)"
    )
    return run


def read_bytes() -> int:
    """Bytes this process has made the kernel read from the disk (page cache misses)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    return 0


def read_traces(
    source: Path, x: np.ndarray, y: np.ndarray, baseline: np.ndarray
) -> tuple[float, float, float, float]:
    """(wall s, CPU s, MB read from disk) to read every particle's trace the way
    `tjump analyze` does, and the wall s of the whole, with what `tjump analyze` reads
    before: opening the recording and the mean image of its first 50 frames (detection)."""
    disk, cpu, t = read_bytes(), time.process_time(), time.perf_counter()
    rec = open_recording(source)
    rec.mean_image(0, 50)
    start = time.perf_counter()
    traces = extract_traces(rec.blocks(), rec.frames, x, y, baseline)
    end = time.perf_counter()
    assert np.isfinite(traces.intensity).all()
    return end - start, time.process_time() - cpu, (read_bytes() - disk) / 1e6, end - t


def export(run: Path, store: Path, layout: ZarrLayout, direct: bool = True) -> tuple[float, float]:
    """(wall s, CPU s) of exporting `run` cold, synced; `direct=False`: the TIFF pages read
    through the page cache, as before the export read them with O_DIRECT."""
    drop_cache(run)
    plain = RunDirectory.read_into
    if not direct:
        RunDirectory.read_into = lambda self, pages, out: plain(self, pages, out, direct=False)  # type: ignore[method-assign]
    try:
        t, cpu = time.perf_counter(), time.process_time()
        export_ome_zarr(RunDirectory(run), store, layout)
        os.sync()
        return time.perf_counter() - t, time.process_time() - cpu
    finally:
        RunDirectory.read_into = plain  # type: ignore[method-assign]


def bench_traces(
    folder: Path, frames: int, layouts: bool, source: Path | None, rounds: int
) -> None:
    write_mb, read_mb = disk_speed(folder)
    print(
        f"disk baseline (1 GB file): write {write_mb:.0f} MB/s with fsync, cold read "
        f"{read_mb:.0f} MB/s; load average {os.getloadavg()}"
    )
    run = source or make_run(folder, frames)
    tiff_bytes = sum(p.stat().st_size for p in (run / "frames").glob("*.tif"))
    rec = open_recording(run)
    baseline = rec.mean_image(0, 50)
    found = detect_particles(baseline)
    x, y = found.x, found.y
    print(f"  {rec.frames} frames, {len(x)} particles found, TIFF {tiff_bytes / 1e9:.1f} GB")
    choices = [ZarrLayout()]
    if layouts:
        choices += [
            ZarrLayout(time_chunk=512, tile=16),  # the first default
            ZarrLayout(cname="zstd", clevel=1),  # the earlier codec: 1.6x smaller
            ZarrLayout(cname="blosclz"),
            ZarrLayout(time_chunk=1024, tile=4),
            ZarrLayout(time_last=False),  # chunks (t, y, x), as exports before session 20
        ]
    raw_mb = rec.frames * FRAME_MB
    for k, layout in enumerate(choices):
        store = folder / "run.ome.zarr"
        if k == 0:  # the export as before: the TIFF pages read through the page cache
            before_s, before_cpu = export(run, store, layout, direct=False)
            shutil.rmtree(store)
            print(
                f"  export as before (pages read through the page cache): {before_s:.1f} s = "
                f"{raw_mb / before_s:.0f} MB/s of frames, synced; CPU {before_cpu:.1f} s; "
                f"load {os.getloadavg()}"
            )
        export_s, export_cpu = export(run, store, layout)
        write_after = disk_speed(folder)[0]
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        print(
            f"OME-Zarr {layout.time_chunk} frames x {layout.tile} px, "
            f"{'time-last' if layout.time_last else '(t, y, x)'} chunks, blosc {layout.cname} "
            f"{layout.clevel} {layout.shuffle}: {tiff_bytes / size:.1f}x smaller than the TIFFs"
        )
        print(
            f"  export {export_s:.1f} s = {raw_mb / export_s:.0f} MB/s of frames, synced "
            f"(disk write {write_mb:.0f} MB/s before, {write_after:.0f} MB/s after; goal >= "
            f"it); CPU {export_cpu:.1f} s on {os.cpu_count()} cores; load {os.getloadavg()}"
        )
        # cold reads, TIFF and export in turn, so both see the same load
        tiff, zarr = [], []
        for _ in range(rounds):
            drop_cache(run, store)
            tiff.append(read_traces(run, x, y, baseline))
            drop_cache(run, store)
            zarr.append(read_traces(store, x, y, baseline))
        (t_s, t_cpu, t_mb, t_all), (z_s, z_cpu, z_mb, z_all) = (
            tuple(float(np.median(v)) for v in zip(*side, strict=True)) for side in (tiff, zarr)
        )
        print(
            f"  traces cold, median of {rounds}: TIFF {t_s:.2f} s vs OME-Zarr {z_s:.2f} s = "
            f"{t_s / z_s:.1f}x faster (goal >= 10x); each round "
            + ", ".join(f"{a[0]:.2f}/{b[0]:.2f} s" for a, b in zip(tiff, zarr, strict=True))
        )
        print(
            f"  with opening and the detection image before them: TIFF {t_all:.2f} s (CPU "
            f"{t_cpu:.2f} s, {t_mb:,.0f} MB read) vs OME-Zarr {z_all:.2f} s (CPU {z_cpu:.2f} s, "
            f"{z_mb:,.0f} MB read) = {t_all / z_all:.1f}x faster"
        )
        print(
            f"  at the disk's cold read speed alone: TIFF {t_mb / read_mb:.1f} s, OME-Zarr "
            f"{z_mb / read_mb:.2f} s; load average {os.getloadavg()}"
        )
        shutil.rmtree(store)
    if source is None:
        shutil.rmtree(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--layouts", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--run", type=Path, default=None, help="use this 640 x 480 run")
    parser.add_argument("--rounds", type=int, default=3, help="cold reads of each side")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tjump-bench-zarr-", dir=args.workdir))
    try:
        bench_traces(folder, args.frames, args.layouts, args.run, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
