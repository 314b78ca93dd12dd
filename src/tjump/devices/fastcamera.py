"""The fast camera: a second camera (500 frames/s) that resolves a particle's growth.

It records all the time into its own memory, keeping the last `pre_s` of frames; a
trigger (a DAQ digital line) marks the moment, and once `post_s` more have been recorded
the frames from `pre_s` before the trigger to `post_s` after it are read out, cropped to
a region of interest: a burst.

The lab camera is a Micro-Manager camera of its own (its own core and configuration file)
streaming at its own frame rate; tjump keeps the ring of frames in memory and takes the
frame being recorded when the trigger line is set as the trigger frame, so a burst's times
are known to about one frame period relative to the DAQ.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from pymmcore_plus import CMMCorePlus

from tjump.errors import CameraTimeout, DeviceError

_POLL_S = 0.0005


@dataclass(frozen=True)
class Roi:
    """A region of the image, in pixels: columns x0..x0+width, rows y0..y0+height."""

    x0: int
    y0: int
    width: int
    height: int


@dataclass(frozen=True)
class Burst:
    """Frames around one trigger: `offset_s[k]` is when frame k's exposure began,
    relative to the trigger."""

    frames: NDArray[np.uint16]  # (frames, rows, columns)
    offset_s: NDArray[np.float64]
    exposure_s: float
    frame_rate_hz: float
    roi: Roi


class FastCamera(Protocol):
    """A camera that records into its own memory and keeps frames around a trigger."""

    name: str

    @property
    def frame_rate_hz(self) -> float: ...

    def arm(self, pre_s: float, post_s: float) -> None:
        """Record from now on, ready to keep `pre_s` before a trigger and `post_s` after."""
        ...

    def trigger(self) -> None:
        """The trigger line went high (wired to the DAQ line, or called by the runner)."""
        ...

    def read_burst(self, roi: Roi, timeout_s: float) -> Burst:
        """After a trigger, once `post_s` has been recorded: the frames, cropped to `roi`.
        The camera then records on, ready for the next trigger."""
        ...

    def close(self) -> None: ...


class FrameRing:
    """The last `capacity` frames with their numbers, and the frames after a trigger."""

    def __init__(self, capacity: int) -> None:
        self._frames: collections.deque[tuple[int, NDArray[np.uint16]]] = collections.deque(
            maxlen=capacity
        )
        self._lock = threading.Lock()
        self.latest = -1  # number of the newest frame

    def add(self, number: int, frame: NDArray[np.uint16]) -> None:
        with self._lock:
            self._frames.append((number, frame))
            self.latest = number

    def window(self, first: int, end: int) -> list[tuple[int, NDArray[np.uint16]]]:
        """The frames numbered first..end-1 still held (older ones have been overwritten)."""
        with self._lock:
            return [(n, f) for n, f in self._frames if first <= n < end]


class MicroManagerFastCamera:
    """A lab fast camera through its own Micro-Manager core, streaming continuously."""

    def __init__(self, core: CMMCorePlus, label: str, frame_rate_hz: float) -> None:
        self.core = core
        self.label = label
        self.name = f"fast camera {label}"
        self._rate = frame_rate_hz
        self._ring = FrameRing(1)
        self._pre = self._post = 0
        self._trigger_frame: int | None = None
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        core.setCameraDevice(label)

    @property
    def frame_rate_hz(self) -> float:
        return self._rate

    @property
    def frames_recorded(self) -> int:
        """Frames taken into the ring since the camera was armed."""
        return self._ring.latest + 1

    def arm(self, pre_s: float, post_s: float) -> None:
        self._pre = max(1, round(pre_s * self._rate))
        self._post = max(1, round(post_s * self._rate))
        # a second more than a burst: frames keep coming while one is read out
        self._ring = FrameRing(self._pre + self._post + max(1, round(self._rate)))
        self.core.setExposure(self.label, 1e3 / self._rate)
        self.core.startContinuousSequenceAcquisition(0)
        self._stop.clear()
        self._reader = threading.Thread(target=self._read, name="fast-camera", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        number = 0
        while not self._stop.is_set():
            if self.core.getRemainingImageCount() == 0:
                time.sleep(_POLL_S)
                continue
            self._ring.add(number, np.asarray(self.core.popNextImage(), dtype=np.uint16))
            number += 1

    def trigger(self) -> None:
        self._trigger_frame = self._ring.latest + 1

    def read_burst(self, roi: Roi, timeout_s: float) -> Burst:
        at = self._trigger_frame
        if at is None:
            raise DeviceError(self.name, "a burst was asked for before any trigger")
        first, end = at - self._pre, at + self._post
        deadline = time.monotonic() + timeout_s
        while self._ring.latest < end - 1:
            if time.monotonic() > deadline:
                raise CameraTimeout(self.name, f"no frame {end - 1} within {timeout_s:g} s")
            time.sleep(_POLL_S)
        held = self._ring.window(first, end)
        self._trigger_frame = None
        lost = (end - max(first, 0)) - len(held)
        if lost or not held:
            raise DeviceError(
                self.name,
                f"{lost} of the frames around the trigger were overwritten before they were "
                "read out (the readout came too late for the camera's ring)",
            )
        y, x = slice(roi.y0, roi.y0 + roi.height), slice(roi.x0, roi.x0 + roi.width)
        frames = np.stack([f[y, x] for _, f in held])
        offsets = np.array([(n - at) / self._rate for n, _ in held])
        exposure = float(self.core.getExposure(self.label)) / 1e3
        return Burst(frames, offsets, exposure, self._rate, roi)

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if self.core.isSequenceRunning():
            self.core.stopSequenceAcquisition()
