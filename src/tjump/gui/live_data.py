"""What a run emits, turned into what the GUI shows, in a thread of its own.

The acquisition thread only calls the `on_*` methods, which store the latest frame and
put everything else on a queue; a consumer thread fills the trace and heater tables and
feeds the live nucleation detector (`tjump.analysis.live.LiveDetector`, the offline rule
frame by frame); the GUI thread takes small, decimated copies with `snapshot`."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tjump.analysis import Detections, LiveDetector, LiveEvent
from tjump.sequencer import RunEvents
from tjump.storage.layout import FrameRecord

FloatArray = NDArray[np.float64]
_STOP = ("stop", None)
_MAX_WAITING_RECORDS = 2000  # frame records kept until their intensities come
_ITEMS_PER_LOCK = 32  # queued items applied per hold of the lock the display also takes


@dataclass(frozen=True)
class HeatSpan:
    """A stretch of one segment, in run time, for shading plots."""

    segment: int
    kind: str
    setpoint_K: float
    start_s: float
    end_s: float


@dataclass
class Snapshot:
    """A consistent, decimated copy of the live tables for one screen update."""

    frames: int = 0
    time_s: FloatArray = field(default_factory=lambda: np.empty(0))
    setpoint_K: FloatArray = field(default_factory=lambda: np.empty(0))
    drive_V: FloatArray = field(default_factory=lambda: np.empty(0))
    current_A: FloatArray = field(default_factory=lambda: np.empty(0))
    film_K: FloatArray = field(default_factory=lambda: np.empty(0))
    trace_time_s: FloatArray = field(default_factory=lambda: np.empty(0))
    selected: dict[int, FloatArray] = field(default_factory=dict)
    reference: FloatArray = field(default_factory=lambda: np.empty(0))
    overview: FloatArray | None = None  # particles x time, corrected intensity
    spans: list[HeatSpan] = field(default_factory=list)
    events: list[LiveEvent] = field(default_factory=list)


class LiveData:
    """Live tables of one run with `total_frames` frames.

    `film_thermometer(drive_V, current_A)` turns the DAQ's readings into the film's
    temperature (from its resistance), where the rig knows how; `exposure_s` (the camera's)
    places nucleations within their frame (default: as if exposures had no gap)."""

    def __init__(
        self,
        total_frames: int,
        film_thermometer: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
        max_points: int = 4000,
        exposure_s: float | None = None,
    ) -> None:
        self.total_frames = total_frames
        self.film_thermometer = film_thermometer
        self.max_points = max_points
        self.exposure_s = exposure_s
        self.latest: tuple[NDArray[np.uint16], FrameRecord] | None = None
        self.frames_received = 0
        self.detections: Detections | None = None
        self.errors: list[str] = []  # faults of the consumer thread, shown in the run log
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._heater = np.full((total_frames, 4), np.nan)  # time, setpoint, drive, current
        self._records: dict[int, FrameRecord] = {}
        self._records_done = 0
        self._traces: NDArray[np.float32] | None = None
        self._corrected: NDArray[np.float32] | None = None
        self._reference = np.full(total_frames, np.nan)
        self._traced = 0
        self.detector: LiveDetector | None = None
        self._pending_rows: list[tuple[int, FloatArray]] = []
        self._spans: list[HeatSpan] = []
        self._events: list[LiveEvent] = []

    # -- acquisition thread: store and queue, nothing more -------------------------------

    def connect(self, events: RunEvents) -> None:
        events.frame_acquired.connect(self.on_frame)
        events.particles_found.connect(self.on_particles)
        events.traces_measured.connect(self.on_traces)

    def on_frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        self.latest = (image, record)
        self.frames_received += 1
        self._queue.put(("record", record))

    def on_particles(self, detections: Detections) -> None:
        self._queue.put(("particles", detections))

    def on_traces(self, first_frame: int, rows: FloatArray) -> None:
        self._queue.put(("rows", (first_frame, rows)))

    # -- consumer thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._consume, name="tjump-live", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Process what is queued, end the consumer thread, and test a heat the run
        ended in."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        with self._lock:
            if self.detector is not None:
                self._events.extend(self.detector.close())

    def _consume(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for first in range(0, len(items), _ITEMS_PER_LOCK):
                with self._lock:  # let go between batches: the display waits for it
                    for kind, payload in items[first : first + _ITEMS_PER_LOCK]:
                        if kind == "stop":
                            return
                        try:
                            self.process(kind, payload)
                        except Exception as e:  # the live views may suffer; the run must not
                            if len(self.errors) < 10:
                                self.errors.append(f"live {kind}: {type(e).__name__}: {e}")

    def process(self, kind: str, payload: Any) -> None:
        """Apply one queued item (the consumer holds the lock)."""
        if kind == "record":
            self._add_record(payload)
        elif kind == "particles":
            self._add_particles(payload)
        elif kind == "rows":
            self._pending_rows.append(payload)
            self._add_rows()

    def _add_record(self, r: FrameRecord) -> None:
        self._heater[r.frame] = (r.time_s, r.temperature_K, r.drive_V, r.current_A)
        self._records[r.frame] = r
        if len(self._records) > _MAX_WAITING_RECORDS:  # no traces coming for the oldest
            del self._records[next(iter(self._records))]
        self._records_done = max(self._records_done, r.frame + 1)
        last = self._spans[-1] if self._spans else None
        if last is not None and last.segment == r.segment:
            self._spans[-1] = HeatSpan(r.segment, r.kind, r.temperature_K, last.start_s, r.time_s)
        else:
            self._spans.append(HeatSpan(r.segment, r.kind, r.temperature_K, r.time_s, r.time_s))

    def _add_particles(self, d: Detections) -> None:
        self.detections = d
        self._traces = np.full((self.total_frames, len(d)), np.nan, dtype=np.float32)
        self._corrected = np.full_like(self._traces, np.nan)

    def _add_rows(self) -> None:
        if self._traces is None or self._corrected is None or self.detections is None:
            return
        for first, rows in self._pending_rows:
            self._traces[first : first + len(rows)] = rows
            if self.detector is None and rows.shape[1]:
                self.detector = LiveDetector(
                    np.nanmean(rows, axis=0), self.detections.usable, exposure_s=self.exposure_s
                )
            for i, row in enumerate(rows):
                f = first + i
                record = self._records.pop(f, None)
                if record is None or self.detector is None:
                    continue
                update = self.detector.add_record(record, row)
                self._reference[f] = update.reference
                self._corrected[f] = update.corrected
                self._events.extend(update.events)
            self._traced = max(self._traced, first + len(rows))
        self._pending_rows.clear()

    # -- GUI thread ----------------------------------------------------------------------

    def events(self) -> list[LiveEvent]:
        with self._lock:
            return list(self._events)

    def snapshot(self, selected: list[int], overview: bool = False) -> Snapshot:
        """Decimated copies of the tables, the selected particles' traces and, if asked,
        the overview of every particle."""
        with self._lock:
            n, m = self._records_done, self._traced
            step = max(1, n // self.max_points)
            heater = self._heater[:n:step]
            snap = Snapshot(
                frames=n,
                time_s=heater[:, 0].copy(),
                setpoint_K=heater[:, 1].copy(),
                drive_V=heater[:, 2].copy(),
                current_A=heater[:, 3].copy(),
                spans=list(self._spans),
                events=list(self._events),
            )
            if self.film_thermometer is not None:
                snap.film_K = self.film_thermometer(snap.drive_V, snap.current_A)
            if self._traces is None or self._corrected is None or m == 0:
                return snap
            tstep = max(1, m // self.max_points)
            snap.trace_time_s = self._heater[:m:tstep, 0].copy()
            snap.reference = self._reference[:m:tstep].copy()
            count = self._traces.shape[1]
            snap.selected = {
                p: self._traces[:m:tstep, p].astype(np.float64) for p in selected if p < count
            }
            if overview:
                ostep = max(1, m // 1000)
                snap.overview = self._corrected[:m:ostep].T.astype(np.float64)
            return snap
