"""Sinks: where the runner puts what the engine yields. Only the runner feeds them
(sequencer/runner.py); none of them touches an instrument.

- `RunDirectorySink`: frames, DAQ samples, the log, the live traces and the manifest, in
  the run directory (docs/run-directory.md);
- `LiveTraces`: online particle detection and per-frame intensities (it computes; the
  runner hands what it finds to the run directory and to listeners);
- `SimulationTruthSink`: on a simulated rig, what the simulator made happen (sim-truth/).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.analysis import Detections, OnlineTraces
from tjump.devices.interfaces import DaqBlock
from tjump.rig.build import Rig, TruthWriter
from tjump.sequencer.engine import Note
from tjump.sequencer.states import FinishReason
from tjump.storage.layout import TRUTH_DIR, FrameRecord
from tjump.storage.writer import RunWriter


@dataclass(frozen=True)
class Ending:
    """How a run ended, as its sinks record it."""

    status: FinishReason
    message: str
    listener_errors: int
    dropped_frames: int
    train_mismatches: int
    sink_errors: int = 0  # sinks the run went on without (sequencer/runner.py)


class Sink:
    """Takes frames, DAQ samples and notes in the order the engine yielded them; a sink
    overrides what it needs (each does nothing here)."""

    def frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        """One frame and its record."""

    def samples(self, block: DaqBlock) -> None:
        """A block of DAQ samples."""

    def note(self, note: Note) -> None:
        """Something the engine did, for the log."""

    def segment_done(self) -> None:
        """A segment ended: a good moment to flush."""

    def close(self, ending: Ending) -> None:
        """The run ended."""


class RunDirectorySink(Sink):
    """The run directory, through a `RunWriter`, in the acquisition's thread: a frame is
    on disk (page, then row) when `frame` returns. (A writer thread was tried: on two
    loaded cores its hand-overs cost 0.6 ms of CPU a frame more than the writes it moved.)"""

    def __init__(self, writer: RunWriter, sample_offset: int = 0) -> None:
        self.writer = writer
        writer.sample_offset = sample_offset  # DAQ samples of earlier sessions

    def frame(self, image: NDArray[np.uint16], record: FrameRecord) -> None:
        self.writer.write_frame(image, record)

    def samples(self, block: DaqBlock) -> None:
        self.writer.write_daq(block)

    def note(self, note: Note) -> None:
        if note.quiet:  # not worth failing for, nor hiding the failure it reports
            with contextlib.suppress(OSError):
                self.writer.log(note.event, **note.fields)
        else:
            self.writer.log(note.event, **note.fields)

    def segment_done(self) -> None:
        self.writer.flush_daq()

    def particles(self, found: Detections) -> None:
        self.writer.write_live_particles(found.x, found.y, found.peak, found.flags)
        self.writer.log("particles_found", count=len(found), usable=int(found.usable.sum()))

    def traces(self, first_frame: int, rows: NDArray[np.float64]) -> None:
        self.writer.write_live_traces(first_frame, rows)

    def close(self, ending: Ending) -> None:
        self.writer.close(
            ending.status,
            message=ending.message,
            listener_errors=ending.listener_errors,
            sink_errors=ending.sink_errors,
            dropped_frames=ending.dropped_frames,
            pulse_train_mismatches=ending.train_mismatches,
        )


@dataclass(frozen=True)
class TracesUpdate:
    """What one frame added to the live traces."""

    found: Detections | None  # the particles, on the frame that completed the baseline
    first_frame: int  # the run's frame number of the first row
    rows: NDArray[np.float64]  # intensities, frames x particles


BASELINE_FRAMES = 20  # frames the live particles are found in, at a run's start


class LiveTraces:
    """Online traces: detect in the first `baseline_frames` frames (or take `particles`
    found before, a resumed run's), then one row of intensities per frame."""

    def __init__(
        self, baseline_frames: int = BASELINE_FRAMES, particles: Detections | None = None
    ) -> None:
        self._traces = (
            OnlineTraces.of(particles) if particles is not None else OnlineTraces(baseline_frames)
        )

    def measure(self, frame: int, image: NDArray[np.uint16]) -> TracesUpdate | None:
        """Take frame number `frame`; what it adds, or None while the baseline fills."""
        first_detection = self._traces.detections is None
        rows = self._traces.add(image)
        if rows is None:
            return None
        found = self._traces.detections if first_detection else None
        return TracesUpdate(found, frame + 1 - len(rows), rows)


def simulation_sinks(rig: Rig, directory: Path, time_offset_s: float) -> list[Sink]:
    """A simulated rig's truth sink (none for a lab rig): the one place the run reaches
    the simulator."""
    if rig.world is None:
        return []
    return [SimulationTruthSink(rig.world, directory, time_offset_s)]


class SimulationTruthSink(Sink):
    """A simulated rig's truth (particles, transitions) written into the run directory
    when the run closes; it takes nothing while running."""

    def __init__(self, world: TruthWriter, directory: Path, time_offset_s: float) -> None:
        self._world = world
        self._directory = directory / TRUTH_DIR
        self._time_offset_s = time_offset_s

    def close(self, ending: Ending) -> None:
        self._world.write_truth(self._directory, self._time_offset_s)
