"""A run in its own thread: the GUI controls the runner directly (pause, resume and
abort work at any time) and hears about the run through Qt signals, which Qt queues to
the GUI's thread."""

from __future__ import annotations

from pathlib import Path

from qtpy import QtCore

from tjump.gui.live_data import LiveData
from tjump.rig import Rig
from tjump.sequencer import RunHandle, Runner, RunPlan, RunResult, open_run
from tjump.sequencer.closed_loop import ClosedLoop


class RunWorker(QtCore.QObject):
    """Runs one plan on a rig in a thread named `tjump-run`."""

    state_changed = QtCore.Signal(str)  # a RunState
    progress = QtCore.Signal(object)  # Progress
    segment_started = QtCore.Signal(object)  # Segment
    finished = QtCore.Signal(object)  # RunResult
    failed = QtCore.Signal(str)
    decided = QtCore.Signal(object)  # LiveDecision of a closed-loop run

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
        self.runner: Runner | None = None
        self.handle: RunHandle | None = None
        self.result: RunResult | None = None

    def start(self) -> None:
        """Create the run directory and start the run; `failed` if it cannot start."""
        try:
            runner = open_run(self.plan, self.output, rig=self.rig)
        except Exception as e:  # reported to the user; no device was started
            self.failed.emit(f"{type(e).__name__}: {e}")
            return
        events = runner.events
        self.live.connect(events)
        events.state_changed.connect(self.state_changed.emit)
        events.progress.connect(self.progress.emit)
        events.segment_started.connect(self.segment_started.emit)
        events.finished.connect(self._finished)
        events.failed.connect(self._failed)
        if isinstance(runner.policy, ClosedLoop):
            runner.policy.decided.connect(self.decided.emit)
        self.runner = runner
        self.live.start()
        self.handle = runner.start()

    def is_running(self) -> bool:
        return self.handle is not None and not self.handle.done()

    def pause(self) -> None:
        if self.runner is not None:
            self.runner.pause()

    def resume(self) -> None:
        if self.runner is not None:
            self.runner.resume()

    def abort(self) -> None:
        if self.runner is not None:
            self.runner.abort()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the run thread ends; True if it did."""
        if self.handle is not None:
            self.handle.thread.join(timeout_s)
        return not self.is_running()

    def _finished(self, result: RunResult) -> None:
        """In the run's thread: the live data complete first, then the GUI told."""
        self.live.stop()
        self.result = result
        self.finished.emit(result)

    def _failed(self, error: BaseException) -> None:
        self.live.stop()
        self.failed.emit(f"{type(error).__name__}: {error}")
