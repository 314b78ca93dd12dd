"""`tjump calibrate` on the simulated rig measures the simulator's own film: its R0 and
alpha, and its step response from V/I and from the image; and every run's frames.csv
carries the film temperature V/I gives."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tjump.analysis.thermometry import exposure_rise, step_fraction
from tjump.rig import load_rig

from conftest import rig_yaml

LAG = 2.0  # a film twice as slow as the default: the calibration must measure, not copy
TRUE = ((0.776, 0.17 * LAG), (0.224, 8.6 * LAG))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("calibrate")
    rig = rig_yaml(width=64, height=64, particles=6, references=2).replace(
        "simulation:\n", f"heater_model: film.yaml\nsimulation:\n  thermal: {{lag_factor: {LAG}}}\n"
    )
    (folder / "rig.yaml").write_text(rig)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tjump",
            "calibrate",
            "--rig",
            str(folder / "rig.yaml"),
            "--levels",
            "3",
            "--hold-s",
            "40",
            "--cool-s",
            "30",
            "--keep-run",
            str(folder / "calibration"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return folder, done.stdout


def test_calibration_recovers_the_simulated_films_resistance_and_step_response(
    calibrated: tuple[Path, str],
) -> None:
    folder, out = calibrated
    assert "heater model ->" in out and "add to" not in out  # the rig points to film.yaml
    rig = load_rig(folder / "rig.yaml")  # reads the heater model it points to
    assert rig.film_resistance is not None
    assert rig.film_resistance.r0_ohm == pytest.approx(20.0, rel=0.002)
    assert rig.film_resistance.alpha_per_K == pytest.approx(0.003, rel=0.02)
    s = np.array([0.1, 1.0, 5.0, 10.0, 30.0])
    assert rig.heater_step_response is not None
    measured = tuple((c.weight, c.tau_s) for c in rig.heater_step_response)
    assert np.abs(step_fraction(measured, s) - step_fraction(TRUE, s)).max() < 0.02
    # the image's response agrees with V/I's
    assert "step response from image" in out
    line = next(x for x in out.splitlines() if x.startswith("largest difference"))
    assert float(line.split(":")[1].split("%")[0]) < 5.0


def test_frames_csv_carries_the_film_temperature_from_vi(calibrated: tuple[Path, str]) -> None:
    folder, _ = calibrated
    with (folder / "calibration" / "run" / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    time_s = np.array([float(r["time_s"]) for r in rows])
    setpoint = np.array([float(r["temperature_K"]) for r in rows])
    heated = np.array([r["kind"] == "heat" for r in rows])
    film = np.array(
        [float(r["film_temperature_K"]) if r["film_temperature_K"] else np.nan for r in rows]
    )
    assert np.isnan(film[~heated]).all()  # no drive, no V/I
    assert np.isfinite(film[heated]).all()
    truth = 293.0 + exposure_rise(time_s, setpoint, TRUE, 293.0, 0.05)
    error = np.abs(film[heated] - truth[heated])  # DAQ samples vs the exposure's mean
    assert error.max() < 1.0
    assert np.median(error) < 0.1
