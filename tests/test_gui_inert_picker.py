"""Naming inert particles by clicking them: the click marks the particle, the mark is drawn
and saved where `tjump analyze` finds it, and the next analysis treats it as inert."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from qtpy import QtCore

from tjump.analysis.output import write_analysis
from tjump.analysis.pipeline import INERT_FLAG, analyze_recording
from tjump.analysis.references import inert_file_of, read_inert_file
from tjump.gui.inert_picker import InertPicker
from tjump.gui.results import ResultsView
from tjump.sequencer import plan_run, run_plan

from conftest import rig_yaml, series_protocol

WriteFile = Callable[[str, str], Path]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A short real run (6 particles, 2 of them SiO2 references) and its analysis."""
    folder = tmp_path_factory.mktemp("inert")
    rig = folder / "rig.yaml"
    rig.write_text(rig_yaml(width=64, height=64, particles=4, references=2))
    protocol = folder / "p.yaml"
    protocol.write_text(series_protocol(cycles=2, heat_s=6, cool_s=4))
    run = run_plan(plan_run(protocol, rig), folder / "run").directory
    analysis = write_analysis(analyze_recording(run), folder / "analysis", figures=False)
    return run, analysis


def picker_on(qtbot: QtBot, analysed: tuple[Path, Path]) -> tuple[Path, InertPicker]:
    """A picker opened on the analysis, with no particle named yet; and the run."""
    run, analysis = analysed
    inert_file_of(run).unlink(missing_ok=True)
    picker = InertPicker()
    qtbot.addWidget(picker)
    assert picker.open(analysis)
    return run, picker


def click(qtbot: QtBot, picker: InertPicker, x: float, y: float) -> None:
    """A left mouse click on image position (x, y), as the user makes it."""
    scene = picker.view.mapViewToScene(QtCore.QPointF(x, y))
    graphics = picker.view.scene().views()[0]
    where = graphics.mapFromScene(scene)
    qtbot.mouseClick(graphics.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=where)


def test_a_click_names_a_particle_inert_and_the_next_analysis_uses_it(
    qtbot: QtBot, analysed: tuple[Path, Path]
) -> None:
    run, picker = picker_on(qtbot, analysed)
    picker.resize(500, 500)
    picker.show()
    qtbot.waitExposed(picker)
    assert picker.image.image is not None and picker.image.image.shape == (64, 64)
    n = len(picker.px)
    assert n >= 5 and not picker.named.any()
    target = int(np.flatnonzero(~picker.found)[0])  # a particle the analysis did not call inert
    x, y = float(picker.px[target]), float(picker.py[target])
    picker.view.autoRange(padding=0)
    qtbot.wait(50)

    click(qtbot, picker, x + 0.4, y - 0.3)  # a little off its centre, as a hand clicks
    assert picker.named.tolist() == [i == target for i in range(n)]
    brushes = picker.points.data["brush"]
    assert brushes[target].color().alpha() > 0  # drawn filled: named
    assert all(b.color().alpha() == 0 for i, b in enumerate(brushes) if i != target)
    assert "1 named inert" in picker.message.text()
    saved = inert_file_of(run)
    assert saved.is_file()

    again = analyze_recording(run)  # the next analysis reads the file by itself
    assert again.recording.extra["inert_file"] == str(saved)
    assert again.inert is not None
    d = again.detections
    nearest = int(np.argmin(np.hypot(d.x - x, d.y - y)))
    assert again.inert[nearest] and d.flags[nearest] & INERT_FLAG
    assert not np.isfinite(again.events.nucleation_s[nearest]).any()
    assert read_inert_file(saved, d).inert.sum() == 1

    click(qtbot, picker, x, y)  # a second click takes the name back
    assert not picker.named.any()
    assert read_inert_file(saved, d).inert.sum() == 0


def test_a_click_on_a_particle_found_inert_says_it_is_not_and_the_next_analysis_agrees(
    qtbot: QtBot, analysed: tuple[Path, Path]
) -> None:
    run, picker = picker_on(qtbot, analysed)
    assert picker.found.sum() >= 1  # the run's SiO2 references
    target = int(np.flatnonzero(picker.found)[0])
    x, y = float(picker.px[target]), float(picker.py[target])

    assert picker.click_at(x, y) == target
    assert picker.refused.tolist() == [i == target for i in range(len(picker.px))]
    assert not picker.named.any()
    assert picker.points.data["pen"][target].style() == QtCore.Qt.PenStyle.DashLine
    assert "1 named not inert" in picker.message.text()
    saved = inert_file_of(run).read_text().splitlines()
    assert len([line for line in saved if line.startswith("!")]) == 1

    again = analyze_recording(run)
    d = again.detections
    nearest = int(np.argmin(np.hypot(d.x - x, d.y - y)))
    assert again.inert is not None and not again.inert[nearest]
    assert not d.flags[nearest] & INERT_FLAG
    found_before = int(picker.found.sum())
    assert int(again.inert.sum()) == found_before - 1  # the others stay inert

    reopened = InertPicker()
    qtbot.addWidget(reopened)
    assert reopened.open(analysed[1])
    assert np.flatnonzero(reopened.refused).tolist() == [target]
    assert reopened.click_at(x, y) == target  # a second click leaves it to the analysis
    assert not reopened.refused.any()
    assert analyze_recording(run).inert[nearest]
    inert_file_of(run).unlink()


def test_names_survive_reopening_and_clicks_far_from_particles_do_nothing(
    qtbot: QtBot, analysed: tuple[Path, Path]
) -> None:
    run, picker = picker_on(qtbot, analysed)
    empty = next(
        (float(cx), float(cy))
        for cx in range(2, 62, 2)
        for cy in range(2, 62, 2)
        if np.hypot(picker.px - cx, picker.py - cy).min() > 5
    )
    assert picker.click_at(*empty) is None
    assert not inert_file_of(run).exists()
    plain = int(np.flatnonzero(~picker.found)[0])
    found = int(np.flatnonzero(picker.found)[0])
    assert picker.click_at(float(picker.px[plain]), float(picker.py[plain])) == plain
    assert picker.click_at(float(picker.px[found]), float(picker.py[found])) == found

    reopened = InertPicker()
    qtbot.addWidget(reopened)
    assert reopened.open(analysed[1])
    assert np.flatnonzero(reopened.named).tolist() == [plain]
    assert np.flatnonzero(reopened.refused).tolist() == [found]
    inert_file_of(run).unlink()


def test_the_results_view_has_the_picker_and_says_when_it_cannot_be_used(
    qtbot: QtBot, analysed: tuple[Path, Path], tmp_path: Path, write_file: WriteFile
) -> None:
    _, analysis = analysed
    view = ResultsView()
    qtbot.addWidget(view)
    assert view.open(analysis) is not None
    assert view.inert.recording is not None and len(view.inert.px) >= 5
    write_file("particles.csv", "particle_id,x,y,ea_kj_mol\n0,1,2,\n")
    write_file("events.csv", "particle_id,temperature_K,nucleation_s\n0,377.7,\n")
    assert view.open(tmp_path) is not None  # tables without a summary: no picker
    assert view.inert.recording is None
    assert "summary.json" in view.inert.message.text()
