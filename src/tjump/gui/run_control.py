"""Run control: open a protocol, see it checked against the rig (errors name the field),
its schedule, time, frames and disk; set its closed-loop targets; start, pause, resume,
abort; progress and a log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from qtpy import QtCore, QtGui, QtWidgets

from tjump.errors import TjumpError
from tjump.gui.style import hide_row_numbers
from tjump.protocol.schedule import Segment
from tjump.protocol.targets import TARGETS, targets_of, with_targets
from tjump.sequencer import Progress, RunPlan, RunState, plan_run

_RUNNING = (RunState.RUNNING, RunState.PAUSING, RunState.PAUSED)
_COLUMNS = ("segment", "kind", "setpoint K", "cycle", "frames", "seconds", "from")
_TARGET_LABELS = {
    "adaptive_hold.end_when_switched": "hold: end when switched (fraction)",
    "adaptive_hold.min_hold_s": "hold: shortest (s)",
    "adaptive_cool.film_within": "cool: film within (fraction of the jump)",
    "adaptive_cool.min_cool_s": "cool: shortest (s)",
    "adaptive_cycles.target_relative_precision": "series: target precision",
    "adaptive_cycles.min_cycles": "series: fewest cycles",
    "suspend.band_K": "suspender: band (K)",
}


def describe(plan: RunPlan) -> str:
    """One line: segments, experiment time, frames and disk needed."""
    s = plan.schedule
    gigabytes = s.total_frames * plan.bytes_per_frame() / 1e9
    duration = dt.timedelta(seconds=round(s.duration_s))
    return (
        f"{len(s.segments)} segments, {duration} of experiment ({s.duration_s:.0f} s), "
        f"{s.total_frames} frames at {s.frame_rate_hz:g} frames/s, {gigabytes:.2f} GB on disk"
    )


class RunControl(QtWidgets.QWidget):
    """Protocol, schedule, buttons, progress and log. The window acts on its signals."""

    start_requested = QtCore.Signal()
    pause_requested = QtCore.Signal()
    resume_requested = QtCore.Signal()
    abort_requested = QtCore.Signal()

    def __init__(self, rig_path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.rig_path = rig_path
        self.plan: RunPlan | None = None
        self.state = "idle"
        self.protocol_label = QtWidgets.QLabel("no protocol")
        self.protocol_label.setWordWrap(True)
        self.open_button = QtWidgets.QPushButton("open protocol…")
        self.open_button.clicked.connect(self._choose_protocol)
        self.check_text = QtWidgets.QPlainTextEdit()
        self.check_text.setReadOnly(True)
        self.check_text.setMaximumHeight(90)
        self.summary = QtWidgets.QLabel("")
        self.summary.setWordWrap(True)
        self.schedule = QtWidgets.QTableWidget(0, len(_COLUMNS))
        self.schedule.setHorizontalHeaderLabels(_COLUMNS)
        hide_row_numbers(self.schedule)
        self.schedule.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.targets = {name: QtWidgets.QLineEdit() for name in TARGETS}
        targets_box = QtWidgets.QGroupBox("closed-loop targets (empty: off; for every series)")
        form = QtWidgets.QFormLayout(targets_box)
        for name, edit in self.targets.items():
            edit.setPlaceholderText("off")
            edit.setToolTip(f"protocol field {name}")
            form.addRow(_TARGET_LABELS[name], edit)
        self.start_button = QtWidgets.QPushButton("start")
        self.pause_button = QtWidgets.QPushButton("pause")
        self.resume_button = QtWidgets.QPushButton("resume")
        self.abort_button = QtWidgets.QPushButton("abort")
        self.start_button.clicked.connect(self.start_requested)
        self.pause_button.clicked.connect(self.pause_requested)
        self.resume_button.clicked.connect(self.resume_requested)
        self.abort_button.clicked.connect(self.abort_requested)
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_label = QtWidgets.QLabel("")
        self.progress_label.setSizePolicy(  # new text must not relayout the window
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Fixed
        )
        self.progress_label.setWordWrap(True)
        self.progress_label.setFixedHeight(2 * self.fontMetrics().lineSpacing() + 4)
        self.log_text = QtWidgets.QPlainTextEdit()
        self.log_text.setReadOnly(True)
        self.log_text.setMaximumBlockCount(2000)
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.abort_button):
            buttons.addWidget(b)
        layout = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.protocol_label, 1)
        layout.addLayout(top)
        layout.addWidget(QtWidgets.QLabel(f"rig file: {rig_path}"))
        layout.addWidget(self.check_text)
        layout.addWidget(self.summary)
        layout.addWidget(self.schedule, 2)
        layout.addWidget(targets_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        layout.addWidget(QtWidgets.QLabel("run log"))
        layout.addWidget(self.log_text, 1)
        self.set_state("idle")

    def _choose_protocol(self) -> None:
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "open protocol", "configs/protocols", "protocols (*.yaml *.yml)"
        )
        if name:
            self.load_protocol(Path(name))

    def load_protocol(self, path: Path) -> RunPlan | None:
        """Check `path` against the rig; show the schedule, or every bad field. Not
        while a run is going (its plan stays)."""
        if self.state in _RUNNING:
            self.log(f"protocol {path.name} not loaded: a run is going")
            return None
        self.protocol_label.setText(str(path))
        self.schedule.setRowCount(0)
        try:
            plan = plan_run(path, self.rig_path)
        except TjumpError as e:
            self.plan = None
            self.check_text.setPlainText(str(e))
            self.check_text.setStyleSheet("color: #d03030;")
            self.summary.setText("cannot run: fix the fields above")
            self.log(f"protocol {path.name} rejected")
        else:
            self.plan = plan
            self.check_text.setPlainText(
                f"protocol '{plan.protocol.name}' fits rig '{plan.rig.name}'"
            )
            self.check_text.setStyleSheet("")
            self.summary.setText(describe(plan))
            self._fill_schedule(plan)
            for name, text in targets_of(plan.protocol).items():
                self.targets[name].setText(text)
            self.log(f"protocol {path.name} loaded: {describe(plan)}")
        self.set_state(self.state)
        return self.plan

    def target_values(self) -> dict[str, str]:
        """The closed-loop targets as typed, keyed by their protocol field."""
        return {name: edit.text() for name, edit in self.targets.items()}

    def plan_to_run(self) -> RunPlan | None:
        """The loaded plan with the targets set here, checked by the protocol's schema and
        against the rig; None (the reason shown, nothing started) if a value is bad."""
        plan = self.plan
        if plan is None:
            return None
        values = self.target_values()
        if values == targets_of(plan.protocol):
            return plan
        source = f"protocol '{plan.protocol.name}' with the targets set in the run control"
        try:
            changed = plan_run(with_targets(plan.protocol, values, source), self.rig_path)
        except TjumpError as e:
            self.check_text.setPlainText(str(e))
            self.check_text.setStyleSheet("color: #d03030;")
            self.log("run not started: a closed-loop target is wrong (see above)")
            return None
        self.check_text.setStyleSheet("")
        self.check_text.setPlainText(f"protocol '{plan.protocol.name}' with these targets fits")
        shown = ", ".join(f"{name} {text or 'off'}" for name, text in values.items())
        self.log(f"targets for this run: {shown}")
        return changed

    def _fill_schedule(self, plan: RunPlan) -> None:
        segments = plan.schedule.segments
        self.schedule.setRowCount(len(segments))
        for row, s in enumerate(segments):
            values = (
                s.index,
                s.kind,
                f"{s.setpoint_K:.1f}",
                s.cycle or "",
                s.frames,
                f"{s.duration_s:g}",
                s.field,
            )
            for col, value in enumerate(values):
                self.schedule.setItem(row, col, QtWidgets.QTableWidgetItem(str(value)))
        self.schedule.resizeColumnsToContents()

    def set_state(self, state: str) -> None:
        """ "idle" (no run yet) or a `RunState`: which buttons make sense."""
        self.state = state
        running = state in _RUNNING
        self.start_button.setEnabled(self.plan is not None and not running)
        self.open_button.setEnabled(not running)
        for edit in self.targets.values():
            edit.setEnabled(not running)
        self.pause_button.setEnabled(state == RunState.RUNNING)
        self.resume_button.setEnabled(state in (RunState.PAUSING, RunState.PAUSED))
        self.abort_button.setEnabled(running)
        if state in (RunState.PAUSING, RunState.PAUSED):
            self.progress_label.setText(f"{state} (heater made safe at the next boundary)")

    def set_segment(self, segment: Segment) -> None:
        """Log a segment the run has started."""
        cycle = f", cycle {segment.cycle}" if segment.cycle else ""
        self.log(f"segment {segment.index}: {segment.kind} {segment.setpoint_K:.1f} K{cycle}")

    def show_progress(self, p: Progress) -> None:
        """Progress bar, and the step, segment, cycle, temperature and time left of the
        last frame taken (its row selected in the schedule)."""
        self.progress_bar.setMaximum(p.frames_total)
        self.progress_bar.setValue(p.frames_done)
        cycle = f", cycle {p.cycle}" if p.cycle else ""
        where = ""
        if self.plan is not None:
            segments = self.plan.schedule.segments
            segment = segments[p.segment]
            where = f"step {segment.step}, segment {segment.index + 1} of {len(segments)}: "
            if segment.index != self.schedule.currentRow():
                self.schedule.selectRow(segment.index)
        self.progress_label.setText(
            f"{where}{p.segment_kind} at {p.setpoint_K:.1f} K{cycle}; {p.elapsed_s:.0f} s done, "
            f"{dt.timedelta(seconds=round(p.remaining_s))} left"
        )

    def log(self, text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        self.log_text.appendPlainText(f"{stamp}  {text}")
        self.log_text.moveCursor(QtGui.QTextCursor.MoveOperation.End)
