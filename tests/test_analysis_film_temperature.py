"""`tjump analyze` fits against the film's temperature when the run recorded its heater's
step response: nearer the simulator's barriers than the setpoint fit."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tjump.sequencer import plan_run, run_plan

from conftest import rig_yaml

PROTOCOL = """
name: two-temperatures
frame_rate_hz: 10
steps:
  - kind: baseline
    duration_s: 5
  - kind: series
    temperatures_K: [374.3, 381.0, 384.9]
    cycles: 6
    heat_s: 30
    cool_s: 8
"""


def median_ea(folder: Path) -> float:
    with (folder / "particles.csv").open() as f:
        values = [float(r["ea_kj_mol"]) for r in csv.DictReader(f) if r["ea_kj_mol"]]
    return float(np.median(values))


def test_recorded_step_response_is_used_unless_setpoints_are_asked_for(tmp_path: Path) -> None:
    (tmp_path / "rig.yaml").write_text(rig_yaml(width=96, height=96, particles=8, references=1))
    (tmp_path / "p.yaml").write_text(PROTOCOL)
    run = tmp_path / "run"
    run_plan(plan_run(tmp_path / "p.yaml", tmp_path / "rig.yaml"), run)
    recorded = json.loads((run / "manifest.json").read_text())["heater_step_response"]
    assert recorded == [[0.776, 0.17], [0.224, 8.6]]  # the simulated film's own
    for name, extra in (("film", []), ("setpoints", ["--setpoints"])):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tjump",
                "analyze",
                str(run),
                "-o",
                str(tmp_path / name),
                "--no-figures",
                *extra,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    with (run / "sim-truth" / "particles.csv").open() as f:
        truth = float(
            np.median([float(r["ea_kj_mol"]) for r in csv.DictReader(f) if r["kind"] == "sco"])
        )
    film, setpoints = median_ea(tmp_path / "film"), median_ea(tmp_path / "setpoints")
    assert abs(film - truth) < 0.5 * abs(setpoints - truth)
    assert setpoints < film
