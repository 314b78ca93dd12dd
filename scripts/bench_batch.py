"""Many runs analysed on the local Dask cluster against one after another.

R runs (default 20) of F frames (default 20,000: one temperature set of the paper protocol's
cycles, 50 s / 50 s at 10 frames/s) on the 256 x 256 sim-small rig. To spare the disk, D
distinct runs (default 4, seeds 1..D) are simulated and the folder of R runs holds each of
them R/D times (symbolic links: the same work per run). Then:

1. baseline: every run analysed one after another in one process (the single-run analysis,
   figures included; no import or cluster costs);
2. `tjump analyze FOLDER -o OUT` in a child process: the local Dask cluster, one worker per
   core, start-up included.

Prints both wall times, the speed-up, processor seconds and page faults per run on each side
(children included), each run's time inside the cluster, the serial part (cluster start-up
with tjump imported in each worker, and the summary, measured apart), and a projection for N
workers each on its own core: start-up + summary + ceil(R / N) x (a run's processor seconds
in the cluster), with the disk bandwidth N workers would need. `--dask-defaults` also runs
the runs on a local cluster as Dask makes it (its workers' MALLOC_TRIM_THRESHOLD_ and
profiler), as tjump's was before it set `tjump.cli.batch.WORKER_CONFIG`.

    python scripts/bench_batch.py [--runs 20] [--frames 20000] [--distinct 4] [--workdir DIR]
                                  [--dask-defaults]
"""

from __future__ import annotations

import argparse
import csv
import importlib
import logging
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tjump.analysis.batch import BatchOptions, analyze_one, run_batch
from tjump.analysis.batch_summary import write_batch_summary

ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "configs" / "rigs" / "sim-small.yaml"
MALLOC = "MALLOC_TRIM_THRESHOLD_"


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


def usage() -> tuple[float, int]:
    """(processor seconds, minor page faults) of this process and its reaped children."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, me.ru_minflt + kids.ru_minflt


def cluster_overhead() -> float:
    """Seconds to start the local cluster with tjump imported in every worker, and stop it."""
    from distributed import Client

    from tjump.cli.batch import local_cluster

    t = time.perf_counter()
    with local_cluster(None) as cluster, Client(cluster) as client:
        client.run(importlib.import_module, "tjump.analysis.batch")
    return time.perf_counter() - t


def on_cluster(
    folder: Path, out: Path, runs: int, env: dict[str, str]
) -> tuple[float, float, int, list[float]]:
    """`tjump analyze FOLDER -o OUT` in a child process: (wall, processor seconds, minor
    faults, each run's seconds inside its worker)."""
    cpu, faults = usage()
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tjump", "analyze", str(folder), "-o", str(out)],
        check=True,
        capture_output=True,
        env=env,
    )
    wall = time.perf_counter() - t
    cpu_after, faults_after = usage()
    with (out / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert all(r["status"] == "ok" for r in rows) and len(rows) == runs
    return wall, cpu_after - cpu, faults_after - faults, [float(r["seconds"]) for r in rows]


def with_dask_defaults(sources: list[Path], out: Path) -> tuple[float, float, int, list[float]]:
    """The same runs and summary on a local cluster as Dask makes it (as tjump's was before
    `WORKER_CONFIG`), in this process: (wall, processor seconds, minor faults, each run's
    seconds inside its worker)."""
    from distributed import Client, LocalCluster

    cpu, faults = usage()
    t = time.perf_counter()
    with (
        LocalCluster(
            n_workers=os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        outcomes = run_batch(sources, out, BatchOptions(), client)
    write_batch_summary(outcomes, out, figures=True)
    wall = time.perf_counter() - t
    cpu_after, faults_after = usage()
    assert all(o.ok for o in outcomes)
    return wall, cpu_after - cpu, faults_after - faults, [o.seconds for o in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--distinct", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--dask-defaults",
        action="store_true",
        help="also run a local cluster as Dask makes it (its MALLOC_TRIM_THRESHOLD_=65536 and "
        "worker profiler), as tjump's was before",
    )
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
            f"{args.runs} runs, {cores} cores; each run {run_bytes / 1e9:.2f} GB of TIFF "
            f"(in the page cache: {len(distinct)} distinct runs); load average {os.getloadavg()}"
        )

        cpu, faults = usage()
        t = time.perf_counter()
        outcomes = []
        for source in sources:
            outcomes.append(analyze_one(source, base / "serial" / source.name, BatchOptions()))
            assert outcomes[-1].ok, outcomes[-1].error
        serial = time.perf_counter() - t
        cpu_after, faults_after = usage()
        serial_cpu = (cpu_after - cpu) / args.runs
        alone = [o.seconds for o in outcomes]
        print(
            f"one after another: {serial:.0f} s ({serial / args.runs:.1f} s a run, "
            f"min {min(alone):.1f} s; {serial_cpu:.1f} CPU-s and "
            f"{(faults_after - faults) / args.runs / 1e3:.0f} k page faults a run); "
            f"load average {os.getloadavg()}"
        )
        cpu, t = usage()[0], time.perf_counter()
        write_batch_summary(outcomes, base / "serial", figures=True)
        summary = time.perf_counter() - t
        startup = cluster_overhead()
        fixed_cpu = usage()[0] - cpu
        print(
            f"serial part: cluster start-up and stop {startup:.1f} s, summary {summary:.1f} s "
            f"({fixed_cpu:.1f} CPU-s together)"
        )

        variants = ["Dask's defaults (before)"] if args.dask_defaults else []
        variants.append("tjump's workers")
        inside: list[float] = []
        for k, name in enumerate(variants):
            if name.startswith("Dask"):
                wall, cpu, faults, inside = with_dask_defaults(sources, base / f"dask{k}")
            else:  # a Dask cluster in this process left its worker settings in os.environ
                env = {k: v for k, v in os.environ.items() if k != MALLOC}
                wall, cpu, faults, inside = on_cluster(folder, base / f"dask{k}", args.runs, env)
            print(
                f"local Dask cluster, {cores} workers, {name}: {wall:.0f} s wall = "
                f"{serial / wall:.2f}x one after another; {cpu / args.runs:.1f} CPU-s and "
                f"{faults / args.runs / 1e3:.0f} k page faults a run (vs {serial_cpu:.1f} alone); "
                f"a run takes {statistics.median(inside):.1f} s inside a worker; "
                f"load average {os.getloadavg()}"
            )
            shutil.rmtree(base / f"dask{k}", ignore_errors=True)
        per_run = (cpu - fixed_cpu) / args.runs  # the last variant: what the command does now
        fixed = startup + summary
        print(
            f"projection: each worker its own idle core, a run {per_run:.1f} CPU-s as measured in "
            f"the cluster less the serial part's, start-up and summary {fixed:.0f} s; "
            "one after another "
            f"{args.runs * serial_cpu:.0f} s at {serial_cpu:.1f} CPU-s a run:"
        )
        for n in (2, 4, 8, 16, 32, 64):
            wall_n = fixed + math.ceil(args.runs / n) * per_run
            print(
                f"  {n:3d} workers: {wall_n:6.0f} s, {args.runs * serial_cpu / wall_n:5.1f}x; "
                f"disk read {min(n, args.runs) * run_bytes / per_run / 1e6:,.0f} MB/s"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
