"""`tjump analyze` peak memory on long 640 x 480 runs, extrapolated to 200,000 frames.

Makes runs of the given lengths on the simulated rig (100 particles, 640 x 480, cycles of
50 s / 50 s at 10 frames/s; 50,000 frames are about 31 GB of TIFF, more than this machine's
RAM), then runs `tjump analyze` on each in a child process with a cold page cache and
samples the child's memory every 0.2 s: peak resident memory (VmHWM, which also counts the
pages of memory-mapped TIFF files the kernel keeps resident) and peak anonymous memory
(RssAnon: what the analysis itself holds; file pages can be dropped by the kernel at any
time). The growth per frame between the shortest and the longest run gives the figure at
200,000 frames. Goal: peak under 2 GB.

Disk: a run is stopped (SIGTERM: aborted with the heater safe, its frames kept) if the disk
falls below 12 GB free or at `--until` (UTC, HH:MM); every run is deleted at the end, also
on failure, unless `--keep`. `--run DIR` analyses existing runs instead of making them.

    python scripts/bench_memory.py [--sizes 5000,50000] [--until 05:00] [--workdir DIR]
    python scripts/bench_memory.py --run RUN [--run RUN ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_zarr import FRAME_MB, drop_cache, free_gb, make_protocol, make_rig
from tjump.storage import RunDirectory

TARGET_FRAMES = 200_000
MIN_FREE_GB = 12.0  # the disk is shared: stop a run before it fills


def deadline(until: str | None) -> float:
    """The epoch time of `until` (HH:MM UTC, today), or infinity."""
    if not until:
        return float("inf")
    hour, minute = (int(v) for v in until.split(":"))
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0).timestamp()


def make_run(folder: Path, frames: int, stop_at: float) -> Path:
    """A simulated 640 x 480 run of `frames` frames with 100 particles; stopped early
    (SIGTERM aborts it safely, its frames kept) when the disk runs low or at `stop_at`."""
    run = folder / f"run-{frames}"
    need = frames * FRAME_MB / 1e3
    print(f"making {frames} frames ({need:.0f} GB) with {free_gb(folder):.0f} GB free", flush=True)
    if free_gb(folder) - need < MIN_FREE_GB:
        print(f"  the run may stop early: the disk keeps {MIN_FREE_GB:.0f} GB free", flush=True)
    rig, protocol = make_rig(folder, 100), make_protocol(folder, frames)
    t = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "tjump", "run", str(protocol), "--rig", str(rig), "-o", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stopped = ""
    try:
        while child.poll() is None:
            if not stopped and free_gb(folder) < MIN_FREE_GB:
                stopped = f"less than {MIN_FREE_GB:.0f} GB free on the disk"
            elif not stopped and time.time() > stop_at:
                stopped = "the time limit"
            if stopped:
                child.send_signal(signal.SIGTERM)
                child.wait()
            time.sleep(2)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait()
    if child.returncode != 0 and not stopped:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"the run failed: {err}")
    count = RunDirectory(run).frame_count()
    wall = time.perf_counter() - t
    note = f", stopped early at {stopped}" if stopped else ""
    print(f"  simulated {count} frames in {wall:.0f} s ({count / wall:.0f} frames/s){note}")
    return run


def _status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon, RssFile of a process, in kB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0])
    return values


def analyze_peak(source: Path, out: Path) -> tuple[float, float, float]:
    """(peak resident MB (VmHWM), peak anonymous MB, wall s) of `tjump analyze SOURCE`,
    cold page cache."""
    drop_cache(source)
    t = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "tjump", "analyze", str(source), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    hwm = anon = 0
    while child.poll() is None:
        try:
            status = _status(child.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        hwm = max(hwm, status.get("VmHWM", 0))
        anon = max(anon, status.get("RssAnon", 0))
        time.sleep(0.2)
    child.wait()
    wall = time.perf_counter() - t
    if child.returncode != 0:
        err = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"tjump analyze {source} failed:\n{err}")
    shutil.rmtree(out, ignore_errors=True)
    return hwm / 1024, anon / 1024, wall


def report(points: list[tuple[int, float, float]]) -> None:
    for what, i in (("resident (VmHWM)", 1), ("anonymous", 2)):
        (n0, p0), (n1, p1) = (points[0][0], points[0][i]), (points[-1][0], points[-1][i])
        slope = (p1 - p0) / (n1 - n0)
        print(
            f"peak {what}: {slope * 1000:+.2f} MB per 1,000 frames; at {TARGET_FRAMES:,} "
            f"frames: {p1 + slope * (TARGET_FRAMES - n1):.0f} MB (goal < 2,048 MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000", help="run lengths to make")
    parser.add_argument("--run", type=Path, action="append", help="analyse these runs instead")
    parser.add_argument("--until", default=None, help="stop making runs at HH:MM UTC")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the runs made")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}; {free_gb(Path(args.workdir or '/tmp')):.0f} GB free")
    floor = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tjump.analysis.pipeline, tjump.cli\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    print(
        f"baseline: importing tjump's analysis and CLI peaks at {int(floor.stdout) / 1024:.0f} MB"
    )
    folder = Path(tempfile.mkdtemp(prefix="tjump-bench-memory-", dir=args.workdir))
    points = []
    try:
        runs = args.run or [
            make_run(folder, int(n), deadline(args.until)) for n in args.sizes.split(",")
        ]
        for run in runs:
            count = RunDirectory(run).frame_count()
            size = sum(p.stat().st_size for p in (run / "frames").glob("*.tif")) / 1e9
            hwm, anon, wall = analyze_peak(run, folder / "analysis")
            points.append((count, hwm, anon))
            print(
                f"tjump analyze, {count} frames of 640 x 480 ({size:.1f} GB of TIFF), cold: "
                f"peak resident {hwm:.0f} MB, anonymous {anon:.0f} MB, {wall:.0f} s "
                f"({count / wall:.0f} frames/s); load average {os.getloadavg()}",
                flush=True,
            )
        points.sort()
        if len(points) > 1:
            report(points)
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
