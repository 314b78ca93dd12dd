"""How well the live nucleation detector agrees with the offline analysis on one run.

Runs the offline analysis on a run directory, then feeds its traces frame by frame, with
the run's frame records, to `LiveDetector` (as the GUI does) for a few `confirm_frames`
settings, and prints: offline events matched live, live events offline did not keep, the
time difference of matched events (median, 90th percentile, largest) and the latency (frames
from the change to its confirmation). Without a run directory it records the demo protocol
on the sim-small rig first.

    python scripts/live_agreement.py [RUN] [--confirm 1 3 5] [--seed 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from tjump.analysis.live import replay
from tjump.analysis.model import Analysis
from tjump.analysis.pipeline import analyze_recording
from tjump.sequencer import plan_run, run_plan
from tjump.sim.rig import install
from tjump.storage import RunDirectory

install()  # simulated rig files can be read and built

ROOT = Path(__file__).resolve().parent.parent


def agreement(analysis: Analysis, table: list[dict[str, str]], confirm: int) -> str:
    replayed = replay(analysis, table, confirm)
    seen = replayed.nucleation_s
    latency = [e.seen_frame - e.frame for e in replayed.events]
    offline = analysis.events.nucleation_s
    both = np.isfinite(seen) & np.isfinite(offline)
    extra = int((np.isfinite(seen) & ~np.isfinite(offline)).sum())
    dt = np.abs(seen[both] - offline[both]) * 1e3
    return (
        f"confirm {confirm}: {both.sum()} of {np.isfinite(offline).sum()} offline events "
        f"matched ({both.sum() / max(np.isfinite(offline).sum(), 1):.1%}), {extra} live only; "
        f"|dt| median {np.median(dt):.1f} ms, p90 {np.percentile(dt, 90):.1f} ms, "
        f"max {dt.max():.1f} ms; latency median {np.median(latency):.0f}, "
        f"max {max(latency)} frames"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?")
    parser.add_argument("--confirm", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run
        if run is None:
            run = Path(tmp) / "run"
            protocol = ROOT / "configs" / "protocols" / "demo.yaml"
            rig = ROOT / "configs" / "rigs" / "sim-small.yaml"
            run_plan(plan_run(protocol, rig), run, seed=args.seed)
        analysis = analyze_recording(run)
        table = RunDirectory(run).frames_table()
        print(f"{run}: {analysis.recording.frames} frames, {len(analysis.detections)} particles")
        for confirm in args.confirm:
            print(agreement(analysis, table, confirm))


if __name__ == "__main__":
    main()
