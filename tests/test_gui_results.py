"""The results view opens what `tjump analyze` writes beside a run and shows the trace of
the particle clicked."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from qtpy import QtGui

from tjump.gui.results import R_KJ, ResultsView
from tjump.sequencer import plan_run, run_plan

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]

PARTICLES = """particle_id,x,y,intensity_adu,size_nm,ea_kj_mol,ea_stderr_kj_mol,ln_prefactor
0,{x0},{y0},40000,420,150.0,12.0,45.0
1,{x1},{y1},20000,250,210.0,25.0,62.0
2,1.0,1.0,9000,,,,
"""
EVENTS = """particle_id,cycle,temperature_K,nucleation_s
0,1,377.7,8.0
0,2,377.7,10.0
0,1,384.9,4.0
0,2,384.9,6.0
1,1,377.7,11.0
1,2,377.7,
1,1,384.9,5.5
2,1,384.9,
"""


@pytest.fixture
def run_with_analysis(write_file: WriteFile, tmp_path: Path) -> Path:
    """A short real run, with analysis files written beside it in run/analysis: analysis
    particles 0 and 1 are the live particles 1 and 0 (0.3 px away), 2 is none of them."""
    rig = write_file("rig.yaml", rig_yaml(width=64, height=64, particles=4, references=1))
    protocol = write_file("p.yaml", series_protocol(cycles=1, heat_s=3, cool_s=2))
    result = run_plan(plan_run(protocol, rig), tmp_path / "run")
    live = np.genfromtxt(result.directory / "live-particles.csv", delimiter=",", names=True)
    analysis = result.directory / "analysis"
    (analysis / "figures").mkdir(parents=True)
    (analysis / "particles.csv").write_text(
        PARTICLES.format(
            x0=live["x"][1] + 0.3, y0=live["y"][1], x1=live["x"][0], y1=live["y"][0] - 0.3
        )
    )
    (analysis / "events.csv").write_text(EVENTS)
    image = QtGui.QImage(40, 30, QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("red"))
    image.save(str(analysis / "figures" / "arrhenius.png"))
    return analysis


def test_results_view_opens_a_run_and_follows_clicks(qtbot: QtBot, run_with_analysis: Path) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    results = view.open(run_with_analysis)
    assert results is not None
    assert view.table.rowCount() == 3
    assert "3 particles, 6 nucleations, with live traces" in view.message.text()
    legend = [item.opts["name"] for item in view.histogram.listDataItems()]
    assert legend == ["377.7 K: n = 3, mean 9.7 s", "384.9 K: n = 3, mean 5.2 s"]
    x, y = results.arrhenius()[0]
    assert x == pytest.approx([1000 / 377.7, 1000 / 384.9])
    assert y == pytest.approx([-math.log(9.0), -math.log(5.0)])
    assert view.ea_points.data["y"].tolist() == [150.0, 210.0]  # particle 2 has no fit
    assert view.figures.count() == 1 and view.figure.pixmap() is not None

    frames = len(results.trace_time_s) if results.trace_time_s is not None else 0
    assert frames == 80  # 3 s baseline, 3 s heat, 2 s cool at 10 frames/s
    point = view.ea_points.points()[1]
    view.ea_points.sigClicked.emit(view.ea_points, [point], None)
    assert view.selected == 1
    trace = view.trace.listDataItems()
    assert len(trace) == 1 and len(trace[0].yData) == frames
    live = np.genfromtxt(run_with_analysis.parent / "live-traces.csv", delimiter=",", names=True)
    assert np.allclose(trace[0].yData, live["p0"])  # analysis particle 1 is live particle 0
    assert np.allclose(results.traces[0], live["p1"]) and 2 not in results.traces
    fit = [i for i in view.arrhenius.listDataItems() if i.opts["symbol"] is None]
    expected = 62.0 - 210.0 * np.asarray(fit[0].xData) / (1000 * R_KJ)
    assert np.allclose(fit[0].yData, expected)
    view.table.selectRow(0)
    assert view.selected == 0


def test_results_view_says_what_is_missing(
    qtbot: QtBot, tmp_path: Path, write_file: WriteFile
) -> None:
    view = ResultsView()
    qtbot.addWidget(view)
    assert view.open(tmp_path) is None
    assert "tjump analyze" in view.message.text()
    write_file("particles.csv", "particle_id,x,y\n0,1,2\n")
    write_file("events.csv", EVENTS)
    assert view.open(tmp_path) is None
    assert "ea_kj_mol" in view.message.text()


def test_results_view_prefers_the_analysis_traces(qtbot: QtBot, run_with_analysis: Path) -> None:
    intensity = np.arange(30.0).reshape(10, 3)
    np.savez(run_with_analysis / "traces.npz", intensity=intensity, time_s=np.arange(10) / 10)
    view = ResultsView()
    qtbot.addWidget(view)
    results = view.open(run_with_analysis)
    assert results is not None and sorted(results.traces) == [0, 1, 2]
    view.select(2)
    (trace,) = view.trace.listDataItems()
    assert np.allclose(trace.yData, intensity[:, 2]) and np.allclose(trace.xData[-1], 0.9)
