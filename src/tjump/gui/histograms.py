"""Nucleation-time histograms, one per temperature, growing as cycles accumulate."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy import QtWidgets

from tjump.gui.style import colour


def histogram_groups(
    pairs: Iterable[tuple[float, float]],
) -> dict[float, list[float]]:
    """Nucleation times grouped by temperature, from (temperature_K, nucleation_s) pairs."""
    groups: dict[float, list[float]] = defaultdict(list)
    for temperature, seconds in pairs:
        groups[round(temperature, 1)].append(seconds)
    return dict(sorted(groups.items()))


def draw_histograms(plot: Any, groups: dict[float, list[float]], bins: int = 20) -> None:
    """Step histograms of every group on one plot, with a shared set of bins."""
    plot.clear()
    values = [v for times in groups.values() for v in times]
    if not values:
        return
    edges = np.histogram_bin_edges(values, bins=bins)
    for i, (temperature, times) in enumerate(groups.items()):
        counts, _ = np.histogram(times, bins=edges)
        plot.plot(
            edges,
            counts,
            stepMode="center",
            pen=pg.mkPen(colour(i), width=2),
            name=f"{temperature:.1f} K: n = {len(times)}, mean {np.mean(times):.1f} s",
        )


class HistogramPanel(QtWidgets.QWidget):
    """Live histograms of the nucleation times detected so far."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        graphics = pg.GraphicsLayoutWidget()
        self.plot = graphics.addPlot(title="nucleation times per temperature")
        self.plot.setLabel("bottom", "time from the jump", units="s")
        self.plot.setLabel("left", "count")
        self.plot.addLegend(offset=(-5, 5))
        self.summary = QtWidgets.QLabel("no nucleations yet")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(graphics, 1)
        layout.addWidget(self.summary)
        self._count = -1

    def update_view(self, pairs: list[tuple[float, float]]) -> None:
        """Redraw if the number of nucleations changed."""
        if len(pairs) == self._count:
            return
        self._count = len(pairs)
        groups = histogram_groups(pairs)
        draw_histograms(self.plot, groups)
        self.summary.setText(
            f"{len(pairs)} nucleations detected live at {len(groups)} temperature(s)"
            if pairs
            else "no nucleations yet"
        )
