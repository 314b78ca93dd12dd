"""How fast the analysis reads traces, and `tjump analyze` end to end.

1. Trace extraction: a run-directory-like stack (1,000 one-page-per-frame TIFF files per
   chunk, as `tjump run` writes them) of N frames at 256 x 256 with 20 particles and at
   640 x 480 with 100 particles, read with the memory-mapped patch reader, file in the page
   cache (one warm-up pass first). Goals: >= 50,000 and >= 10,000 frames/s.
2. End to end: `tjump analyze` (in a child process, figures included) on one temperature of
   the paper protocol (20 cycles of 50 s / 50 s, 20,000 frames, 256 x 256 simulated rig);
   wall time and peak memory. Goals: < 10 s, < 1 GB.

    python scripts/bench_analysis.py [--frames 20000] [--skip-e2e] [--keep DIR]

Everything is written under a temporary folder (or --keep DIR) and removed afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

from tjump.analysis import detect_particles
from tjump.analysis.recording import Recording, open_tiff
from tjump.analysis.traces import extract_traces

ROOT = Path(__file__).resolve().parent.parent


def write_stack(folder: Path, frames: int, shape: tuple[int, int], particles: int) -> Path:
    """Chunks of 1,000 pages with Gaussian spots on Poisson noise (a pool of 20 frames
    reused: the reader's speed does not depend on the pixel values)."""
    rng = np.random.default_rng(0)
    h, w = shape
    pool = rng.poisson(117, (20, h, w)).astype(np.uint16)
    yy, xx = np.mgrid[:h, :w]
    xs = rng.uniform(10, w - 10, particles)
    ys = rng.uniform(10, h - 10, particles)
    image = np.zeros(shape)
    for x, y in zip(xs, ys, strict=True):
        image += 3000 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 0.76**2))
    pool += image.astype(np.uint16)
    (folder / "frames").mkdir(parents=True)
    for start in range(0, frames, 1000):
        with tifffile.TiffWriter(folder / "frames" / f"{start:06d}.tif") as tif:
            for k in range(start, min(start + 1000, frames)):
                tif.write(pool[k % len(pool)], contiguous=False, metadata=None)
    return folder


def bench_traces(folder: Path, frames: int) -> tuple[float, int]:
    files = [open_tiff(p) for p in sorted((folder / "frames").glob("*.tif"))]
    assert all(f.first_offset is not None for f in files)
    rec = Recording(
        folder, files, np.arange(frames) * 0.1, np.full(frames, 293.0), None, None, 0.1, 0.05
    )
    baseline = rec.mean_image(0, 20)
    found = detect_particles(baseline)
    best = np.inf
    for _ in range(2):  # the first pass warms the page cache
        t = time.perf_counter()
        traces = extract_traces(rec.blocks(), frames, found.x, found.y, baseline)
        best = min(best, time.perf_counter() - t)
    assert np.isfinite(traces.intensity).all()
    return frames / best, len(found)


def bench_end_to_end(folder: Path) -> None:
    run = folder / "run"
    protocol = folder / "one-temperature.yaml"
    protocol.write_text(
        "name: bench\nframe_rate_hz: 10\nsteps:\n"
        "  - {kind: baseline, duration_s: 10}\n"
        "  - {kind: series, temperatures_K: [377.7], cycles: 20, heat_s: 50, cool_s: 49.9}\n"
    )
    t = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tjump",
            "run",
            str(protocol),
            "--rig",
            str(ROOT / "configs" / "rigs" / "sim-small.yaml"),
            "-o",
            str(run),
        ],
        check=True,
        capture_output=True,
    )
    print(f"  (simulated the 20,000-frame run in {time.perf_counter() - t:.0f} s)")
    # the child reports its own peak memory, VmHWM (ru_maxrss would carry over this
    # process's size from the fork)
    child = (
        "import sys\n"
        "from tjump.cli import main\n"
        "sys.argv = ['tjump', 'analyze', sys.argv[1], '-o', sys.argv[2]]\n"
        "try:\n"
        "    main()\n"
        "finally:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
        "    print(hwm[0].split()[1], file=sys.stderr)\n"
    )
    for _ in range(2):  # second timing with the frames in the page cache
        out = folder / "analysis"
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", child, str(run), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
        shutil.rmtree(out)
    frames = sum(1 for _ in (run / "frames.csv").open()) - 1
    print(
        f"  tjump analyze, {frames} frames of 256 x 256, 20 particles, figures and report: "
        f"{wall:.1f} s wall, peak memory {peak_mb:.0f} MB "
        "(goals: < 10 s, < 1 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="tjump-bench-analysis-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        print("trace extraction (memory-mapped patches, warm page cache):")
        for name, shape, particles, goal in [
            ("256x256", (256, 256), 20, 50_000),
            ("640x480", (480, 640), 100, 10_000),
        ]:
            folder = base / name
            if not folder.exists():
                write_stack(folder, args.frames, shape, particles)
            rate, found = bench_traces(folder, args.frames)
            print(
                f"  {name}, {found} particles, {args.frames} frames: {rate:,.0f} frames/s "
                f"(goal >= {goal:,})"
            )
            if args.keep is None:
                shutil.rmtree(folder)
        if not args.skip_e2e:
            print("end to end:")
            bench_end_to_end(base)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
