"""Screenshots of the GUI mid-run on the simulated rig, offscreen, for the README.

python scripts/screenshots.py [--rig configs/rigs/sim.yaml] [--protocol configs/protocols/demo.yaml]

Runs the protocol from the window, holds the simulated clock at `--at` seconds of
experiment (a heat with particles switching), saves each view, lets the run finish,
analyses it with `tjump analyze` and saves the results view."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtWidgets

from tjump.clock import VirtualClock
from tjump.gui.app import MainWindow
from tjump.sim.rig import install

install()  # simulated rig files can be read and built

ROOT = Path(__file__).resolve().parent.parent


def wait_for(app: QtWidgets.QApplication, done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the GUI did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def settle(app: QtWidgets.QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rig", type=Path, default=ROOT / "configs/rigs/sim.yaml")
    parser.add_argument("--protocol", type=Path, default=ROOT / "configs/protocols/demo.yaml")
    parser.add_argument("--at", type=float, default=90.0, help="experiment seconds to hold at")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    app = QtWidgets.QApplication(sys.argv[:1])
    runs = Path(tempfile.mkdtemp(prefix="tjump-shots-"))
    window = MainWindow(args.rig, runs)
    window.resize(1440, 860)
    window.show()
    if window.run_control.load_protocol(args.protocol) is None:
        sys.exit(window.run_control.check_text.toPlainText())
    go = threading.Event()
    go.set()
    rig = window.rig_for_next_run()
    start = rig.clock.now()

    def hold(t: float) -> None:  # runs in the acquisition thread, on every clock step
        if t - start >= args.at:
            go.wait()

    if not isinstance(rig.clock, VirtualClock):
        sys.exit("this script needs a simulated rig (a virtual clock)")
    rig.clock.on_advance(hold)
    go.clear()
    window.start_run()
    live = window.live
    assert live is not None
    wait_for(app, lambda: live.latest is not None and live.latest[1].time_s >= args.at - 2, 120)
    settle(app, 1.0)  # the display and the live tables catch up with the held acquisition
    switched = [e.particle for e in live.events()]
    for particle in dict.fromkeys(reversed(switched)):  # most recent switchers first
        if len(window.selected) >= 4:
            break
        if particle not in window.selected:
            window.follow(particle)
    views = {"live": 0, "heater": 1, "nucleation": 2, "devices": 3}
    for name, index in views.items():
        window.tabs.setCurrentIndex(index)
        settle(app, 0.5)
        window.grab().save(str(args.out / f"gui-{name}.png"))
    go.set()
    wait_for(app, lambda: window.last_result is not None, 600)
    result = window.last_result
    assert result is not None
    analysis = result.directory / "analysis"
    command = [sys.executable, "-m", "tjump", "analyze", str(result.directory), "-o", str(analysis)]
    calibration = ROOT / "configs/calibrations/size-sim.csv"
    if calibration.is_file():
        command += ["--calibration", str(calibration)]
    subprocess.run(command, check=True)
    window.tabs.setCurrentIndex(4)
    window.results.open(analysis)
    settle(app, 0.5)
    window.grab().save(str(args.out / "gui-results.png"))
    window.close()
    print(f"screenshots in {args.out}; run in {result.directory}")


if __name__ == "__main__":
    main()
