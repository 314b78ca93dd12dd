"""The runner: drives an engine through a schedule and hands everything it yields to the
sinks. Where a frame goes is `Runner._put`, called from the one loop `_feed`.

    runner = open_run(plan, Path("runs/demo"))      # tjump.sequencer.plan
    runner.events.progress.connect(print)
    handle = runner.start()                         # its own thread; or runner.run()
    runner.pause(); runner.resume(); runner.abort() # from any thread, at any time
    result = handle.wait()

Every way out of `run` (the end, an abort, a fault, an exception in a sink or a
listener's wish, KeyboardInterrupt, the watchdog) leaves the heater safe first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray
from psygnal import SignalInstance

from tjump.analysis import Detections
from tjump.errors import RunAborted, TjumpError
from tjump.protocol.schedule import Schedule, Segment
from tjump.sequencer.engine import Acquired, Engine, Note, Output, Samples
from tjump.sequencer.events import Progress, RunEvents, RunResult
from tjump.sequencer.sinks import Ending, LiveTraces, RunDirectorySink, Sink
from tjump.sequencer.states import FinishReason, RunState
from tjump.sequencer.watchdog import Watchdog
from tjump.storage.layout import FrameRecord
from tjump.storage.repair import mark_frames

FloatArray = NDArray[np.float64]
_PROGRESS_EVERY_S = 0.1
SEGMENT_FINISHED = "segment_finished"  # log events a resume reads: a segment done,
SEGMENT_SKIPPED = "segment_skipped"  # or left out by the policy (an adaptive series)
_POLL_S = 0.05


class Decision(StrEnum):
    """What a `RunPolicy` asks for after a frame."""

    CONTINUE = "continue"
    SUSPEND = "suspend"  # pause at the next segment boundary (heater made safe there)
    END_SEGMENT = "end_segment"  # end this segment now (an adaptive hold)
    SAFE_NOW = "safe_now"  # heater safe at once, this segment cut, then pause
    RESUME = "resume"  # while paused: go on
    ABORT = "abort"  # while paused: end the run (`LoopHooks.abort_message` says why)


class RunPolicy(Protocol):
    """Consulted by the runner after every frame has reached the sinks (in the
    acquisition thread: keep it quick). Adaptive protocols decide here."""

    def on_frame(self, segment: Segment, record: FrameRecord) -> Decision: ...


@runtime_checkable
class LoopHooks(Protocol):
    """What a closed-loop policy (sequencer/closed_loop.py) also hears and decides."""

    interrupted_frames: list[int]  # frames of cycles cut by a suspension and done again

    def on_traces(self, found: Detections | None, first_frame: int, rows: FloatArray) -> None:
        """The live traces of frames `first_frame`, ... (with the particles, once)."""
        ...

    def skip(self, segment: Segment) -> bool:
        """Before a segment: True to leave it out."""
        ...

    def segment_ended(self, segment: Segment) -> None: ...

    def redo_from(self) -> int | None:
        """After a segment: the index of the segment to go back to, if any."""
        ...

    def while_paused(self) -> Decision:
        """CONTINUE (wait), RESUME or ABORT."""
        ...

    def notes(self) -> list[Note]:
        """What the policy has to say in the run's log since it was last asked."""
        ...

    def abort_message(self) -> str: ...


class PolicyAbort(TjumpError):
    """The policy ended the run (a suspension it could not come back from)."""


class Runner:
    """One run of a schedule: an engine, the run directory, live traces and any other
    sinks. Pause, resume and abort work from any thread, before the start too."""

    def __init__(
        self,
        engine: Engine,
        schedule: Schedule,
        directory: RunDirectorySink,
        traces: LiveTraces | None = None,
        sinks: Sequence[Sink] = (),
        policy: RunPolicy | None = None,
        watchdog_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.schedule = schedule
        self.directory = directory
        self.traces = traces
        self.policy = policy
        self.hooks = policy if isinstance(policy, LoopHooks) else None
        self.watchdog_s = watchdog_s
        self.events = RunEvents()
        self._sinks: tuple[Sink, ...] = (directory, *sinks)  # the run directory first
        self._all_sinks = self._sinks
        # the run fails with these; any other sink that fails is left out of the rest of
        # the run (logged, counted in the manifest), as a listener's fault is
        self._essential: tuple[Sink, ...] = (directory,) + (
            (policy,) if isinstance(policy, Sink) else ()
        )
        self._sink_errors = 0
        self._state = RunState.READY
        self._state_lock = threading.Lock()
        self._abort = threading.Event()
        self._pause = threading.Event()
        self._started = False
        self._watchdog: Watchdog | None = None
        self._watchdog_fired = False
        self._listener_errors = 0
        self._experiment_s = 0.0
        self._last_progress = 0.0
        self._segments = {s.index: s for s in schedule.segments}
        self._first_frame = schedule.segments[0].first_frame
        left = np.cumsum([s.duration_s for s in reversed(schedule.segments)])[::-1]
        self._left_after = {
            s.index: float(left[i + 1]) if i + 1 < len(left) else 0.0
            for i, s in enumerate(schedule.segments)
        }

    @property
    def state(self) -> RunState:
        return self._state

    # -- control, from any thread -------------------------------------------------------

    def abort(self) -> None:
        """Stop as soon as the current frame is saved (before the start: start nothing);
        the heater is made safe."""
        self._abort.set()

    def pause(self) -> None:
        """Pause at the next segment boundary: triggers stop, the heater is made safe."""
        with self._state_lock:
            if self._state not in (RunState.READY, RunState.RUNNING):
                return
            self._pause.set()
        self._set_state(RunState.PAUSING)

    def resume(self) -> None:
        """Go on with the next segment (or cancel a pause not yet reached)."""
        with self._state_lock:
            if self._state not in (RunState.PAUSING, RunState.PAUSED):
                return
            self._pause.clear()
            going_on = self._state is RunState.PAUSING
        if going_on:
            self._set_state(RunState.RUNNING)

    def start(self) -> RunHandle:
        """Run in a new thread named `tjump-run`."""
        handle = RunHandle(self)
        handle.thread.start()
        return handle

    # -- the run ---------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the whole schedule in this thread; returns, or raises the fault that ended
        it, always with the heater safe and the run directory closed. Listeners hear
        `finished` with the result, or `failed` with the fault."""
        if self._started:
            raise RuntimeError("a Runner runs once; make a new one")
        self._started = True
        try:
            result = self._run()
        except BaseException as e:
            self._emit(self.events.failed, e)
            raise
        self._emit(self.events.finished, result)
        return result

    def _run(self) -> RunResult:
        wall_start = time.monotonic()
        status, message = FinishReason.FAILED, ""
        try:
            try:
                self._check_abort()  # aborted before the start: nothing is started
                self._feed(self.engine.start())
                with self._state_lock:
                    starting = self._state is RunState.READY
                if starting:
                    self._set_state(RunState.RUNNING)
                with Watchdog(self.watchdog_s, self._watchdog_expired) as self._watchdog:
                    segments, i = self.schedule.segments, 0
                    while i < len(segments):
                        segment = segments[i]
                        if self._pause.is_set():
                            self._wait_paused(segment)
                        i += 1
                        if self.hooks is not None and self.hooks.skip(segment):
                            self._feed(self.hooks.notes())
                            self._feed([Note(SEGMENT_SKIPPED, {"segment": segment.index})])
                            continue
                        self._run_segment(segment)
                        redo = self.hooks.redo_from() if self.hooks is not None else None
                        i = redo if redo is not None else i
                    self._feed(self.engine.finish())
                status = FinishReason.COMPLETE
            except (RunAborted, KeyboardInterrupt):
                status, message = FinishReason.ABORTED, "stopped on request"
                if self.state is RunState.READY:
                    message = "stopped on request before it started; nothing was started"
                if self._watchdog_fired:
                    status = FinishReason.FAILED
                    message = (
                        f"watchdog: the acquisition loop stalled for over {self.watchdog_s:g} s"
                    )
            except TjumpError as e:
                message = str(e)
                raise
            except Exception as e:
                message = f"{type(e).__name__}: {e}"
                raise
            finally:
                unsafe = self._shut_down()
                if unsafe:
                    status, message = FinishReason.FAILED, f"{message}; {unsafe}".strip("; ")
                self._finish(status, message)
        finally:
            self.engine.close()
        writer = self.directory.writer
        return RunResult(
            status,
            writer.frames_written,
            self.schedule.total_frames,
            writer.directory,
            self._experiment_s,
            time.monotonic() - wall_start,
            message,
            self.engine.dropped_frames,
            writer.session_frames,
        )

    def _run_segment(self, segment: Segment) -> None:
        self._check_abort()
        self._feed(self.engine.begin(segment))
        self._emit(self.events.segment_started, segment)
        self._feed(self.engine.acquire(segment))
        self._feed(self.engine.end(segment))
        if self.hooks is not None:
            self.hooks.segment_ended(segment)
        self._experiment_s = self.engine.now()
        for sink in self._sinks:
            self._to_sink(sink, sink.segment_done)
        last_frame = self.directory.writer.next_frame - 1  # on disk, its row too
        finished = {"segment": segment.index, "time_s": self._experiment_s}
        self._feed([Note(SEGMENT_FINISHED, {**finished, "last_frame": last_frame})])
        self._emit(self.events.segment_finished, segment)

    def _feed(self, items: Iterable[Output]) -> None:
        """The loop every item of the engine goes through: each is put where it belongs;
        after a frame or samples (not a note, which may tell of a fault about to be
        raised) the run may stop (an abort) and the watchdog hears the loop is alive."""
        for item in items:
            self._put(item)
            if not isinstance(item, Note):
                self._check_abort()
                if self._watchdog is not None:
                    self._watchdog.kick()

    def _put(self, item: Output) -> None:
        """Where everything goes. A frame: every sink (the run directory first), then the
        listeners, then the live traces (their finds to the run directory and the
        listeners), then progress and the policy. Samples and notes: every sink."""
        if isinstance(item, Acquired):
            image, record = item.image, item.record
            for sink in self._sinks:
                self._to_sink(sink, sink.frame, image, record)
            self._emit(self.events.frame_acquired, image, record)
            self._measure(record.frame, image)
            segment = self._segments[record.segment]
            self._report_progress(segment, record.schedule_frame + 1)
            if self.policy is not None:
                self._decide(self.policy.on_frame(segment, record))
        elif isinstance(item, Samples):
            for block in item.blocks:
                for sink in self._sinks:
                    self._to_sink(sink, sink.samples, block)
        else:
            for sink in self._sinks:
                self._to_sink(sink, sink.note, item)

    def _to_sink(self, sink: Sink, method: Callable[..., None], *args: Any) -> None:
        """Hand `args` to a sink; a sink that is not essential and fails is left out of
        the rest of the run, which goes on."""
        if sink in self._essential:
            method(*args)
            return
        try:
            method(*args)
        except Exception as e:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            self._sink_failed(type(sink).__name__, e)

    def _sink_failed(self, name: str, error: Exception) -> None:
        self._sink_errors += 1
        self._log_quietly("sink_error", sink=name, error=f"{type(error).__name__}: {error}")

    def _decide(self, decision: Decision) -> None:
        """Do what the policy decided after a frame."""
        if self.hooks is not None:
            for note in self.hooks.notes():
                self._put(note)
        if decision is Decision.SAFE_NOW:
            self.engine.end_early()  # the heater is safe before anything else
            self._log("heater_safe", reason="suspension", time_s=self.engine.now())
            self.pause()
        elif decision is Decision.END_SEGMENT:
            self.engine.end_early()
        elif decision is Decision.SUSPEND:
            self.pause()

    def _measure(self, frame: int, image: NDArray[np.uint16]) -> None:
        """The live traces of a frame, to the run directory, the policy and listeners;
        live traces that fail are left out of the rest of the run (the frames on disk
        can be measured again)."""
        if self.traces is None:
            return
        try:
            update = self.traces.measure(frame, image)
        except Exception as e:
            self.traces = None
            self._sink_failed("LiveTraces", e)
            return
        if update is None:
            return
        if update.found is not None:
            self.directory.particles(update.found)
            self._emit(self.events.particles_found, update.found)
        self.directory.traces(update.first_frame, update.rows)
        if self.hooks is not None:
            self.hooks.on_traces(update.found, update.first_frame, update.rows)
        self._emit(self.events.traces_measured, update.first_frame, update.rows)

    def _report_progress(self, segment: Segment, frames_done: int) -> None:
        now = time.monotonic()
        if now - self._last_progress <= _PROGRESS_EVERY_S and frames_done != segment.end_frame:
            return
        self._last_progress = now
        here = (segment.end_frame - frames_done) / segment.frame_rate_hz
        progress = Progress(
            frames_done - self._first_frame,
            self.schedule.total_frames,
            segment.index,
            segment.kind,
            segment.setpoint_K,
            segment.cycle,
            self.engine.now(),
            self._left_after[segment.index] + here,
        )
        self._emit(self.events.progress, progress)

    def _wait_paused(self, segment: Segment) -> None:
        """Stop triggering, make the heater safe and wait for resume or abort."""
        self._feed(self.engine.suspend())
        paused_at = self.engine.now()
        self._log("paused", time_s=paused_at, before_segment=segment.index)
        with self._state_lock:
            still_pausing = self._pause.is_set()
        if still_pausing:
            self._set_state(RunState.PAUSED)
        while self._pause.is_set():
            self._check_abort()
            if self._watchdog is not None:
                self._watchdog.kick()
            time.sleep(_POLL_S)
            self._feed(self.engine.idle(_POLL_S))
            if self.hooks is not None:
                verdict = self.hooks.while_paused()
                self._feed(self.hooks.notes())
                if verdict is Decision.RESUME:
                    self.resume()
                elif verdict is Decision.ABORT:
                    raise PolicyAbort(self.hooks.abort_message())
        now = self.engine.now()
        self._log("resumed", time_s=now, gap_s=now - paused_at)
        self._set_state(RunState.RUNNING)

    # -- safety ------------------------------------------------------------------------

    def _check_abort(self) -> None:
        if self._abort.is_set():
            raise RunAborted("run aborted")

    def _watchdog_expired(self) -> None:
        """From the watchdog's thread: the loop is stuck; the heater goes safe now."""
        self._watchdog_fired = True
        self._abort.set()
        try:
            self.engine.make_safe()
            self._log("watchdog", error=f"no progress for {self.watchdog_s:g} s; heater safe")
        except Exception as e:
            self._log("watchdog", error=f"heater not confirmed safe: {e}")

    def _shut_down(self) -> str:
        """Heater safe first, then stop the engine and save what remains. Returns a
        message if the heater could not be confirmed safe."""
        message = ""
        try:
            self.engine.make_safe()
            self._log_quietly("heater_safe")
        except Exception as e:
            message = f"HEATER NOT CONFIRMED SAFE: {e}"
            self._log_quietly("heater_unsafe", error=str(e))
        for item in self.engine.stop():
            try:
                self._put(item)
            except Exception as e:
                self._log_quietly("shutdown_error", error=f"{type(e).__name__}: {e}")
        return message

    def _finish(self, status: FinishReason, message: str) -> None:
        """Close the sinks and record how the run ended; the run directory last, as a
        disk that fails there must not hide the run's own error (the frames already
        written are safe)."""
        ending = Ending(
            status,
            message,
            self._listener_errors,
            self.engine.dropped_frames,
            self.engine.train_mismatches,
            self._sink_errors,
        )
        for sink in self._all_sinks[1:]:  # failed ones too: they may hold resources
            try:
                sink.close(ending)
            except Exception as e:
                self._log_quietly("shutdown_error", error=f"{type(e).__name__}: {e}")
        self._log_quietly("run_finished", status=status, message=message)
        try:
            self.directory.close(ending)
            cut: list[int] = self.hooks.interrupted_frames if self.hooks is not None else []
            if cut:  # cycles a suspension cut and the run did again
                mark_frames(self.directory.writer.directory, set(cut))
        except TjumpError:
            if status is not FinishReason.FAILED:
                raise
        finally:
            self._set_state(RunState.FINISHED)

    def _log(self, event: str, **fields: Any) -> None:
        self.directory.note(Note(event, fields))

    def _log_quietly(self, event: str, **fields: Any) -> None:
        """Log, unless the disk itself is what failed."""
        self.directory.note(Note(event, fields, quiet=True))

    # -- signals -----------------------------------------------------------------------

    def _set_state(self, state: RunState) -> None:
        with self._state_lock:
            self._state = state
        self._emit(self.events.state_changed, state)

    def _emit(self, signal: SignalInstance, *args: Any) -> None:
        try:
            signal.emit(*args)
        except Exception as e:  # a listener's fault must not stop the acquisition
            self._listener_errors += 1
            if self._listener_errors == 1:
                cause = e.__cause__ or e  # psygnal wraps the listener's own exception
                self._log_quietly("listener_error", error=f"{type(cause).__name__}: {cause}")


class RunHandle:
    """A run going on in its own thread: wait for its result, or ask whether it is done."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.result: RunResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="tjump-run")

    def _run(self) -> None:
        try:
            self.result = self.runner.run()
        except BaseException as e:  # handed to whoever waits
            self.error = e

    def done(self) -> bool:
        return self.thread.ident is not None and not self.thread.is_alive()

    def wait(self, timeout_s: float | None = None) -> RunResult:
        """The run's result once it has ended; raises what ended it, or TimeoutError."""
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout_s} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
