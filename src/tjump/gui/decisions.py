"""The closed loop's decisions as they happen: why a hold ended, a temperature's series
stopped, a suspension and its reason, a resume or an abort, a burst fired."""

from __future__ import annotations

from qtpy import QtGui, QtWidgets

from tjump.gui.style import hide_row_numbers, stretch_last_column
from tjump.sequencer.decisions import DecisionKind, LiveDecision

_COLOURS = {
    DecisionKind.SUSPENDED: "#b35900",
    DecisionKind.ABORTED: "#b30000",
    DecisionKind.RESUMED: "#2e7d32",
}
MAX_ROWS = 5_000  # the log keeps every decision; the view keeps the latest


class DecisionLog(QtWidgets.QTableWidget):
    """One row per decision, newest at the bottom, suspensions and aborts in colour."""

    HEADERS = ("time (s)", "decision", "segment", "cycle", "why")

    def __init__(self) -> None:
        super().__init__(0, len(self.HEADERS))
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        hide_row_numbers(self)
        stretch_last_column(self)
        self.counts: dict[DecisionKind, int] = dict.fromkeys(DecisionKind, 0)

    def add(self, decision: LiveDecision) -> None:
        """Show `decision` (from the GUI thread)."""
        self.counts[decision.kind] += 1
        if self.rowCount() >= MAX_ROWS:
            self.removeRow(0)
        row = self.rowCount()
        self.insertRow(row)
        values = (
            f"{decision.time_s:.1f}",
            decision.kind.value.replace("_", " "),
            str(decision.segment),
            str(decision.cycle),
            decision.reason,
        )
        colour = _COLOURS.get(decision.kind)
        for column, text in enumerate(values):
            item = QtWidgets.QTableWidgetItem(text)
            if colour is not None:
                item.setForeground(QtGui.QBrush(QtGui.QColor(colour)))
            self.setItem(row, column, item)
        self.scrollToBottom()

    def clear_run(self) -> None:
        """Empty the view for a new run."""
        self.setRowCount(0)
        self.counts = dict.fromkeys(DecisionKind, 0)
