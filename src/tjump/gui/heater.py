"""The heater: setpoint, film temperature, drive and current against time with the rig's
limits drawn in, and a manual set-temperature control that is off by default, bounded by
the limits and unavailable while a run owns the rig."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from numpy.typing import NDArray
from qtpy import QtCore, QtWidgets

from tjump.errors import TjumpError
from tjump.gui.live_data import Snapshot
from tjump.gui.traces import shade_heating, thin_curve
from tjump.rig import Heater, Limits, RigConfig

FloatArray = NDArray[np.float64]
_LIMIT_PEN = pg.mkPen(255, 80, 80, style=QtCore.Qt.PenStyle.DashLine)


class FilmThermometer:
    """The film's temperature from its resistance V/I (R = R0 (1 + alpha (T - T0)))."""

    def __init__(self, r0_ohm: float, alpha_per_K: float, ambient_K: float) -> None:
        self.r0_ohm, self.alpha_per_K, self.ambient_K = r0_ohm, alpha_per_K, ambient_K

    def __call__(self, drive_V: FloatArray, current_A: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            resistance = np.where(current_A > 1e-4, drive_V / current_A, np.nan)
        return np.asarray(self.ambient_K + (resistance / self.r0_ohm - 1.0) / self.alpha_per_K)


def film_thermometer(config: RigConfig) -> FilmThermometer | None:
    """For a simulated rig, whose film's R(T) is known; None for a lab rig (no R0, alpha)."""
    film = config.film if config.kind == "simulated" else None
    return None if film is None else FilmThermometer(film.r0_ohm, film.alpha_per_K, film.t0_K)


def _limit(plot: Any, value: float, text: str) -> None:
    line = pg.InfiniteLine(
        pos=value, angle=0, pen=_LIMIT_PEN, label=text, labelOpts={"position": 0.05}
    )
    plot.addItem(line)


class HeaterPanel(QtWidgets.QWidget):
    """Heater plots and the manual control."""

    def __init__(
        self, limits: Limits, ambient_K: float, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.limits = limits
        self.ambient_K = ambient_K
        self._heater: Heater | None = None
        self._regions: dict[int, Any] = {}
        graphics = pg.GraphicsLayoutWidget()
        self.temperature = graphics.addPlot(row=0, col=0, title="temperature")
        self.temperature.setLabel("left", "T", units="K")
        self.temperature.addLegend(offset=(-5, 5))
        self.drive = graphics.addPlot(row=1, col=0, title="drive voltage")
        self.drive.setLabel("left", "drive", units="V")
        self.current = graphics.addPlot(row=2, col=0, title="film current")
        self.current.setLabel("left", "current", units="A")
        self.current.setLabel("bottom", "time", units="s")
        for plot in (self.drive, self.current):
            plot.setXLink(self.temperature)
        for plot in (self.temperature, self.drive):  # one time axis, at the bottom
            plot.hideAxis("bottom")
        _limit(self.temperature, limits.max_temperature_K, f"max {limits.max_temperature_K:g} K")
        _limit(self.drive, limits.max_drive_V, f"max {limits.max_drive_V:g} V")
        _limit(self.current, limits.max_current_A, f"max {limits.max_current_A:g} A")
        self.setpoint_curve = thin_curve(self.temperature, pg.mkPen(255, 170, 60), "setpoint")
        self.film_curve = thin_curve(self.temperature, pg.mkPen(90, 200, 255), "film (V/I)")
        self.drive_curve = thin_curve(self.drive, pg.mkPen(200, 200, 200))
        self.current_curve = thin_curve(self.current, pg.mkPen(150, 255, 150))
        above = limits.max_time_above
        self.limits_label = QtWidgets.QLabel(
            f"limits: T ≤ {limits.max_temperature_K:g} K, drive ≤ {limits.max_drive_V:g} V, "
            f"current ≤ {limits.max_current_A:g} A, at most {above.seconds:g} s in one go "
            f"above {above.temperature_K:g} K"
        )
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(graphics, 1)
        layout.addWidget(self.limits_label)
        layout.addWidget(self._manual_box())
        self.set_heater(None)

    def _manual_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("manual heater (only when no run is going)")
        self.manual_enabled = QtWidgets.QCheckBox("enable manual control")
        self.manual_enabled.setChecked(False)
        self.manual_enabled.toggled.connect(self._update_enabled)
        self.target = QtWidgets.QDoubleSpinBox()
        self.target.setDecimals(1)
        self.target.setSuffix(" K")
        self.target.setRange(self.ambient_K, self.limits.max_temperature_K)
        self.target.setValue(self.ambient_K)
        self.apply_button = QtWidgets.QPushButton("set temperature")
        self.apply_button.clicked.connect(self._apply)
        self.off_button = QtWidgets.QPushButton("heater off")
        self.off_button.clicked.connect(self.heater_off)
        self.manual_status = QtWidgets.QLabel("")
        row = QtWidgets.QHBoxLayout(box)
        for widget in (self.manual_enabled, self.target, self.apply_button, self.off_button):
            row.addWidget(widget)
        row.addWidget(self.manual_status, 1)
        return box

    def set_heater(self, heater: Heater | None) -> None:
        """The heater manual control may use, or None while a run owns the rig."""
        if heater is None and self._heater is not None:
            self.manual_enabled.setChecked(False)
        self._heater = heater
        self.manual_enabled.setEnabled(heater is not None)
        if heater is not None:
            high = heater.calibration.range_K[1]
            self.target.setRange(self.ambient_K, min(self.limits.max_temperature_K, high))
        self._update_enabled()

    def _update_enabled(self) -> None:
        on = self._heater is not None and self.manual_enabled.isChecked()
        self.target.setEnabled(on)
        self.apply_button.setEnabled(on)
        self.off_button.setEnabled(self._heater is not None)
        if self._heater is not None and not self.manual_enabled.isChecked():
            self.heater_off()

    def _apply(self) -> None:
        if self._heater is None or not self.manual_enabled.isChecked():
            return
        try:
            volts = self._heater.set_temperature(self.target.value())
        except TjumpError as e:
            self.manual_status.setText(f"refused: {e}")
            return
        self.manual_status.setText(f"heater on: {self.target.value():.1f} K, drive {volts:.3f} V")

    def heater_off(self) -> None:
        if self._heater is None:
            return
        try:
            self._heater.make_safe()
        except TjumpError as e:
            self.manual_status.setText(f"HEATER NOT CONFIRMED SAFE: {e}")
            return
        self.manual_status.setText("heater off (0 V, output off)")

    def update_view(self, snap: Snapshot) -> None:
        t = snap.time_s
        if not len(t):
            return
        self.setpoint_curve.setData(t, snap.setpoint_K)
        if len(snap.film_K):
            self.film_curve.setData(t, snap.film_K, connect="finite")
        self.drive_curve.setData(t, snap.drive_V)
        self.current_curve.setData(t, snap.current_A)
        shade_heating(self.temperature, snap.spans, self._regions)
