"""Per-particle traces as they are measured: the followed particles, the common-mode
reference and an overview of every particle, with heating shaded and nucleations marked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtWidgets

from tjump.gui.live_data import HeatSpan, Snapshot
from tjump.gui.style import colour

_HEAT_BRUSH = pg.mkBrush(70, 38, 20)  # opaque: far cheaper to paint than a blend
_HOT_KINDS = ("heat", "ablation", "hold")


def shade_heating(plot: Any, spans: list[HeatSpan], regions: dict[int, Any]) -> None:
    """Keep one shaded region per heating segment of `spans` on `plot`."""
    for span in spans:
        if span.kind not in _HOT_KINDS:
            continue
        region = regions.get(span.segment)
        if region is None:
            region = pg.LinearRegionItem(brush=_HEAT_BRUSH, movable=False, pen=pg.mkPen(None))
            region.setZValue(-10)
            plot.addItem(region)
            regions[span.segment] = region
        region.setRegion((span.start_s, span.end_s))


def thin_curve(plot: Any, pen: Any, name: str | None = None) -> Any:
    """A thin line drawn with at most about one point per pixel (min-max per pixel)."""
    curve = plot.plot(pen=pen, name=name)
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    return curve


class TracesPanel(QtWidgets.QWidget):
    """Three linked plots sharing the run's time axis."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        graphics = pg.GraphicsLayoutWidget()
        self.traces = graphics.addPlot(row=0, col=0, title="followed particles")
        self.traces.setLabel("left", "intensity", units="ADU")
        self.traces.addLegend(offset=(-5, 5))
        self.reference = graphics.addPlot(row=1, col=0, title="common-mode reference")
        self.reference.setLabel("left", "I / I0")
        self.reference.setXLink(self.traces)
        self.overview = graphics.addPlot(row=2, col=0, title="all particles (I / I0 / ref)")
        self.overview.setLabel("left", "particle")
        self.overview.setLabel("bottom", "time", units="s")
        self.overview.setXLink(self.traces)
        for plot in (self.traces, self.reference):  # one time axis, at the bottom
            plot.hideAxis("bottom")
        self.overview.invertY(True)
        self.overview_image = pg.ImageItem(axisOrder="row-major")
        self.overview_image.setLookupTable(pg.colormap.get("viridis").getLookupTable())
        self.overview.addItem(self.overview_image)
        self.overview_marks = pg.ScatterPlotItem(
            size=5, symbol="x", pen=pg.mkPen(255, 60, 60), brush=None
        )
        self.overview.addItem(self.overview_marks)
        layout = graphics.ci.layout
        layout.setRowStretchFactor(0, 3)
        layout.setRowStretchFactor(1, 1)
        layout.setRowStretchFactor(2, 2)
        self.reference_curve = thin_curve(self.reference, pg.mkPen(200, 200, 200))
        self.marks = pg.ScatterPlotItem(size=11, symbol="t", pen=pg.mkPen("w"), brush=None)
        self.marks.setZValue(10)
        self.traces.addItem(self.marks)
        self._curves: dict[int, Any] = {}
        self._regions: dict[str, dict[int, Any]] = {"traces": {}, "reference": {}}
        box = QtWidgets.QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(graphics)

    def update_view(self, snap: Snapshot) -> None:
        """Redraw from a snapshot (the selected particles are those it holds)."""
        t = snap.trace_time_s
        for p in [p for p in self._curves if p not in snap.selected]:
            self.traces.removeItem(self._curves.pop(p))
            self.traces.legend.removeItem(f"#{p}")
        for p, y in snap.selected.items():
            curve = self._curves.get(p)
            if curve is None:
                curve = thin_curve(self.traces, pg.mkPen(colour(p)), name=f"#{p}")
                self._curves[p] = curve
            curve.setData(t, y)
        if len(t):
            self.reference_curve.setData(t, snap.reference)
        shade_heating(self.traces, snap.spans, self._regions["traces"])
        shade_heating(self.reference, snap.spans, self._regions["reference"])
        self._mark(snap)
        if snap.overview is not None and snap.overview.size and len(t):
            self.overview_image.setImage(snap.overview, autoLevels=False, levels=(0.75, 1.05))
            count = snap.overview.shape[0]
            self.overview_image.setRect(float(t[0]), -0.5, float(t[-1] - t[0]) or 1.0, count)

    def _mark(self, snap: Snapshot) -> None:
        t = snap.trace_time_s
        xs, ys, brushes = [], [], []
        for e in snap.events:
            trace = snap.selected.get(e.particle)
            if trace is None or not len(t):
                continue
            i = min(int(np.searchsorted(t, e.time_s)), len(t) - 1)
            xs.append(e.time_s)
            ys.append(float(trace[i]))
            brushes.append(pg.mkBrush(colour(e.particle)))
        self.marks.setData(x=xs, y=ys, brush=brushes)
        self.overview_marks.setData(
            x=[e.time_s for e in snap.events], y=[e.particle for e in snap.events]
        )
