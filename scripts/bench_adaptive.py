"""Closed loop against fixed: the published series on the simulated rig, run as published
(every heat 50 s, 20 cycles per temperature) and with adaptive holds and series, side by
side on the same sample (same seed): experiment time, and the median relative error of the
activation energies `tjump analyze` finds, against the simulator's truth.

    python scripts/bench_adaptive.py [--seeds 1,2] [--workdir DIR] [--keep]
        [--end-when-switched 0.9] [--min-hold 5] [--precision 0.1] [--min-cycles 10]
        [--shape 8] [--size 160]

Goal (issue 13): at least 30 % less experiment time, Ea error no worse. Each run writes
about 5 GB of 160 x 160 frames (the published series is 100,000 frames), deleted after
scoring unless --keep.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.truth import load_truth, score
from tjump.sequencer import open_run, plan_run
from tjump.sim.rig import install

ROOT = Path(__file__).resolve().parent.parent
PAPER = ROOT / "configs" / "protocols" / "paper.yaml"


def rig_file(folder: Path, seed: int, size: int) -> Path:
    """sim-small's sample (18 particles, 2 references) on a `size` x `size` field."""
    text = (ROOT / "configs" / "rigs" / "sim-small.yaml").read_text()
    text = text.replace("../calibrations/", f"{ROOT / 'configs' / 'calibrations'}/")
    text = text.replace("  seed: 1", f"  seed: {seed}")
    text = text.replace("width: 256", f"width: {size}").replace("height: 256", f"height: {size}")
    path = folder / f"rig-{seed}.yaml"
    path.write_text(text)
    return path


def adaptive_protocol(folder: Path, args: argparse.Namespace) -> Path:
    """The published series with an adaptive hold and adaptive cycles."""
    text = PAPER.read_text().replace("name: paper", "name: paper-adaptive")
    text += (
        f"    adaptive_hold: {{end_when_switched: {args.end_when_switched}, "
        f"min_hold_s: {args.min_hold}}}\n"
        f"    adaptive_cycles: {{target_relative_precision: {args.precision}, "
        f"min_cycles: {args.min_cycles}, waiting_time_shape: {args.shape}}}\n"
    )
    path = folder / "paper-adaptive.yaml"
    path.write_text(text)
    return path


def run_and_score(protocol: Path, rig: Path, out: Path, keep: bool) -> dict[str, Any]:
    """Run `protocol`, analyse it, score the Ea against the truth."""
    t = time.perf_counter()
    result = open_run(plan_run(protocol, rig), out).run()
    simulated = time.perf_counter() - t
    t = time.perf_counter()
    analysis = analyze_recording(out)
    analysed = time.perf_counter() - t
    scored = score(analysis, load_truth(out / "sim-truth"))
    ea = scored["ea"]["1"]
    if not keep:
        shutil.rmtree(out)
    return {
        "status": str(result.status),
        "experiment_s": result.experiment_s,
        "frames": result.frames,
        "cycles": len(analysis.cycles),
        "particles": ea["particles"],
        "ea_error": ea["median_rel_error_analysis"],
        "ea_error_true_times": ea["median_rel_error_true_times"],
        "simulated_s": simulated,
        "analysed_s": analysed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--end-when-switched", type=float, default=0.9)
    parser.add_argument("--min-hold", type=float, default=5.0)
    parser.add_argument("--precision", type=float, default=0.1)
    parser.add_argument("--min-cycles", type=int, default=10)
    parser.add_argument("--shape", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()
    install()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tjump-adaptive-"))
    work.mkdir(parents=True, exist_ok=True)
    adaptive = adaptive_protocol(work, args)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rig = rig_file(work, seed, args.size)
        for name, protocol in (("fixed", PAPER), ("adaptive", adaptive)):
            r = run_and_score(protocol, rig, work / f"run-{name}-{seed}", args.keep)
            rows.append((seed, name, r))
            print(f"[seed {seed}, {name}] {r}", flush=True)
    print()
    print(
        "seed  protocol   status    experiment (s)  frames   cycles  Ea err (analysis / true times)"
    )
    for seed, name, r in rows:
        print(
            f"{seed:4d}  {name:9s}  {r['status']:8s}  {r['experiment_s']:14.0f}  "
            f"{r['frames']:6d}  {r['cycles']:6d}  {r['ea_error']:.4f} / "
            f"{r['ea_error_true_times']:.4f}  (n={r['particles']})"
        )
    for seed in sorted({s for s, _, _ in rows}):
        fixed = next(r for s, n, r in rows if s == seed and n == "fixed")
        adapt = next(r for s, n, r in rows if s == seed and n == "adaptive")
        saved = 1.0 - adapt["experiment_s"] / fixed["experiment_s"]
        print(
            f"seed {seed}: adaptive takes {saved:.0%} less experiment time; median Ea error "
            f"{adapt['ea_error']:.4f} against {fixed['ea_error']:.4f} fixed"
        )


if __name__ == "__main__":
    main()
