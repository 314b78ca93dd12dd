"""Write the simulated rig's heater calibration (configs/calibrations/heater-sim.csv).

A lab measures this curve; for the simulated film it is the thermal model's steady state,
tabulated every 10 mV from 0 to 2 V.

    python scripts/make_sim_calibration.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from tjump.sim.config import SimConfig
from tjump.sim.thermal import FilmThermalModel

OUT = Path(__file__).resolve().parent.parent / "configs/calibrations/heater-sim.csv"


def main() -> None:
    sim = SimConfig()
    model = FilmThermalModel(sim.thermal, sim.ambient_K, sim.supply.current_limit_A)
    with OUT.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["temperature_K", "drive_V"])
        for volts in np.arange(0.0, 2.0001, 0.01):
            out.writerow([f"{sim.ambient_K + model.steady_rise(volts):.3f}", f"{volts:.3f}"])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
