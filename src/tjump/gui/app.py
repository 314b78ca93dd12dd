"""The main window: run control beside the live, heater, nucleation, devices and results
views. The run happens in a worker thread; this thread only shows and asks."""

from __future__ import annotations

import datetime as dt
import math
import signal
import sys
import time
import traceback
from pathlib import Path
from types import TracebackType

import numpy as np
from qtpy import QtCore, QtGui, QtWidgets

from tjump.gui.decisions import DecisionLog
from tjump.gui.devices import DevicesPanel
from tjump.gui.heater import HeaterPanel, film_thermometer
from tjump.gui.histograms import HistogramPanel
from tjump.gui.live_data import LiveData
from tjump.gui.live_view import LiveView
from tjump.gui.results import ResultsView
from tjump.gui.run_control import RunControl
from tjump.gui.traces import TracesPanel
from tjump.gui.worker import RunWorker
from tjump.protocol.schedule import Segment
from tjump.rig import Rig, build_rig, load_rig
from tjump.sequencer import Progress, RunResult, RunState

_PLOTS_HZ = 5
_OVERVIEW_HZ = 1
_MAX_FOLLOWED = 6
_SWITCH_INTERVAL_S = 0.001  # hand the GIL over sooner: the GUI waits less on busy threads
_DISPLAY_SHARE = 0.3  # at most this share of the GUI thread's time goes to refreshing views


class MainWindow(QtWidgets.QMainWindow):
    """One rig, one run at a time."""

    def __init__(
        self, rig_path: Path, runs_dir: Path = Path("runs"), display_hz: float = 30.0
    ) -> None:
        super().__init__()
        self.rig_path = rig_path
        self.runs_dir = runs_dir
        self.rig_config = load_rig(rig_path)
        self.rig: Rig | None = build_rig(self.rig_config)
        self._rig_used = False
        self.worker: RunWorker | None = None
        self.live: LiveData | None = None
        self.selected: list[int] = []
        self.last_result: RunResult | None = None
        self._ticks = 0
        self._shown_frame = -1
        self._particles_shown = False
        self._errors_logged = 0
        self.setWindowTitle(f"tjump: rig '{self.rig_config.name}'")
        self.run_control = RunControl(rig_path)
        self.live_view = LiveView()
        self.traces = TracesPanel()
        self.heater = HeaterPanel(self.rig_config.limits, self.rig_config.ambient_K)
        self.histograms = HistogramPanel()
        self.devices = DevicesPanel()
        self.results = ResultsView()
        live_split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        live_split.addWidget(self.live_view)
        live_split.addWidget(self.traces)
        live_split.setSizes([500, 600])
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(live_split, "live")
        self.tabs.addTab(self.heater, "heater")
        self.tabs.addTab(self.histograms, "nucleation")
        self.tabs.addTab(self.devices, "devices")
        self.tabs.addTab(self.results, "results")
        self.decisions = DecisionLog()
        self.tabs.addTab(self.decisions, "decisions")
        self.tabs.currentChanged.connect(lambda _i: self._update_plots(overview=True))
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.run_control)
        split.addWidget(self.tabs)
        split.setSizes([380, 1100])
        self.setCentralWidget(split)
        self.status = QtWidgets.QLabel("idle")
        status_bar = self.statusBar()
        if status_bar is not None:
            status_bar.addWidget(self.status, 1)
        self.run_control.start_requested.connect(self.start_run)
        self.run_control.pause_requested.connect(self.pause_run)
        self.run_control.resume_requested.connect(self.resume_run)
        self.run_control.abort_requested.connect(self.abort_run)
        self.live_view.particle_clicked.connect(self.follow)
        self.heater.set_heater(self.rig.heater)
        self.devices.set_rig(self.rig)
        self.timer = QtCore.QTimer(self)
        self._interval_ms = round(1000 / display_hz)
        self.timer.setInterval(self._interval_ms)
        self._plots_every = max(1, round(display_hz / _PLOTS_HZ))
        self._overview_every = max(1, round(display_hz / _OVERVIEW_HZ))
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    # -- run ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def start_run(self) -> None:
        if self.is_running():
            return
        plan = self.run_control.plan_to_run()  # with the closed-loop targets set there
        if plan is None:
            return
        rig = self.rig_for_next_run()
        output = self._output_for(plan.protocol.name)
        segments = plan.schedule.segments
        exposure_s = segments[0].exposure_ms / 1000 if segments else None
        self.live = LiveData(
            plan.schedule.total_frames, film_thermometer(rig.config), exposure_s=exposure_s
        )  # live nucleation times placed within the exposure, as the offline analysis does
        self.selected, self._shown_frame, self._particles_shown = [], -1, False
        self._errors_logged = 0
        self.worker = RunWorker(plan, rig, output, self.live, self)
        self.worker.state_changed.connect(self._on_state)
        self.worker.progress.connect(self._on_progress)
        self.worker.segment_started.connect(self._on_segment)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.decisions.clear_run()
        self.worker.decided.connect(self.decisions.add)
        self.heater.set_heater(None)
        self.devices.set_rig(None, f"the run into {output}")
        self.run_control.set_state(RunState.RUNNING)
        self.run_control.log(f"run started -> {output}")
        self._rig_used = True
        self.worker.start()

    def pause_run(self) -> None:
        if self.worker is not None:
            self.worker.pause()

    def resume_run(self) -> None:
        if self.worker is not None:
            self.worker.resume()

    def abort_run(self) -> None:
        if self.worker is not None and self.worker.is_running():
            self.run_control.log("abort requested")
            self.worker.abort()

    def rig_for_next_run(self) -> Rig:
        """The rig for a new run: a simulated rig is rebuilt after each run."""
        if self.rig is not None and not self._rig_used:
            return self.rig
        self._close_rig()
        self.rig = build_rig(self.rig_config)
        self._rig_used = False
        return self.rig

    def _output_for(self, name: str) -> Path:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output = self.runs_dir / f"{stamp}-{name}"
        n = 1
        while output.exists():
            n += 1
            output = self.runs_dir / f"{stamp}-{name}-{n}"
        return output

    def _on_state(self, state: str) -> None:
        if state != RunState.FINISHED:
            self.run_control.set_state(state)
        self.run_control.log(f"run {state}")
        self.status.setText(state)

    def _on_progress(self, progress: Progress) -> None:
        self.run_control.show_progress(progress)

    def _on_segment(self, segment: Segment) -> None:
        self.run_control.set_segment(segment)

    def _on_finished(self, result: RunResult) -> None:
        self.last_result = result
        self.run_control.log(
            f"run {result.status}: {result.frames}/{result.frames_planned} frames, "
            f"{result.experiment_s:.1f} s of experiment in {result.wall_s:.1f} s -> "
            f"{result.directory}" + (f" ({result.message})" if result.message else "")
        )
        self.results.set_recent(result.directory)
        self._run_ended(result.status)

    def _on_failed(self, message: str) -> None:
        self.run_control.log(f"RUN FAILED: {message}")
        self._run_ended("failed")

    def _run_ended(self, status: str) -> None:
        self.run_control.set_state(RunState.FINISHED)
        self.status.setText(status)
        self._tick()
        self._update_plots(overview=True)
        if self.rig is not None:
            self.heater.set_heater(self.rig.heater)
            self.devices.set_rig(self.rig)

    # -- display -----------------------------------------------------------------------

    def follow(self, particle: int) -> None:
        """Toggle following `particle` (its trace shown, its outline highlighted)."""
        if particle in self.selected:
            self.selected.remove(particle)
        else:
            self.selected = [particle, *self.selected][:_MAX_FOLLOWED]
        self.live_view.set_selected(set(self.selected))
        self._update_plots()

    def _tick(self) -> None:
        """At the display rate: the newest frame; every few ticks, the plots. When a
        refresh takes long (the acquisition holds the interpreter on a busy machine), the
        next one waits long enough to keep refreshing under `_DISPLAY_SHARE` of the
        thread's time: the display slows down rather than the acquisition."""
        start = time.perf_counter()
        self._refresh()
        cost_ms = (time.perf_counter() - start) * 1e3
        rest_ms = math.ceil(cost_ms * (1.0 / _DISPLAY_SHARE - 1.0))
        self.timer.setInterval(max(self._interval_ms, rest_ms))

    def _refresh(self) -> None:
        live = self.live
        if live is None:
            return
        latest = live.latest
        if latest is not None and latest[1].frame != self._shown_frame:
            self._shown_frame = latest[1].frame
            self.live_view.show_frame(*latest)
        if not self._particles_shown and live.detections is not None:
            self._particles_shown = True
            d = live.detections
            self.live_view.set_particles(d)
            self.selected = [int(i) for i in np.flatnonzero(d.usable)[:3]]
            self.live_view.set_selected(set(self.selected))
        while len(live.errors) > self._errors_logged:
            self.run_control.log(live.errors[self._errors_logged])
            self._errors_logged += 1
        self._ticks += 1
        if self._ticks % self._plots_every == 0:
            self._update_plots(overview=self._ticks % self._overview_every == 0)

    def _update_plots(self, overview: bool = False) -> None:
        """Refresh the views on the visible tab."""
        live = self.live
        if live is None:
            return
        page = self.tabs.currentIndex()
        snap = live.snapshot(self.selected, overview=overview and page == 0)
        if snap.spans:
            current = snap.spans[-1]
            self.live_view.set_switched(
                {e.particle for e in snap.events if e.time_s >= current.start_s}
                if current.kind == "heat"
                else set()
            )
        if page == 0:
            self.traces.update_view(snap)
        elif page == 1:
            self.heater.update_view(snap)
        elif page == 2:
            self.histograms.update_view([(e.setpoint_K, e.nucleation_s) for e in snap.events])

    # -- closing -----------------------------------------------------------------------

    def closeEvent(self, event: QtGui.QCloseEvent | None) -> None:
        """During a run: ask, then abort and wait for the heater to be made safe."""
        if self.is_running():
            answer = QtWidgets.QMessageBox.question(
                self,
                "run in progress",
                "A run is going. Abort it (the heater is made safe) and close?",
                QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
                QtWidgets.QMessageBox.StandardButton.No,
            )
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                if event is not None:
                    event.ignore()
                return
        self.shutdown()
        if event is not None:
            event.accept()

    def shutdown(self) -> None:
        """Abort any run, wait for it to end, then leave the heater safe and close the rig."""
        self.timer.stop()
        if self.worker is not None and self.worker.is_running():
            self.worker.abort()
            self.worker.wait()
        self._close_rig()

    def _close_rig(self) -> None:
        """Heater safe, devices released; a fault is reported, never left to stop the exit."""
        if self.rig is not None:
            rig, self.rig = self.rig, None
            try:
                rig.close()
            except Exception as e:
                message = f"HEATER NOT CONFIRMED SAFE while closing the rig: {e}"
                self.run_control.log(message)
                sys.stderr.write(message + "\n")


def _show_exception(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """Report an error in a GUI handler without killing the process (the run goes on)."""
    sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))


def run_gui(
    rig_path: Path,
    protocol: Path | None = None,
    runs_dir: Path = Path("runs"),
    display_hz: float = 30.0,
) -> int:
    """Open the window on a rig (and a protocol); returns the exit code."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    sys.excepthook = _show_exception
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    window = MainWindow(rig_path, runs_dir, display_hz)
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C, kill: no question, abort
        signal.signal(signum, lambda number, _frame: app.exit(128 + number))
    wake = QtCore.QTimer()  # lets Python run its signal handlers while Qt waits
    wake.start(200)
    wake.timeout.connect(lambda: None)
    try:
        if protocol is not None:
            window.run_control.load_protocol(protocol)
        window.resize(1500, 900)
        window.show()
        return int(app.exec())
    finally:
        window.shutdown()
