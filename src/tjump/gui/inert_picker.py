"""Naming inert reference particles by clicking them in the image.

The picker shows the recording's image before the first jump with the analysis's particles
on it. A click on a particle marks it inert, a second click unmarks it. Particles the
analysis found inert by itself are drawn outlined; a click on one of those says it is *not*
inert (the user knows it switches, or it is no reference at all), a second click leaves the
decision to the analysis again. The marks are saved at once to the recording's inert file
(`inert.txt` in the recording folder, one x,y position a line, `!` before those not inert:
the format `tjump analyze --inert` reads), which the next `tjump analyze` of that recording
uses by itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from qtpy import QtCore, QtWidgets

from tjump.analysis.recording import open_recording
from tjump.analysis.references import MATCH_PX, inert_file_of, inert_lines, write_inert_file
from tjump.errors import InputError
from tjump.storage.layout import ANALYSIS_PARTICLES, ANALYSIS_SUMMARY

FloatArray = NDArray[np.float64]
BASELINE_FRAMES = 50  # frames averaged for the image (the analysis detects in these)
_PLAIN = (pg.mkPen(90, 200, 255), pg.mkBrush(0, 0, 0, 0))
_FOUND = (pg.mkPen(255, 170, 0, width=2), pg.mkBrush(0, 0, 0, 0))
_NAMED = (pg.mkPen(255, 170, 0, width=2), pg.mkBrush(255, 120, 0, 200))
_REFUSED = (
    pg.mkPen(255, 60, 60, width=2, style=QtCore.Qt.PenStyle.DashLine),
    pg.mkBrush(0, 0, 0, 0),
)


class InertPicker(QtWidgets.QWidget):
    """The particles over the image; clicking one names it inert (or, when the analysis
    found it inert, not inert) or takes the name back."""

    changed = QtCore.Signal(int)  # how many particles are named inert

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.recording: Path | None = None
        self.px: FloatArray = np.empty(0)
        self.py: FloatArray = np.empty(0)
        self.found: NDArray[np.bool_] = np.zeros(0, dtype=bool)  # inert by the analysis
        self.named: NDArray[np.bool_] = np.zeros(0, dtype=bool)  # inert by the user
        self.refused: NDArray[np.bool_] = np.zeros(0, dtype=bool)  # not inert, by the user
        self.message = QtWidgets.QLabel("open an analysis to name inert particles")
        self.message.setWordWrap(True)
        graphics = pg.GraphicsLayoutWidget()
        self.view = graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.points = pg.ScatterPlotItem(size=14, symbol="o", hoverable=True)
        self.points.sigClicked.connect(self._clicked)
        self.view.addItem(self.points)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.message)
        layout.addWidget(graphics, 1)

    def open(self, analysis: Path) -> bool:
        """Show the particles of the analysis in `analysis` over its recording's image;
        False (and why, in the message) when that cannot be done."""
        try:
            recording, x, y, found = _read_analysis(analysis)
            image = _baseline_image(recording)
        except (InputError, OSError, ValueError, KeyError) as e:
            self.recording = None
            self.message.setText(f"inert particles cannot be named here: {e}")
            self.points.clear()
            return False
        self.recording, self.px, self.py, self.found = recording, x, y, found
        self.named, self.refused = _named_in(inert_file_of(recording), x, y)
        self.refused &= found  # only a finding of the analysis can be overruled
        self.image.setImage(image, autoLevels=True)
        self._draw()
        return True

    def toggle(self, particle: int) -> None:
        """Name `particle` inert (not inert, if the analysis found it inert), or take the
        name back, and save the file."""
        if self.recording is None or not 0 <= particle < len(self.named):
            return
        if self.found[particle]:
            self.refused[particle] = not self.refused[particle]
        else:
            self.named[particle] = not self.named[particle]
        write_inert_file(inert_file_of(self.recording), self.px, self.py, self.named, self.refused)
        self._draw()
        self.changed.emit(int(self.named.sum()))

    def click_at(self, x: float, y: float) -> int | None:
        """A click at image position (x, y): toggles the nearest particle within
        `MATCH_PX` pixels and returns it, or None when no particle is that close."""
        if not len(self.px):
            return None
        distance = np.hypot(self.px - x, self.py - y)
        nearest = int(np.argmin(distance))
        if distance[nearest] > MATCH_PX:
            return None
        self.toggle(nearest)
        return nearest

    def _clicked(self, _item: object, points: list[pg.SpotItem], _event: object) -> None:
        if len(points):
            self.toggle(int(points[0].data()))

    def _draw(self) -> None:
        styles = [
            _REFUSED if refused else _NAMED if named else _FOUND if found else _PLAIN
            for named, refused, found in zip(self.named, self.refused, self.found, strict=True)
        ]
        self.points.setData(
            x=self.px,
            y=self.py,
            data=np.arange(len(self.px)),
            pen=[s[0] for s in styles],
            brush=[s[1] for s in styles],
        )
        assert self.recording is not None
        file = inert_file_of(self.recording)
        self.message.setText(
            f"{int(self.named.sum())} named inert (filled), {int(self.refused.sum())} named not "
            f"inert (dashed red), {int(self.found.sum())} found inert by the analysis "
            f"(outlined); saved in {file}, used by the next `tjump analyze` of "
            f"{self.recording.name}. Click a particle to name it inert, or one the analysis "
            "found inert to say it is not; click again to take it back."
        )


def _read_analysis(folder: Path) -> tuple[Path, FloatArray, FloatArray, NDArray[np.bool_]]:
    """The recording an analysis read (from its summary) and its particles: x, y and
    whether the analysis found them inert."""
    summary_path = folder / ANALYSIS_SUMMARY
    if not summary_path.is_file():
        raise InputError(f"{folder} has no {ANALYSIS_SUMMARY}: run `tjump analyze` first")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    recording = Path(summary["input"])
    if not recording.is_dir():
        raise InputError(f"the analysed recording {recording} is not there any more")
    table = np.genfromtxt(folder / ANALYSIS_PARTICLES, delimiter=",", names=True)
    table = np.atleast_1d(table)
    found = np.zeros(len(table), dtype=bool)
    if "inert" in (table.dtype.names or ()):
        found = np.nan_to_num(np.asarray(table["inert"], dtype=np.float64)) > 0
    x = np.asarray(table["x"], dtype=np.float64)
    y = np.asarray(table["y"], dtype=np.float64)
    return recording, x, y, found


def _baseline_image(recording: Path) -> FloatArray:
    """The mean of the recording's first frames (before the first jump)."""
    rec = open_recording(recording)
    return rec.mean_image(0, min(BASELINE_FRAMES, rec.frames))


def _named_in(
    file: Path, x: FloatArray, y: FloatArray
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The particles an existing inert file names inert, and not inert, by position (nearest
    within `MATCH_PX`); lines that match none are dropped when the file is next saved."""
    named, refused = np.zeros(len(x), dtype=bool), np.zeros(len(x), dtype=bool)
    if not file.is_file() or not len(x):
        return named, refused
    for line in inert_lines(file.read_text(encoding="utf-8")):
        if line.values is None or len(line.values) != 2:
            continue
        distance = np.hypot(x - line.values[0], y - line.values[1])
        if distance.min() <= MATCH_PX:
            (refused if line.not_inert else named)[int(np.argmin(distance))] = True
    return named, refused
