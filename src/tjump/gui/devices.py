"""Devices: what the rig is made of, whether each answers, and the heater's state."""

from __future__ import annotations

from collections.abc import Callable

from qtpy import QtGui, QtWidgets

from tjump.gui.style import hide_row_numbers, stretch_last_column
from tjump.rig import Rig

_ROWS = ("camera", "daq", "heater supply", "heater")


def check_rig(rig: Rig) -> list[tuple[str, bool, str]]:
    """Ask every device something harmless: (device, answered, what it said)."""
    checks: list[tuple[str, Callable[[], str]]] = [
        (
            "camera",
            lambda: f"{rig.camera.name}: {rig.camera.shape()[1]} x {rig.camera.shape()[0]} px",
        ),
        (
            "daq",
            lambda: f"{rig.daq.name}: {rig.daq.sample_rate_hz:g} Hz, {', '.join(rig.daq.channels)}",
        ),
        ("heater supply", rig.heater.supply.identity),
        ("heater", lambda: _heater_state(rig)),
    ]
    results = []
    for name, ask in checks:
        try:
            results.append((name, True, ask()))
        except Exception as e:  # any fault is shown, not raised: that is the point
            results.append((name, False, f"{type(e).__name__}: {e}"))
    return results


def _heater_state(rig: Rig) -> str:
    supply = rig.heater.supply
    state = "safe (0 V, output off)" if rig.heater.is_safe() else "ON"
    output = "on" if supply.output_enabled() else "off"
    return f"{state}: drive {supply.voltage():.3f} V, output {output}"


class DevicesPanel(QtWidgets.QWidget):
    """A table of devices and a `check` button (disabled while a run owns the rig)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._rig: Rig | None = None
        self.rig_label = QtWidgets.QLabel("")
        self.table = QtWidgets.QTableWidget(len(_ROWS), 3)
        self.table.setHorizontalHeaderLabels(("device", "state", "answer"))
        hide_row_numbers(self.table)
        stretch_last_column(self.table)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.check_button = QtWidgets.QPushButton("check")
        self.check_button.clicked.connect(self.check)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.rig_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.check_button)

    def set_rig(self, rig: Rig | None, owner: str = "") -> None:
        """The rig to check, or None while a run owns it (`owner` says which)."""
        self._rig = rig
        self.check_button.setEnabled(rig is not None)
        if rig is None:
            self.rig_label.setText(f"devices in use by {owner}; check after it ends")
            return
        c = rig.config
        self.rig_label.setText(f"rig '{c.name}' ({c.kind}): {c.description}")
        self.check()

    def check(self) -> None:
        if self._rig is None:
            return
        for row, (name, ok, text) in enumerate(check_rig(self._rig)):
            state = QtWidgets.QTableWidgetItem("ok" if ok else "FAULT")
            state.setForeground(QtGui.QColor("#30a030" if ok else "#d03030"))
            self.table.setItem(row, 0, QtWidgets.QTableWidgetItem(name))
            self.table.setItem(row, 1, state)
            self.table.setItem(row, 2, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        stretch_last_column(self.table)
