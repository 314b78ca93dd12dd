"""Signals a run emits. Listeners run in the acquisition thread: keep them short; one that
raises is logged and ignored, never allowed to stop the run."""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import Signal, SignalGroup


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int
    segment: int  # index in the schedule
    segment_kind: str
    setpoint_K: float
    cycle: int
    elapsed_s: float  # experiment time (DAQ timebase)
    remaining_s: float


class RunEvents(SignalGroup):
    segment_started = Signal(object)  # Segment
    segment_finished = Signal(object)  # Segment
    frame_acquired = Signal(object, object)  # image (uint16 array), FrameRecord
    particles_found = Signal(object)  # tjump.analysis.Detections, from the baseline frames
    traces_measured = Signal(int, object)  # first frame, intensities (frames x particles)
    progress = Signal(object)  # Progress
    state_changed = Signal(str)  # running | pausing | paused | finished
    finished = Signal(object)  # RunResult
