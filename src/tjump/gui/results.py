"""Results of a finished run: what `tjump analyze` wrote (particles.csv, events.csv and
its figures, read back through `tjump.analysis.tables.read_results`), drawn so each point
can be clicked to see that particle's trace."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from qtpy import QtCore, QtGui, QtWidgets

from tjump.analysis.kinetics import R_KJ
from tjump.analysis.tables import EventResults, ParticleResults, read_results
from tjump.errors import InputError
from tjump.gui.histograms import draw_histograms, histogram_groups
from tjump.gui.inert_picker import InertPicker
from tjump.gui.style import hide_row_numbers
from tjump.storage.layout import (
    ANALYSIS_FIGURES_DIR,
    ANALYSIS_TRACES,
    FRAMES_CSV,
    LIVE_PARTICLES,
    LIVE_TRACES,
    MANIFEST,
)

FloatArray = NDArray[np.float64]
__all__ = ["R_KJ", "Results", "ResultsView"]
_MATCH_PX = 2.0  # an analysis particle and a live one this close are the same


@dataclass
class Results:
    """The analysis tables of one run, and its live traces when they are there."""

    folder: Path
    particles: ParticleResults
    events: EventResults
    figures: list[Path]
    trace_time_s: FloatArray | None = None
    traces: dict[int, FloatArray] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> Results:
        """Read `folder` (an analysis output, or a run directory holding one)."""
        particles, events = read_results(folder)
        figures = [*folder.glob("*.png"), *folder.glob(f"{ANALYSIS_FIGURES_DIR}/*.png")]
        results = cls(folder, particles, events, sorted(figures))
        if (folder / ANALYSIS_TRACES).is_file():
            results._load_analysis_traces(folder / ANALYSIS_TRACES)
        else:
            run = next((d for d in (folder, folder.parent) if (d / MANIFEST).is_file()), None)
            if run is not None and (run / LIVE_TRACES).is_file():
                results._load_live_traces(run)
        return results

    def _load_analysis_traces(self, path: Path) -> None:
        """The analysis's own traces: columns are its particle ids."""
        with np.load(path) as data:
            self.trace_time_s = np.asarray(data["time_s"], dtype=np.float64)
            intensity = np.asarray(data["intensity"], dtype=np.float64)
        self.traces = {p: intensity[:, p] for p in self.ids() if 0 <= p < intensity.shape[1]}

    def _load_live_traces(self, run: Path) -> None:
        """The traces measured during the run, matched to the analysis's particles by
        position (the live detection numbers particles its own way)."""
        live = np.genfromtxt(run / LIVE_PARTICLES, delimiter=",", names=True)
        table = np.genfromtxt(run / LIVE_TRACES, delimiter=",", names=True)
        with (run / FRAMES_CSV).open(newline="", encoding="utf-8") as f:
            times = {int(r["frame"]): float(r["time_s"]) for r in csv.DictReader(f)}
        frames = np.atleast_1d(table["frame"]).astype(int)
        self.trace_time_s = np.array([times.get(int(i), math.nan) for i in frames])
        live_x, live_y = np.atleast_1d(live["x"]), np.atleast_1d(live["y"])
        live_id = np.atleast_1d(live["particle_id"]).astype(int)
        p = self.particles
        for i, px, py in zip(self.ids(), p.x, p.y, strict=True):
            distance = np.hypot(live_x - px, live_y - py)
            if len(distance) and distance.min() <= _MATCH_PX:
                self.traces[i] = np.atleast_1d(table[f"p{live_id[int(distance.argmin())]}"])

    def ids(self) -> list[int]:
        return [int(i) for i in self.particles.particle_id]

    def row(self, particle: int) -> int | None:
        """The row of `particle` in the particle table."""
        rows = np.flatnonzero(self.particles.particle_id == particle)
        return int(rows[0]) if len(rows) else None

    def nucleations(self) -> list[tuple[int, float, float]]:
        """(particle, temperature_K, nucleation_s) of every cycle that switched."""
        e = self.events
        switched = np.isfinite(e.nucleation_s)
        return [
            (int(p), float(t), float(s))
            for p, t, s in zip(
                e.particle_id[switched],
                e.temperature_K[switched],
                e.nucleation_s[switched],
                strict=True,
            )
        ]

    def arrhenius(self) -> dict[int, tuple[FloatArray, FloatArray]]:
        """Per particle: 1000/T and ln(1 / mean nucleation time) at each temperature."""
        times: dict[tuple[int, float], list[float]] = defaultdict(list)
        for particle, temperature, seconds in self.nucleations():
            times[(particle, round(temperature, 2))].append(seconds)
        points: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for (particle, temperature), values in sorted(times.items()):
            points[particle].append((1000.0 / temperature, -math.log(float(np.mean(values)))))
        return {
            p: (np.array([x for x, _ in v]), np.array([y for _, y in v])) for p, v in points.items()
        }


_TABLE_COLUMNS = ("particle_id", "x", "y", "size_nm", "ea_kj_mol", "ea_stderr_kj_mol")


class ResultsView(QtWidgets.QWidget):
    """Histograms, Arrhenius plots, Ea against size, and the trace of the clicked particle."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.results: Results | None = None
        self.selected: int | None = None
        self._recent: Path | None = None
        open_button = QtWidgets.QPushButton("open results…")
        open_button.clicked.connect(self._choose)
        self.recent_button = QtWidgets.QPushButton("open the last run")
        self.recent_button.setEnabled(False)
        self.recent_button.clicked.connect(lambda: self._recent and self.open(self._recent))
        self.message = QtWidgets.QLabel("open a folder written by `tjump analyze`")
        self.message.setWordWrap(True)
        self.table = QtWidgets.QTableWidget(0, len(_TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(_TABLE_COLUMNS)
        hide_row_numbers(self.table)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.itemSelectionChanged.connect(self._table_selected)
        graphics = pg.GraphicsLayoutWidget()
        self.histogram = graphics.addPlot(row=0, col=0, title="nucleation times")
        self.histogram.setLabel("bottom", "time from the jump", units="s")
        self.histogram.addLegend(offset=(-5, 5))
        self.arrhenius = graphics.addPlot(row=0, col=1, title="Arrhenius, per particle")
        self.arrhenius.setLabel("bottom", "1000 / T (1/K)")
        self.arrhenius.setLabel("left", "ln(1 / mean nucleation time / s)")
        self.ea_size = graphics.addPlot(row=1, col=0, title="Ea against size")
        self.ea_size.setLabel("bottom", "size (nm)")
        self.ea_size.setLabel("left", "Ea (kJ/mol)")
        self.trace = graphics.addPlot(row=1, col=1, title="trace")
        self.trace.setLabel("bottom", "time", units="s")
        self.ea_points = pg.ScatterPlotItem(
            size=9, pen=pg.mkPen("w"), brush=pg.mkBrush(90, 200, 255)
        )
        self.ea_points.sigClicked.connect(self._point_clicked)
        self.ea_size.addItem(self.ea_points)
        self.ea_errors = pg.ErrorBarItem(pen=pg.mkPen(150, 150, 150))
        self.ea_size.addItem(self.ea_errors)
        self.figures = QtWidgets.QComboBox()
        self.figures.currentIndexChanged.connect(self._show_figure)
        self.figure = QtWidgets.QLabel()
        self.figure.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        plots = QtWidgets.QTabWidget()
        plots.addTab(graphics, "plots")
        figure_page = QtWidgets.QWidget()
        figure_box = QtWidgets.QVBoxLayout(figure_page)
        figure_box.addWidget(self.figures)
        figure_box.addWidget(self.figure, 1)
        plots.addTab(figure_page, "analysis figures")
        self.inert = InertPicker()
        plots.addTab(self.inert, "inert particles")
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([350, 900])
        top = QtWidgets.QHBoxLayout()
        top.addWidget(open_button)
        top.addWidget(self.recent_button)
        top.addWidget(self.message, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    def set_recent(self, run: Path) -> None:
        self._recent = run
        self.recent_button.setEnabled(True)

    def _choose(self) -> None:
        name = QtWidgets.QFileDialog.getExistingDirectory(self, "open results", "runs")
        if name:
            self.open(Path(name))

    def open(self, folder: Path) -> Results | None:
        """Show the results in `folder`, or say why they cannot be shown."""
        try:
            results = Results.load(folder)
        except (InputError, OSError, ValueError, KeyError) as e:
            self.message.setText(str(e))
            return None
        self.results = results
        n_events = len(results.nucleations())
        traces = "with live traces" if results.traces else "no traces in this folder"
        self.message.setText(
            f"{folder}: {len(results.ids())} particles, {n_events} nucleations, {traces}"
        )
        self._fill_table(results)
        self.histogram.clear()
        draw_histograms(
            self.histogram, histogram_groups((t, s) for _, t, s in results.nucleations())
        )
        self._draw_ea_size(results)
        self.figures.clear()
        self.figures.addItems([p.name for p in results.figures])
        self.inert.open(results.folder)
        self.select(results.ids()[0] if results.ids() else None)
        return results

    def _fill_table(self, results: Results) -> None:
        p = results.particles
        columns = (p.particle_id, p.x, p.y, p.size_nm, p.ea_kj_mol, p.ea_stderr_kj_mol)
        self.table.blockSignals(True)
        self.table.setRowCount(len(p.particle_id))
        for col, values in enumerate(columns):
            for row, value in enumerate(values.tolist()):
                text = "" if not math.isfinite(value) else f"{value:g}"
                self.table.setItem(row, col, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.blockSignals(False)

    def _draw_ea_size(self, results: Results) -> None:
        p = results.particles
        size, ea, err, ids = p.size_nm, p.ea_kj_mol, p.ea_stderr_kj_mol, p.particle_id
        x = np.where(np.isfinite(size), size, ids)  # without a size calibration: by id
        self.ea_size.setLabel("bottom", "size (nm)" if np.isfinite(size).any() else "particle")
        ok = np.isfinite(ea)
        self.ea_points.setData(x=x[ok], y=ea[ok], data=ids[ok])
        has_err = ok & np.isfinite(err)
        self.ea_errors.setData(x=x[has_err], y=ea[has_err], height=2 * err[has_err])

    def select(self, particle: int | None) -> None:
        """Highlight `particle` in every plot and show its trace."""
        self.selected = particle
        results = self.results
        self.arrhenius.clear()
        self.trace.clear()
        if results is None or particle is None:
            return
        for p, (x, y) in results.arrhenius().items():
            chosen = p == particle
            pen = pg.mkPen(255, 200, 0, width=2) if chosen else pg.mkPen(120, 120, 140, 120)
            item = self.arrhenius.plot(x, y, pen=pen, symbol="o", symbolSize=6 if chosen else 4)
            item.setZValue(10 if chosen else 0)
        row = results.row(particle)
        if row is not None:
            self._draw_fit(results, row)
        self.trace.setTitle(f"particle {particle}")
        if results.trace_time_s is not None and particle in results.traces:
            self.trace.plot(
                results.trace_time_s, results.traces[particle], pen=pg.mkPen(90, 200, 255)
            )

    def _draw_fit(self, results: Results, row: int) -> None:
        p = results.particles
        particle = int(p.particle_id[row])
        ea, ln_a = float(p.ea_kj_mol[row]), float(p.ln_prefactor[row])
        points = results.arrhenius().get(particle)
        if not (math.isfinite(ea) and math.isfinite(ln_a)) or points is None or not len(points[0]):
            return
        x = np.linspace(points[0].min(), points[0].max(), 2)
        self.arrhenius.plot(
            x,
            ln_a - ea * x / (1000 * R_KJ),
            pen=pg.mkPen(255, 90, 90, style=QtCore.Qt.PenStyle.DashLine),
        )
        self.arrhenius.setTitle(f"Arrhenius: particle {particle}, Ea = {ea:.0f} kJ/mol")

    def _point_clicked(self, _item: object, points: list[Any], _event: object) -> None:
        if len(points):
            self.select(int(points[0].data()))

    def _table_selected(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if rows and self.results is not None:
            self.select(self.results.ids()[min(rows)])

    def _show_figure(self, index: int) -> None:
        if self.results is None or not 0 <= index < len(self.results.figures):
            self.figure.clear()
            return
        pixmap = QtGui.QPixmap(str(self.results.figures[index]))
        self.figure.setPixmap(pixmap.scaled(900, 650, QtCore.Qt.AspectRatioMode.KeepAspectRatio))
