"""The lab window on a small simulated rig: a protocol runs from it and frames and traces
arrive; pause, resume and abort leave the heater off; a bad protocol cannot be started;
closing during a run asks, then aborts; manual heating is off by default and bounded."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from qtpy import QtCore, QtWidgets

from tjump.gui.app import MainWindow
from tjump.rig import Rig
from tjump.sim.rig import SimRig
from tjump.storage import RunDirectory

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]
LEFT = QtCore.Qt.MouseButton.LeftButton


@pytest.fixture
def window(qtbot: QtBot, write_file: WriteFile, tmp_path: Path) -> Iterator[MainWindow]:
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=6, references=1))
    w = MainWindow(rig, tmp_path / "runs")
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    yield w
    w.shutdown()


def heater_off(rig: Rig) -> bool:
    """The heater reads back safe and the simulated generator is at 0 V, output off."""
    return rig.heater.is_safe() and generator_off(rig)


def generator_off(rig: Rig) -> bool:
    """What the simulated generator really does (readable after the rig is closed)."""
    assert isinstance(rig, SimRig)
    return rig.generator_output() == (0.0, False)


def long_protocol(write_file: WriteFile) -> Path:
    """About 3,000 frames: long enough to pause, resume and abort in."""
    return write_file("long.yaml", series_protocol(cycles=20, heat_s=10, cool_s=5, baseline_s=3))


def test_a_run_shows_frames_and_traces_pauses_resumes_and_aborts_safely(
    qtbot: QtBot, window: MainWindow, write_file: WriteFile
) -> None:
    assert window.run_control.load_protocol(long_protocol(write_file)) is not None
    assert "3030 frames" in window.run_control.summary.text()
    qtbot.mouseClick(window.run_control.start_button, LEFT)
    rig, live = window.rig, window.live
    assert rig is not None and live is not None
    assert not window.heater.manual_enabled.isEnabled()  # the run owns the heater
    assert not window.run_control.open_button.isEnabled()
    plan = window.run_control.plan
    assert window.run_control.load_protocol(long_protocol(write_file)) is None
    assert window.run_control.plan is plan
    qtbot.waitUntil(lambda: window.live_view.frames_shown > 0 and len(window.selected) > 0)
    qtbot.waitUntil(lambda: len(window.traces._curves) > 0, timeout=3000)
    assert live.detections is not None and len(live.detections) >= 5
    shown = window.live_view.image.image
    assert shown is not None and shown.shape == (64, 64)

    qtbot.mouseClick(window.run_control.pause_button, LEFT)
    qtbot.waitUntil(lambda: window.status.text() == "paused", timeout=5000)
    assert heater_off(rig)
    paused_at = live.frames_received
    qtbot.wait(200)
    assert live.frames_received == paused_at  # no frames while paused
    assert window.run_control.resume_button.isEnabled()

    qtbot.mouseClick(window.run_control.resume_button, LEFT)
    qtbot.waitUntil(lambda: live.frames_received > paused_at + 50, timeout=5000)
    qtbot.mouseClick(window.run_control.abort_button, LEFT)
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=10000)
    result = window.last_result
    assert result is not None and result.status == "aborted"
    assert 0 < result.frames < result.frames_planned
    assert heater_off(rig)
    assert RunDirectory(result.directory).manifest()["status"] == "aborted"
    snap = live.snapshot(window.selected)
    assert snap.frames == result.frames
    assert 0 < window.live_view.frames_shown < result.frames / 3  # throttled, not every frame
    assert all(len(t) == len(snap.trace_time_s) > 0 for t in snap.selected.values())
    assert window.run_control.start_button.isEnabled()
    assert not window.run_control.abort_button.isEnabled()
    assert window.heater.manual_enabled.isEnabled()
    log = window.run_control.log_text.toPlainText()
    for line in ("run paused", "run running", "abort requested", "run aborted"):
        assert line in log

    short = write_file("short.yaml", series_protocol(cycles=1, heat_s=3, cool_s=2))
    window.run_control.load_protocol(short)
    qtbot.mouseClick(window.run_control.start_button, LEFT)  # a second run, on a fresh rig
    assert window.rig is not rig
    qtbot.waitUntil(lambda: window.last_result is not result, timeout=10000)
    assert window.last_result is not None and window.last_result.status == "complete"
    assert window.rig is not None and heater_off(window.rig) and generator_off(rig)


def test_live_nucleation_marks_match_what_the_simulator_did(
    qtbot: QtBot, window: MainWindow, write_file: WriteFile
) -> None:
    protocol = write_file("p.yaml", series_protocol(cycles=3, heat_s=12, cool_s=6))
    window.run_control.load_protocol(protocol)
    window.start_run()
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=20000)
    assert window.last_result is not None and window.last_result.status == "complete"
    assert window.run_control.progress_bar.value() == window.last_result.frames_planned
    last = "step 1, segment 7 of 7: cool at 293.0 K, cycle 3; 57 s done, 0:00:00 left"
    assert window.run_control.progress_label.text() == last
    assert window.run_control.schedule.currentRow() == 6
    assert window.live is not None and window.live.detections is not None
    run = window.last_result.directory
    d = window.live.detections
    truth_particles = np.genfromtxt(
        run / "sim-truth/particles.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    truth = np.genfromtxt(
        run / "sim-truth/transitions.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    to_detected = {
        int(pid): int(np.argmin(np.hypot(d.x - x, d.y - y)))
        for pid, x, y in zip(
            truth_particles["particle_id"], truth_particles["x"], truth_particles["y"], strict=True
        )
    }
    switches = [
        (to_detected[int(p)], float(t))
        for p, t, way in zip(truth["particle_id"], truth["time_s"], truth["direction"], strict=True)
        if way == "LS->HS"
    ]
    events = window.live.events()
    assert len(events) >= 5
    matched = [
        any(p == e.particle and abs(t - e.time_s) <= 0.25 for p, t in switches) for e in events
    ]
    assert sum(matched) >= 0.9 * len(events)
    assert len(events) >= 0.8 * len(switches)
    window.tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: "nucleations detected live" in window.histograms.summary.text())
    snap = window.live.snapshot([])  # the film's temperature from V/I, at the end of a heat
    end_of_heat = np.flatnonzero(np.diff(snap.setpoint_K) < 0)[0]
    assert 370 < snap.film_K[end_of_heat] < 384.9
    assert np.isnan(snap.film_K[0])  # no current, no reading


def test_a_slow_refresh_slows_the_display_rather_than_taking_the_gui_thread(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    normal = window.timer.interval()
    monkeypatch.setattr(window, "_refresh", lambda: time.sleep(0.12))  # a busy interpreter
    window._tick()
    assert window.timer.interval() >= 120  # rests at least as long as the refresh took
    monkeypatch.setattr(window, "_refresh", lambda: None)
    window._tick()
    assert window.timer.interval() == normal  # back to the display rate when quick again


def test_an_invalid_protocol_shows_the_field_and_cannot_start(
    qtbot: QtBot, window: MainWindow, write_file: WriteFile
) -> None:
    bad = write_file("bad.yaml", series_protocol(temperatures="[384.9, 520]"))
    assert window.run_control.load_protocol(bad) is None
    text = window.run_control.check_text.toPlainText()
    assert "steps.1.temperatures_K.1" in text and "520" in text
    assert not window.run_control.start_button.isEnabled()
    qtbot.mouseClick(window.run_control.start_button, LEFT)
    window.start_run()
    assert window.worker is None and not window.is_running()


def test_closing_during_a_run_asks_then_aborts_with_the_heater_off(
    qtbot: QtBot, window: MainWindow, write_file: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    window.run_control.load_protocol(long_protocol(write_file))
    window.start_run()
    rig = window.rig
    assert rig is not None
    qtbot.waitUntil(lambda: window.live is not None and window.live.frames_received > 30)
    answers = [QtWidgets.QMessageBox.StandardButton.No, QtWidgets.QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(_parent: object, title: str, *_args: object) -> object:
        asked.append(title)
        return answers[len(asked) - 1]

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    window.close()
    assert asked == ["run in progress"] and window.isVisible() and window.is_running()
    window.close()
    assert len(asked) == 2 and not window.isVisible() and not window.is_running()
    assert window.worker is not None and window.worker.result is not None
    assert window.worker.result.status == "aborted"
    assert window.rig is None  # closed
    assert generator_off(rig)


def test_manual_heater_is_off_by_default_bounded_by_the_limits(
    qtbot: QtBot, window: MainWindow
) -> None:
    panel, rig = window.heater, window.rig
    assert rig is not None
    assert panel.manual_enabled.isEnabled() and not panel.manual_enabled.isChecked()
    assert not panel.apply_button.isEnabled() and not panel.target.isEnabled()
    assert panel.target.maximum() <= rig.config.limits.max_temperature_K
    panel.manual_enabled.setChecked(True)
    panel.target.setValue(10_000)  # clamped to the limit
    assert panel.target.value() == panel.target.maximum()
    panel.target.setValue(350.0)
    qtbot.mouseClick(panel.apply_button, LEFT)
    assert isinstance(rig, SimRig) and rig.generator_output()[1] and rig.heater.supply.voltage() > 0
    assert "350.0 K" in panel.manual_status.text()
    panel.manual_enabled.setChecked(False)  # switching manual control off turns the heater off
    assert heater_off(rig)
    panel.manual_enabled.setChecked(True)
    qtbot.mouseClick(panel.apply_button, LEFT)
    assert not generator_off(rig)
    window.close()  # the heater is made safe when the GUI exits
    assert window.rig is None and generator_off(rig)


def test_devices_panel_shows_each_device_and_faults(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = window.devices.table
    states = [table.item(r, 1).text() for r in range(table.rowCount())]
    assert states == ["ok"] * 4
    assert "safe" in table.item(3, 2).text()
    assert window.rig is not None

    def broken() -> tuple[int, int]:
        raise RuntimeError("camera unplugged")

    monkeypatch.setattr(window.rig.camera, "shape", broken)
    window.devices.check()
    assert table.item(0, 1).text() == "FAULT" and "camera unplugged" in table.item(0, 2).text()


def test_the_run_command_does_not_load_qt() -> None:
    code = (
        "import sys, tjump.cli\n"
        "assert not any(m.startswith(('qtpy', 'PyQt6')) for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_terminated_gui_aborts_its_run_and_leaves_the_heater_off(
    write_file: WriteFile, tmp_path: Path
) -> None:
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = long_protocol(write_file)
    code = f"""
import os, signal
from pathlib import Path
from qtpy import QtCore, QtWidgets
from tjump.gui import app as gui_app
from tjump.sim.rig import install
install()
app = QtWidgets.QApplication([])
windows = []
QtCore.QTimer.singleShot(0, lambda: windows.extend(app.topLevelWidgets()))
def start():
    window = next(w for w in windows if isinstance(w, gui_app.MainWindow))
    window.start_run()
    QtCore.QTimer.singleShot(300, lambda: os.kill(os.getpid(), signal.SIGTERM))
QtCore.QTimer.singleShot(100, start)
gui_app.run_gui(Path({str(rig)!r}), Path({str(protocol)!r}), Path({str(tmp_path / "runs")!r}))
window = next(w for w in windows if isinstance(w, gui_app.MainWindow))
volts, on = window.worker.rig.generator_output()
print(window.worker.result.status, window.rig is None, on, volts)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-4:] == ["aborted", "True", "False", "0.0"]


def test_a_heater_fault_at_exit_is_reported_not_raised(
    window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = window.rig
    assert rig is not None
    close = rig.close

    def failing_close() -> None:
        close()
        raise RuntimeError("supply did not answer")

    monkeypatch.setattr(rig, "close", failing_close)
    window.close()
    assert window.rig is None and not window.isVisible()
    assert "HEATER NOT CONFIRMED SAFE" in window.run_control.log_text.toPlainText()
