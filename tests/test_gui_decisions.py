"""The decision log shows every closed-loop decision with its reason; the closed-loop
targets set in the run control before a run are validated and used by the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from qtpy import QtCore

from tjump.gui.app import MainWindow
from tjump.gui.decisions import DecisionLog
from tjump.protocol.checks import load_protocol
from tjump.protocol.schema import SeriesStep
from tjump.sequencer.decisions import DecisionKind, LiveDecision
from tjump.storage.layout import RUN_PROTOCOL

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


def test_each_decision_is_a_row_with_its_reason(qtbot: QtBot) -> None:
    log = DecisionLog()
    qtbot.addWidget(log)
    log.add(LiveDecision(12.5, DecisionKind.HOLD_ENDED, "90% of 18 particles switched", 3, 1))
    log.add(LiveDecision(80.0, DecisionKind.SUSPENDED, "film at 392.0 K, +7.1 K", 5, 2))
    log.add(LiveDecision(90.0, DecisionKind.RESUMED, "resuming (1 of at most 3)", 5, 2))
    assert log.rowCount() == 3
    assert [log.item(r, 1).text() for r in range(3)] == ["hold ended", "suspended", "resumed"]
    assert log.item(1, 4).text() == "film at 392.0 K, +7.1 K"
    assert log.item(0, 0).text() == "12.5" and log.item(2, 3).text() == "2"
    assert log.counts[DecisionKind.SUSPENDED] == 1
    log.clear_run()
    assert log.rowCount() == 0 and log.counts[DecisionKind.SUSPENDED] == 0


@pytest.fixture
def window(qtbot: QtBot, write_file: WriteFile, tmp_path: Path) -> Iterator[MainWindow]:
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=6, references=1))
    w = MainWindow(rig, tmp_path / "runs")
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown()


ADAPTIVE_HOLD = "    adaptive_hold: {end_when_switched: 0.9, min_hold_s: 3}\n"


def test_a_target_set_before_the_run_is_the_one_the_run_uses(
    qtbot: QtBot, window: MainWindow, write_file: WriteFile
) -> None:
    protocol = series_protocol(cycles=2, heat_s=20, cool_s=4) + ADAPTIVE_HOLD
    control = window.run_control
    control.load_protocol(write_file("p.yaml", protocol))
    assert control.target_values() == {
        "adaptive_hold.end_when_switched": "0.9",
        "adaptive_hold.min_hold_s": "3",
        "adaptive_cool.film_within": "",
        "adaptive_cool.min_cool_s": "",
        "adaptive_cycles.target_relative_precision": "",
        "adaptive_cycles.min_cycles": "",
        "suspend.band_K": "",
    }
    control.targets["adaptive_hold.end_when_switched"].setText("0.5")
    qtbot.mouseClick(control.start_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.last_result is not None, timeout=30000)
    result = window.last_result
    assert result is not None and result.status == "complete"
    reasons = [window.decisions.item(r, 4).text() for r in range(window.decisions.rowCount())]
    assert sum("(target 50%)" in r for r in reasons) == 2  # both heats, at the new fraction
    assert not any("(target 90%)" in r for r in reasons)
    kept = load_protocol(result.directory / RUN_PROTOCOL)  # the run directory says so too
    series = kept.steps[1]
    assert isinstance(series, SeriesStep) and series.adaptive_hold is not None
    assert series.adaptive_hold.end_when_switched == 0.5


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("adaptive_hold.end_when_switched", "1.5", "adaptive_hold.end_when_switched"),
        ("adaptive_hold.min_hold_s", "soon", "adaptive_hold.min_hold_s"),
        ("adaptive_hold.min_hold_s", "", "adaptive_hold.min_hold_s: required"),
        ("adaptive_cycles.min_cycles", "3", "adaptive_cycles.target_relative_precision"),
        ("adaptive_cool.film_within", "0.9", "adaptive_cool.film_within"),
        ("adaptive_cool.min_cool_s", "2", "adaptive_cool.film_within: required"),
        ("suspend.band_K", "-2", "suspend.band_K"),
    ],
)
def test_a_bad_target_names_its_field_and_starts_nothing(
    window: MainWindow, write_file: WriteFile, field: str, text: str, message: str
) -> None:
    control = window.run_control
    control.load_protocol(write_file("p.yaml", series_protocol(cycles=2) + ADAPTIVE_HOLD))
    control.targets[field].setText(text)
    window.start_run()
    assert window.worker is None and window.last_result is None
    assert message in control.check_text.toPlainText()
    assert "run not started" in control.log_text.toPlainText()
