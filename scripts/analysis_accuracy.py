"""Accuracy of `tjump analyze` against the simulator's truth, on full protocols.

For each variant of the 256 x 256 simulated rig (default; dim: particles half as bright;
noisy: 4x the background light and twice the read noise; faint: particles 5x dimmer and
the noisy sensor) it runs a protocol (default:
paper-ablation, the published series, ablation and a second series 20 K lower), analyses
it, scores it against sim-truth/ and prints, per variant: particles found, events found and
precision, nucleation-time error (frames), and the median relative Ea error of the analysis
beside that of the same censored fit run on the true nucleation times (per series).

    python scripts/analysis_accuracy.py [--protocol configs/protocols/paper.yaml]
        [--variants default,dim,noisy,faint] [--seed 1] [--skip-cycles 0] [--workdir DIR]
        [--keep] [--thermal-response 0.776:0.17,0.224:8.6]

Targets (issue 5): particles >= 95 %, events >= 97 % at >= 99 % precision, median time
error <= 1 frame, Ea error <= 1.25 x that of the fit on the true times. Each paper run writes
~13 GB (paper) or ~27 GB (paper-ablation) of frames, deleted after scoring unless --keep.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tjump.analysis.output import write_analysis
from tjump.analysis.pipeline import analyze_recording
from tjump.analysis.sizing import load_size_calibration
from tjump.analysis.truth import load_truth, score
from tjump.cli.analyze import parse_response

ROOT = Path(__file__).resolve().parent.parent

VARIANTS = {
    "default": "",
    "dim": "    peak_fraction_at_100nm: 0.025\n",
    "noisy": "",
    "faint": "    peak_fraction_at_100nm: 0.01\n",
}
NOISY_SENSOR = "    background_e: 160.0\n    read_noise_e: 30.0\n"


def rig_file(folder: Path, variant: str, seed: int) -> Path:
    sample = VARIANTS[variant]
    sensor = NOISY_SENSOR if variant in ("noisy", "faint") else ""
    text = f"""name: sim-small-{variant}
kind: simulated
ambient_K: 293.0
calibration: {ROOT / "configs" / "calibrations" / "heater-sim.csv"}
limits:
  max_temperature_K: 480.0
  max_drive_V: 1.8
  max_current_A: 0.08
  max_time_above: {{temperature_K: 400.0, seconds: 300.0}}
camera: {{exposure_ms: 50.0, max_frame_rate_hz: 200.0, pixel_size_um: 0.37}}
daq: {{sample_rate_hz: 200.0}}
simulation:
  seed: {seed}
  sample:
    particles: 18
    references: 2
{sample}  sensor:
    width: 256
    height: 256
{sensor}"""
    path = folder / f"rig-{variant}.yaml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--protocol", type=Path, default=ROOT / "configs" / "protocols" / "paper-ablation.yaml"
    )
    parser.add_argument("--variants", default="default,dim,noisy")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-cycles", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--thermal-response",
        default=None,
        help="weight:tau pairs (0.776:0.17,0.224:8.6 for the simulator): lag-aware fits",
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tjump-accuracy-"))
    work.mkdir(parents=True, exist_ok=True)
    calibration = load_size_calibration(ROOT / "configs" / "calibrations" / "size-sim.csv")
    results = {}
    for variant in args.variants.split(","):
        run = work / f"run-{variant}"
        if not run.exists():
            t = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tjump",
                    "run",
                    str(args.protocol),
                    "--rig",
                    str(rig_file(work, variant, args.seed)),
                    "-o",
                    str(run),
                    "--seed",
                    str(args.seed),
                ],
                check=True,
                capture_output=True,
            )
            print(f"[{variant}] simulated in {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        analysis = analyze_recording(
            run,
            calibration,
            skip_cycles=args.skip_cycles,
            response=parse_response(args.thermal_response) if args.thermal_response else None,
        )
        elapsed = time.perf_counter() - t
        write_analysis(analysis, work / f"analysis-{variant}")
        s = score(analysis, load_truth(run / "sim-truth"))
        s["analysis_s"] = elapsed
        s["frames"] = analysis.recording.frames
        results[variant] = s
        print(f"[{variant}] {json.dumps(s)}", flush=True)
        if not args.keep:
            shutil.rmtree(run)
    print()
    print(
        "variant   frames  particles  events  precision  t-err med/p95 (frames)  "
        "Ea rel. err: analysis vs true times (per series)"
    )
    for variant, s in results.items():
        ea = "; ".join(
            f"s{k}: {v['median_rel_error_analysis']:.3f} vs {v['median_rel_error_true_times']:.3f}"
            f" (n={v['particles']})"
            for k, v in s["ea"].items()
            if v["median_rel_error_analysis"] is not None
        )
        print(
            f"{variant:8s} {s['frames']:7d}  {s['particles_found_fraction']:8.1%}  "
            f"{s['events_found_fraction']:6.1%}  {s['events_precision']:8.2%}  "
            f"{s['median_time_error_frames']:.3f} / {s['p95_time_error_frames']:.3f}"
            f"              {ea}"
        )
    if not args.keep and args.workdir is None:
        print(f"analyses kept in {work}")


if __name__ == "__main__":
    main()
