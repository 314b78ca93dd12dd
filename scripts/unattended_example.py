"""Unattended work from Python: build a protocol, run it with callbacks, analyse the result.

Runs on the simulated rig (CI runs it too):

    python scripts/unattended_example.py [--rig configs/rigs/sim-small.yaml] [-o runs/example]

The same calls drive the lab rig: pass its rig file instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from tjump.analysis.output import write_analysis
from tjump.analysis.pipeline import analyze_recording
from tjump.protocol import Protocol
from tjump.protocol.schedule import Segment, SegmentKind
from tjump.protocol.schema import BaselineStep, SeriesStep
from tjump.sequencer import Progress, open_run, plan_run
from tjump.sim.rig import install
from tjump.storage import RunDirectory

install()  # simulated rig files can be read and built

ROOT = Path(__file__).resolve().parent.parent


def build_protocol(temperatures: list[float], cycles: int) -> Protocol:
    """Baseline, then `cycles` jumps of 15 s hot / 10 s cold at each temperature."""
    return Protocol(
        name="example",
        frame_rate_hz=10,
        steps=[
            BaselineStep(kind="baseline", duration_s=5),
            SeriesStep(
                kind="series", temperatures_K=temperatures, cycles=cycles, heat_s=15, cool_s=10
            ),
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", type=Path, default=ROOT / "configs/rigs/sim-small.yaml")
    parser.add_argument("-o", "--output", type=Path, default=None)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp()) / "example"

    # 1. a protocol built in Python, checked against the rig before anything moves
    plan = plan_run(build_protocol([377.7, 384.9], args.cycles), args.rig)
    print(
        f"{len(plan.schedule.segments)} segments, {plan.schedule.duration_s:.0f} s, "
        f"{plan.schedule.total_frames} frames"
    )

    # 2. run it; callbacks see every step and the progress (in the acquisition thread)
    def on_segment(segment: Segment) -> None:
        if segment.kind is SegmentKind.HEAT:
            print(f"  jump to {segment.setpoint_K} K, cycle {segment.cycle}")

    def on_progress(p: Progress) -> None:
        if p.frames_done == p.frames_total:
            print(f"  all {p.frames_total} frames taken")

    runner = open_run(plan, output)  # pause(), resume() and abort() work from any thread
    runner.events.segment_started.connect(on_segment)
    runner.events.progress.connect(on_progress)
    result = runner.start().wait()
    print(f"{result.status}: {result.frames} frames in {result.wall_s:.1f} s -> {output}")

    # 3. the result: every frame on disk, then particles, events and activation energies
    run = RunDirectory(output)
    assert run.frame_count() == len(run.frames_table()) == result.frames
    analysis = analyze_recording(output)
    write_analysis(analysis, output.parent / "analysis", figures=False)
    switched = np.isfinite(analysis.events.nucleation_s).any(axis=1)
    ea = np.array([fit.ea_kj_mol for fit in analysis.fits[analysis.series[0]]])
    print(
        f"{len(analysis.detections)} particles found, {int(switched.sum())} switched at "
        f"least once; median Ea {np.nanmedian(ea):.0f} kJ/mol -> {output.parent / 'analysis'}"
    )


if __name__ == "__main__":
    main()
