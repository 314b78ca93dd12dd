"""What a run tells its listeners: typed signals, and the payloads they carry.

Listeners run in the acquisition thread: keep them short; one that raises is logged and
ignored, never allowed to stop the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from psygnal import Signal, SignalGroup

from tjump.analysis import Detections
from tjump.protocol.schedule import Segment, SegmentKind
from tjump.sequencer.states import FinishReason, RunState
from tjump.storage.layout import FrameRecord


@dataclass(frozen=True)
class Progress:
    frames_done: int
    frames_total: int
    segment: int  # index in the schedule
    segment_kind: SegmentKind
    setpoint_K: float
    cycle: int
    elapsed_s: float  # experiment time (DAQ timebase)
    remaining_s: float


@dataclass(frozen=True)
class RunResult:
    """How one run (or one session of a resumed run) ended."""

    status: FinishReason
    frames: int
    frames_planned: int
    directory: Path
    experiment_s: float
    wall_s: float
    message: str = ""
    dropped_frames: int = 0
    session_frames: int = -1  # frames of this session (a resumed run); -1: same as frames

    def __post_init__(self) -> None:
        if self.session_frames < 0:
            object.__setattr__(self, "session_frames", self.frames)


class RunEvents(SignalGroup):
    segment_started = Signal(Segment)
    segment_finished = Signal(Segment)
    frame_acquired = Signal(np.ndarray, FrameRecord)  # the uint16 image, its frames.csv row
    particles_found = Signal(Detections)  # found in the baseline frames
    traces_measured = Signal(int, np.ndarray)  # first frame, intensities (frames x particles)
    progress = Signal(Progress)
    state_changed = Signal(RunState)
    finished = Signal(RunResult)  # the run returned (complete, aborted or failed)
    failed = Signal(BaseException)  # or it raised this (after making the heater safe)
