"""The DAQ's timebase as the sequencer sees it: pulse trains and recent samples."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tjump.devices.interfaces import Camera, Daq, DaqBlock
from tjump.errors import DeviceError
from tjump.protocol.schedule import Segment

SAMPLE_TIMEOUT_S = 5.0
KEEP_S = 10.0  # seconds of DAQ samples kept in memory for the frames' means
SETTLE_S = 0.5  # at most this long for a stopped train's last frames to reach the computer


@dataclass(frozen=True)
class PulseTrain:
    """A continuous stretch of camera triggers at one rate and exposure: frame
    `first_frame` is triggered at sample `start_index` of the DAQ. A pause, a wait or a new
    rate or exposure ends one train; the next starts where the DAQ says it does."""

    start_index: int
    first_frame: int
    frame_rate_hz: float
    exposure_ms: float
    sample_rate_hz: float

    def fits(self, segment: Segment) -> bool:
        return (segment.frame_rate_hz, segment.exposure_ms) == (
            self.frame_rate_hz,
            self.exposure_ms,
        )

    def sample_of(self, frame: int) -> int:
        """DAQ sample index at which `frame`'s exposure starts."""
        per_frame = self.sample_rate_hz / self.frame_rate_hz
        return self.start_index + round((frame - self.first_frame) * per_frame)

    def time_of(self, frame: int) -> float:
        """DAQ time (seconds since the DAQ started) at which `frame`'s exposure starts."""
        return self.sample_of(frame) / self.sample_rate_hz


@dataclass(frozen=True)
class TrainCounts:
    """Camera triggers the DAQ sent, exposures it counted and frames the camera
    delivered, since the acquisition started (or within one pulse train: a difference)."""

    triggers: int
    exposures: int
    frames: int

    @classmethod
    def now(cls, daq: Daq, camera: Camera) -> TrainCounts:
        return cls(daq.triggers_sent(), daq.exposures_counted(), camera.frames_delivered())

    def since(self, start: TrainCounts) -> TrainCounts:
        return TrainCounts(
            self.triggers - start.triggers,
            self.exposures - start.exposures,
            self.frames - start.frames,
        )

    @classmethod
    def settled(cls, daq: Daq, camera: Camera, start: TrainCounts) -> TrainCounts:
        """Counts since `start` of a train whose triggers have stopped, once the frames of
        its last exposures (still on their way from the camera) have come, or `SETTLE_S`
        has passed: a frame late by milliseconds is not a lost one."""
        deadline = time.monotonic() + SETTLE_S
        counted = cls.now(daq, camera).since(start)
        while counted.frames < counted.exposures and time.monotonic() < deadline:
            time.sleep(0.002)
            counted = cls.now(daq, camera).since(start)
        return counted

    @property
    def consistent(self) -> bool:
        """One exposure per trigger and one frame per exposure."""
        return self.triggers == self.exposures == self.frames


class DaqHistory:
    """Recent DAQ samples, read as they come; each block read waits in `fresh` until the
    engine hands it on (to be saved by the runner's sinks)."""

    def __init__(self, daq: Daq) -> None:
        self._daq = daq
        self.fresh: list[DaqBlock] = []
        self._first = 0
        self._data: NDArray[np.float64] = np.empty((0, len(daq.channels)))
        self._keep = int(KEEP_S * daq.sample_rate_hz)

    def mean(self, first: int, count: int) -> NDArray[np.float64]:
        """Mean of samples [first, first + count) per channel; older samples are dropped."""
        deadline = time.monotonic() + SAMPLE_TIMEOUT_S
        while self._first + len(self._data) < first + count:
            self.pull()
            if self._first + len(self._data) >= first + count:
                break
            if time.monotonic() > deadline:
                raise DeviceError(
                    self._daq.name,
                    f"samples up to {first + count} never came",
                    "check that the DAQ task is running",
                )
            time.sleep(0.001)
        start = first - self._first
        window = self._data[start : start + count]
        self._data = self._data[start:]
        self._first = first
        return np.asarray(window.mean(axis=0))

    def pull(self) -> None:
        """Read what the DAQ has, keep it for `drain` and the last few seconds for `mean`."""
        block = self._daq.read()
        if len(block.data):
            self.fresh.append(block)
            self._data = np.concatenate([self._data, block.data])
            excess = len(self._data) - self._keep
            if excess > 0:
                self._data = self._data[excess:]
                self._first += excess

    def drain(self) -> list[DaqBlock]:
        """The blocks read since the last call, oldest first."""
        blocks, self.fresh = self.fresh, []
        return blocks
