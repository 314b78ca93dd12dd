"""A whole protocol from the command line, as a user runs it: the demo on the small
simulated rig, its generator a SCPI instrument on a loopback socket reached through
pyvisa-py, the simulated film following what that instrument outputs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tjump.rig import load_calibration, load_rig

from conftest import ROOT


def test_the_demo_runs_on_sim_small_over_the_socket(tmp_path: Path) -> None:
    rig_file = ROOT / "configs" / "rigs" / "sim-small.yaml"
    assert load_rig(rig_file).devices.generator.resource == "TCPIP0::127.0.0.1::0::SOCKET"
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "tjump", "run", str(ROOT / "configs" / "protocols" / "demo.yaml"),
         "--rig", str(rig_file), "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]  # no abort at exit either
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["status"], manifest["frames"]) == ("complete", 1130)
    assert manifest["pulse_train_mismatches"] == 0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    counted = [e for e in log if e["event"] == "pulse_train_counted"]
    assert [(c["triggers"], c["exposures"], c["frames"]) for c in counted] == [(1130,) * 3]
    heats = [e for e in log if e["event"] == "segment_started" and e["kind"] == "heat"]
    assert len(heats) == 6 and all(h["bounded_by_instrument"] for h in heats)
    # the DAQ saw what the generator put out: each heat at its calibrated drive, 0 V between
    calibration = load_calibration(load_rig(rig_file).calibration)
    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    for kind, temperature in (("heat", 377.7), ("heat", 384.9)):
        drives = [float(r["drive_V"]) for r in rows if r["kind"] == kind
                  and float(r["temperature_K"]) == temperature]  # fmt: skip
        assert max(drives) == pytest.approx(calibration.drive_for(temperature), abs=0.02)
    assert max(abs(float(r["drive_V"])) for r in rows if r["kind"] == "cool") < 0.02
