"""A run in a worker thread: the GUI asks for pause, resume and abort, and hears about
the run through Qt signals queued to its own thread."""

from __future__ import annotations

import threading
from pathlib import Path

from qtpy import QtCore

from tjump.gui.live_data import LiveData
from tjump.protocol.schedule import Segment
from tjump.rig import Rig
from tjump.sequencer import Progress, RunPlan, RunResult, Sequencer, run_plan


class RunWorker(QtCore.QObject):
    """Runs one plan on a rig in a thread named `tjump-run`."""

    state_changed = QtCore.Signal(str)
    progress = QtCore.Signal(object)  # Progress
    segment_started = QtCore.Signal(object)  # Segment
    finished = QtCore.Signal(object)  # RunResult
    failed = QtCore.Signal(str)

    def __init__(
        self,
        plan: RunPlan,
        rig: Rig,
        output: Path,
        live: LiveData,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.plan = plan
        self.rig = rig
        self.output = output
        self.live = live
        self.sequencer: Sequencer | None = None
        self.result: RunResult | None = None
        self._thread = threading.Thread(target=self._run, name="tjump-run")
        self._abort_requested = threading.Event()

    def start(self) -> None:
        self.live.start()
        self._thread.start()

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def pause(self) -> None:
        if self.sequencer is not None:
            self.sequencer.pause()

    def resume(self) -> None:
        if self.sequencer is not None:
            self.sequencer.resume()

    def abort(self) -> None:
        """Ask the run to stop; also honoured if it has not reached the sequencer yet."""
        self._abort_requested.set()
        if self.sequencer is not None:
            self.sequencer.abort()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the run thread ends; True if it did."""
        if self._thread.ident is not None:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _connect(self, sequencer: Sequencer) -> None:
        self.sequencer = sequencer
        events = sequencer.events
        self.live.connect(events)
        events.state_changed.connect(self._on_state)
        events.progress.connect(self._on_progress)
        events.segment_started.connect(self._on_segment)
        if self._abort_requested.is_set():
            sequencer.abort()

    def _on_state(self, state: str) -> None:
        self.state_changed.emit(state)

    def _on_progress(self, progress: Progress) -> None:
        self.progress.emit(progress)

    def _on_segment(self, segment: Segment) -> None:
        self.segment_started.emit(segment)

    def _run(self) -> None:
        message = ""
        try:
            self.result = run_plan(self.plan, self.output, connect=self._connect, rig=self.rig)
        except Exception as e:  # reported to the user; the sequencer made the heater safe
            message = f"{type(e).__name__}: {e}"
        finally:
            self.live.stop()
        if self.result is None:
            self.failed.emit(message)
        else:
            self.finished.emit(self.result)
