"""Many runs analysed on the local Dask cluster against one after another.

R runs (default 20) of F frames (default 20,000: one temperature set of the paper protocol's
cycles, 50 s / 50 s at 10 frames/s) on the 256 x 256 sim-small rig. To spare the disk, D
distinct runs (default 4, seeds 1..D) are simulated and the folder of R runs holds each of
them R/D times (symbolic links: the same work per run). Then:

1. baseline: every run analysed one after another in one process (the single-run analysis,
   figures included; no import or cluster costs);
2. `tjump analyze FOLDER -o OUT` in a child process: the local Dask cluster, one worker per
   core, start-up included.

Prints both wall times, the speed-up, each run's time inside the cluster, and a projection
for N workers: start-up + ceil(R / N) x (one run alone), with the disk bandwidth N workers
would need.

    python scripts/bench_batch.py [--runs 20] [--frames 20000] [--distinct 4] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tjump.analysis.batch import BatchOptions, analyze_one

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "configs" / "rigs" / "sim-small.yaml"


def make_runs(folder: Path, distinct: int, frames: int) -> list[Path]:
    """`distinct` simulated runs of about `frames` frames, two simulated at a time."""
    cycles = max((frames - 100) // 3000, 1)
    protocol = folder / "bench.yaml"
    protocol.write_text(
        "name: bench\nframe_rate_hz: 10\nsteps:\n"
        f"  - {{kind: baseline, duration_s: {10 + max(frames - 100 - cycles * 3000, 0) / 10:g}}}\n"
        f"  - {{kind: series, temperatures_K: [377.7, 381.0, 384.9], cycles: {cycles}, "
        "heat_s: 50, cool_s: 50}\n"
    )
    runs = [folder / f"sample{seed}" for seed in range(1, distinct + 1)]
    t = time.perf_counter()
    pending: list[subprocess.Popen[bytes]] = []
    for seed, run in enumerate(runs, start=1):
        if len(pending) == 2:
            pending.pop(0).wait()
        cmd = [sys.executable, "-m", "tjump", "run", str(protocol), "--rig", str(RIG)]
        cmd += ["-o", str(run), "--seed", str(seed)]
        pending.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in pending:
        p.wait()
    for run in runs:
        if not (run / "frames.csv").is_file():
            raise SystemExit(f"simulating {run} failed")
    lines = sum(1 for _ in (runs[0] / "frames.csv").open()) - 1
    print(f"  (simulated {distinct} runs of {lines} frames in {time.perf_counter() - t:.0f} s)")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tjump-bench-batch-", dir=args.workdir))
    try:
        distinct = make_runs(base, min(args.distinct, args.runs), args.frames)
        folder = base / "runs"
        folder.mkdir()
        for k in range(args.runs):
            (folder / f"run{k:02d}").symlink_to(distinct[k % len(distinct)])
        sources = sorted(folder.iterdir())
        run_bytes = sum(p.stat().st_size for p in (distinct[0] / "frames").glob("*.tif"))
        cores = os.cpu_count() or 1
        print(
            f"{args.runs} runs, {cores} cores; each run {run_bytes / 1e9:.2f} GB of TIFF; "
            f"load average {os.getloadavg()}"
        )

        t = time.perf_counter()
        alone = []
        for source in sources:
            outcome = analyze_one(source, base / "serial" / source.name, BatchOptions())
            assert outcome.ok, outcome.error
            alone.append(outcome.seconds)
        serial = time.perf_counter() - t
        print(
            f"one after another: {serial:.0f} s ({serial / args.runs:.1f} s a run, "
            f"min {min(alone):.1f} s); load average {os.getloadavg()}"
        )

        out = base / "dask"
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tjump", "analyze", str(folder), "-o", str(out)],
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - t
        with (out / "runs.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert all(r["status"] == "ok" for r in rows) and len(rows) == args.runs
        inside = [float(r["seconds"]) for r in rows]
        per_worker = sum(inside) / cores
        startup = max(wall - per_worker, 0.0)
        print(
            f"local Dask cluster, {cores} workers: {wall:.0f} s wall = {serial / wall:.2f}x "
            f"the serial time; a run takes {sum(inside) / len(inside):.1f} s inside a worker "
            f"(vs {serial / args.runs:.1f} s alone), start-up and summary ~{startup:.0f} s; "
            f"load average {os.getloadavg()}"
        )
        one = min(alone)
        serial_share = startup / (startup + sum(alone))
        print(
            "projection (each worker its own core; one run alone as measured above; the "
            f"serial part, start-up and summary, is {100 * serial_share:.1f} % of the work):"
        )
        for n in (2, 4, 8, 16, 32, 64):
            wall_n = startup + math.ceil(args.runs / n) * one
            print(
                f"  {n:3d} workers: {wall_n:6.0f} s, {serial / wall_n:5.1f}x; disk read "
                f"{min(n, args.runs) * run_bytes / one / 1e6:,.0f} MB/s"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
