"""GUI cost while the simulated camera runs at 100 and 500 frames/s with 100 particles,
this checkout beside an earlier commit (default: main before issue 12's speed work).

python scripts/bench_gui.py [--seconds 20] [--rates 100 500] [--baseline COMMIT]

Each figure is measured in a fresh process importing the version measured (as
scripts/bench_camera.py does), both versions at each rate one after the other, with the
simulated camera rendering in its own process as `tjump gui` builds it.

The simulated rig is paced to real time (a clock listener sleeps until the wall clock
catches up), so the GUI competes with an acquisition running at the camera's real rate.
For each rate it prints: frames dropped (planned - written, and gaps in the camera's frame
numbers); how far the acquisition fell behind real time with the GUI and in the same run
without it; the display rate (new frames shown per second) beside the rate at which the
simulated rig delivers frames (in bursts, one per clock step); and the GUI thread's busy
fraction: wall time inside Qt's event dispatch (timing QApplication.notify at the
outermost level, which includes waiting for the GIL) and that thread's CPU time."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qtpy import QtCore, QtWidgets

from bench_camera import baseline_src  # this folder is on the path of a script run
from tjump.clock import VirtualClock
from tjump.gui.app import MainWindow
from tjump.rig import Rig
from tjump.sequencer import plan_run, run_plan
from tjump.sim.rig import build_sim_rig, install

install(camera_process=True)  # as `tjump gui`: the camera renders in its own process

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "9ce6083"  # main before issue 12's speed work

RIG = """
name: bench-{fps}
kind: simulated
ambient_K: 293.0
calibration: {calibration}
limits:
  max_temperature_K: 480.0
  max_drive_V: 1.8
  max_current_A: 0.08
  max_time_above: {{temperature_K: 400.0, seconds: 300.0}}
camera: {{exposure_ms: {exposure}, max_frame_rate_hz: 1000.0, pixel_size_um: 0.37}}
daq: {{sample_rate_hz: 5000.0}}
simulation:
  seed: 3
  sample: {{particles: 100, references: 4, min_separation_px: 7.0}}
  sensor: {{width: 256, height: 256}}
"""

PROTOCOL = """
name: bench-{fps}
frame_rate_hz: {fps}
steps:
  - kind: baseline
    duration_s: 2
  - kind: series
    temperatures_K: [384.9]
    cycles: {cycles}
    heat_s: 4
    cool_s: 2
"""


class Pacer:
    """Holds a simulated rig to real time: on every clock step (in the acquisition
    thread) it sleeps until the wall clock catches up, and records how far behind
    the acquisition fell when it could not keep up."""

    def __init__(self, rig: Rig) -> None:
        if not isinstance(rig.clock, VirtualClock):
            sys.exit("this script needs a simulated rig (a virtual clock)")
        self.clock = rig.clock
        self.restart()
        rig.clock.on_advance(self.pace)

    def restart(self) -> None:
        self.start_t, self.start_wall = self.clock.now(), time.monotonic()
        self.behind_s, self.steps = 0.0, 0

    def pace(self, t: float) -> None:
        self.steps += 1
        ahead = (t - self.start_t) - (time.monotonic() - self.start_wall)
        if ahead > 0:
            time.sleep(ahead)
        else:
            self.behind_s = max(self.behind_s, -ahead)


def without_gui(rig_file: Path, protocol: Path, output: Path) -> float:
    """How far behind real time the same run falls with no GUI at all."""
    plan = plan_run(protocol, rig_file)
    with build_sim_rig(plan.rig, camera_process=True) as rig:
        pacer = Pacer(rig)
        run_plan(plan, output, rig=rig)
        return pacer.behind_s


class TimedApplication(QtWidgets.QApplication):
    """Adds up the time spent dispatching events (outermost level only)."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.busy_s = 0.0
        self.cpu_s = 0.0
        self._depth = 0

    def notify(self, receiver: Any, event: Any) -> bool:
        if self._depth:
            return bool(super().notify(receiver, event))
        self._depth += 1
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return bool(super().notify(receiver, event))
        finally:
            self.busy_s += time.perf_counter() - start
            self.cpu_s += time.thread_time() - cpu
            self._depth -= 1


def bench(
    app: TimedApplication, fps: int, seconds: float, folder: Path, display_hz: float
) -> dict[str, float]:
    cycles = max(1, round((seconds - 2) / 6))
    rig_file = folder / f"rig-{fps}.yaml"
    calibration = ROOT / "configs/calibrations/heater-sim.csv"
    rig_file.write_text(RIG.format(fps=fps, calibration=calibration, exposure=500 / fps))
    protocol = folder / f"p-{fps}.yaml"
    protocol.write_text(PROTOCOL.format(fps=fps, cycles=cycles))
    alone_behind = without_gui(rig_file, protocol, folder / f"alone-{fps}")
    window = MainWindow(rig_file, folder / "runs", display_hz)
    window.resize(1600, 950)
    window.show()
    if window.run_control.load_protocol(protocol) is None:
        sys.exit(window.run_control.check_text.toPlainText())
    pacer = Pacer(window.rig_for_next_run())
    for _ in range(5):
        app.processEvents()
    app.busy_s = app.cpu_s = 0.0
    shown0 = window.live_view.frames_shown
    start_wall = time.monotonic()
    pacer.restart()
    window.start_run()
    assert window.worker is not None
    loop = QtCore.QEventLoop()
    window.worker.finished.connect(loop.quit)
    window.worker.failed.connect(loop.quit)
    loop.exec()
    wall = time.monotonic() - start_wall
    result = window.last_result
    if result is None:
        sys.exit("the run failed: see the run log")
    busy, cpu = app.busy_s, app.cpu_s
    with (result.directory / "frames.csv").open(newline="") as f:
        numbers = [int(r["camera_frame"]) for r in csv.DictReader(f)]
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(numbers) if b - a > 1)
    window.close()
    return {
        "fps": fps,
        "frames": result.frames,
        "planned": result.frames_planned,
        "dropped": result.frames_planned - result.frames + gaps,
        "experiment_s": result.experiment_s,
        "wall_s": wall,
        "behind_s": pacer.behind_s,
        "deliveries_hz": pacer.steps / wall,
        "display_hz": (window.live_view.frames_shown - shown0) / wall,
        "alone_behind_s": alone_behind,
        "busy": busy / wall,
        "cpu": cpu / wall,
    }


def in_child(src: Path, fps: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """`bench` at `fps` in a fresh process importing tjump from `src`."""
    env = os.environ | {"PYTHONPATH": str(src)}
    command = [sys.executable, __file__, "--measure", str(fps), "--folder", str(folder),
               "--seconds", str(args.seconds), "--display-hz", str(args.display_hz),
               "--switch-interval", str(args.switch_interval)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise SystemExit(
            f"{fps} frames/s under {src} failed (exit code {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    figures: dict[str, float] = json.loads(lines[-1])
    figures["exit_code"] = done.returncode  # a crash at exit, after the figures, is noted
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="experiment per rate")
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--display-hz", type=float, default=30.0, help="live image refresh")
    parser.add_argument("--switch-interval", type=float, default=0.001, help="GIL, seconds")
    parser.add_argument("--baseline", default=BASELINE, help="git commit to compare with")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        app = TimedApplication(sys.argv[:1])
        sys.setswitchinterval(args.switch_interval)  # as `tjump gui` does
        r = bench(app, args.measure, args.seconds, args.folder, args.display_hz)
        print(json.dumps(r), flush=True)
        # Out without Python's exit: PyQt's clean-up at exit (cleanup_on_exit, deleting
        # the QObjects Python still owns) called TimedApplication.notify, Python code,
        # while it tore the objects down, and crashed (SIGSEGV in cleanup_qobject, 10 runs
        # of 11 twenty-second runs). A plain QApplication, as `tjump gui` uses, exited
        # cleanly 3 of 3, and `tjump gui`'s own run_gui after runs, paced or not, 5 of 5.
        sys.stderr.flush()
        os._exit(0)
    with tempfile.TemporaryDirectory(prefix="tjump-bench-gui-") as tmp:
        work = Path(tmp)
        versions = {args.baseline: baseline_src(args.baseline, work), "after": ROOT / "src"}
        print(
            "version  fps  frames dropped | behind real time: GUI, none | display, deliveries"
            " | GUI thread busy: wall, CPU | load"
        )
        for fps in args.rates:
            for name, src in versions.items():
                folder = work / f"{name}-{fps}"
                folder.mkdir()
                r = in_child(src, fps, args, folder)
                print(
                    f"{name:<8} {r['fps']:<4g} {r['frames']:>6g} {r['dropped']:>7g} |"
                    f" {r['behind_s']:>13.2f} s, {r['alone_behind_s']:.2f} s |"
                    f" {r['display_hz']:>5.1f} Hz, {r['deliveries_hz']:.1f} Hz |"
                    f" {100 * r['busy']:>5.1f} %, {100 * r['cpu']:.1f} % |"
                    f" {os.getloadavg()[0]:.1f}"
                    + (f" (exit code {r['exit_code']:g})" if r["exit_code"] else ""),
                    flush=True,
                )


if __name__ == "__main__":
    main()
