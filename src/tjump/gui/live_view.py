"""The camera image as it comes (shown at the display's pace, not the camera's), with
contrast controls and every detected particle outlined and numbered; click one to follow."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from qtpy import QtCore, QtGui, QtWidgets

from tjump.analysis import Detections
from tjump.gui.style import colour
from tjump.storage.layout import FrameRecord

_OUTLINE = pg.mkPen(80, 220, 255, 200, width=1)
_SWITCHED = pg.mkPen(255, 70, 70, 230, width=1.5)
_DIAMETER_PX = 7.0
_HISTOGRAM_EVERY_S = 0.5
_NUMBER_PX = 36  # the number sits in the upper right quarter of this square


def number_symbol(i: int) -> QtGui.QPainterPath:
    """The particle's number as a scatter symbol, up and right of the particle: one item
    draws every number from a cache, instead of a text item per particle."""
    path = QtGui.QPainterPath()
    path.addText(0, 0, QtGui.QFont("Sans"), str(i))
    box = path.boundingRect()
    scale = min(0.3 / box.height(), 0.38 / box.width())
    transform = QtGui.QTransform()
    transform.translate(0.1, -0.1)
    transform.scale(scale, scale)
    transform.translate(-box.left(), -box.bottom())
    return transform.map(path)


_FIXED_WIDTH = QtWidgets.QSizePolicy.Policy.Ignored  # new text must not relayout the view


class LiveView(QtWidgets.QWidget):
    """Latest frame, contrast, particle outlines. Emits `particle_clicked(id)`."""

    particle_clicked = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.frames_shown = 0
        self._shape: tuple[int, ...] = ()
        self._detections: Detections | None = None
        self._selected: set[int] = set()
        self._switched: set[int] = set()
        graphics = pg.GraphicsLayoutWidget()
        self.view = graphics.addViewBox(lockAspect=True, invertY=True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self.outlines = pg.ScatterPlotItem(pxMode=False, brush=None, symbol="o")
        self.outlines.sigClicked.connect(self._on_click)
        self.view.addItem(self.outlines)
        self.numbers = pg.ScatterPlotItem(pxMode=True, pen=None, brush=pg.mkBrush(180, 240, 255))
        self.view.addItem(self.numbers)
        self.histogram = pg.HistogramLUTItem(image=self.image)
        self.image.sigImageChanged.disconnect(self.histogram.imageChanged)  # redone at 2 Hz
        graphics.addItem(self.histogram)
        self._histogram_at = 0.0
        self.caption = QtWidgets.QLabel("no frames yet")
        self.caption.setSizePolicy(_FIXED_WIDTH, QtWidgets.QSizePolicy.Policy.Preferred)
        self.auto_contrast = QtWidgets.QCheckBox("auto contrast")
        self.auto_contrast.setChecked(True)
        self.auto_contrast.setToolTip("levels from the 0.5 and 99.9 percentiles of each frame")
        self.show_outlines = QtWidgets.QCheckBox("outlines")
        self.show_outlines.setChecked(True)
        self.show_outlines.toggled.connect(self._toggle_outlines)
        bar = QtWidgets.QHBoxLayout()
        bar.addWidget(self.caption, 1)
        bar.addWidget(self.auto_contrast)
        bar.addWidget(self.show_outlines)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(graphics, 1)
        layout.addLayout(bar)

    def show_frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        """Display one frame (the newest; older ones are skipped, not queued)."""
        levels = self._auto_levels(image) if self.auto_contrast.isChecked() else None
        self.image.setImage(image, autoLevels=False, levels=levels)
        now = time.monotonic()
        if now - self._histogram_at > _HISTOGRAM_EVERY_S:
            self._histogram_at = now
            self.histogram.imageChanged()
        if levels is not None:
            self.histogram.setLevels(*levels)
        if image.shape != self._shape:
            self._shape = image.shape
            self.view.autoRange(padding=0)
        self.frames_shown += 1
        cycle = f", cycle {record.cycle}" if record.cycle else ""
        self.caption.setText(
            f"frame {record.frame}, {record.time_s:.1f} s: {record.kind} "
            f"{record.temperature_K:.1f} K{cycle}"
        )

    def _auto_levels(self, image: NDArray[np.uint16]) -> tuple[float, float]:
        """The 0.5 and 99.9 percentiles, kept while they move less than 3 % of the range
        (so steady frames do not redraw the histogram)."""
        step = max(1, min(image.shape) // 128)
        lo, hi = (float(v) for v in np.percentile(image[::step, ::step], (0.5, 99.9)))
        hi = max(hi, lo + 1)
        old_lo, old_hi = self.image.getLevels() if self.image.levels is not None else (lo, hi)
        tolerance = 0.03 * (old_hi - old_lo)
        if abs(lo - old_lo) > tolerance or abs(hi - old_hi) > tolerance:
            return lo, hi
        return float(old_lo), float(old_hi)

    def set_particles(self, detections: Detections) -> None:
        """Outline and number the particles found in the baseline frames."""
        self._detections = detections
        self.numbers.setData(
            x=detections.x,
            y=detections.y,
            symbol=[number_symbol(i) for i in range(len(detections))],
            size=_NUMBER_PX,
        )
        self._redraw_outlines()

    def set_selected(self, selected: set[int]) -> None:
        self._selected = set(selected)
        self._redraw_outlines()

    def set_switched(self, switched: set[int]) -> None:
        """Particles that have nucleated in the current heat (outlined red)."""
        if switched != self._switched:
            self._switched = set(switched)
            self._redraw_outlines()

    def _redraw_outlines(self) -> None:
        d = self._detections
        if d is None:
            return
        pens = [
            pg.mkPen(colour(i), width=2.5)
            if i in self._selected
            else _SWITCHED
            if i in self._switched
            else _OUTLINE
            for i in range(len(d))
        ]
        self.outlines.setData(
            x=d.x, y=d.y, size=_DIAMETER_PX, pen=pens, data=np.arange(len(d)), brush=None
        )

    def _toggle_outlines(self, visible: bool) -> None:
        self.outlines.setVisible(visible)
        self.numbers.setVisible(visible)

    def _on_click(self, _item: object, points: list[Any], _event: object) -> None:
        if len(points):
            self.particle_clicked.emit(int(points[0].data()))
