"""A camera reached through Micro-Manager (pymmcore-plus), real or Python-simulated."""

from __future__ import annotations

import gc
import time

import numpy as np
from pymmcore_plus import CMMCorePlus

from tjump.devices.interfaces import CameraFrame
from tjump.errors import CameraTimeout, DeviceError

_POLL_S = 0.0002


class MicroManagerCamera:
    """Sequence acquisition through an MMCore's circular buffer.

    The sequence is armed before the DAQ starts its trigger pulse train, so no trigger is
    missed; `stopOnOverflow` makes a buffer overflow stop the camera instead of silently
    overwriting frames.
    """

    def __init__(self, core: CMMCorePlus, label: str, buffer_mb: int = 512) -> None:
        self._core: CMMCorePlus | None = core
        self.label = label
        self.name = f"camera {label}"
        core.setCameraDevice(label)
        core.setCircularBufferMemoryFootprint(buffer_mb)

    @property
    def core(self) -> CMMCorePlus:
        if self._core is None:
            raise DeviceError(self.name, "is closed")
        return self._core

    def shape(self) -> tuple[int, int]:
        return (int(self.core.getImageHeight()), int(self.core.getImageWidth()))

    def set_exposure_ms(self, exposure_ms: float) -> None:
        self.core.setExposure(self.label, exposure_ms)

    def start(self, n_frames: int) -> None:
        self.core.startSequenceAcquisition(self.label, n_frames, 0.0, True)

    def next_frame(self, timeout_s: float) -> CameraFrame:
        core = self.core
        deadline = time.monotonic() + timeout_s
        while core.getRemainingImageCount() == 0:
            if core.isBufferOverflowed():
                raise DeviceError(
                    self.name, "circular buffer overflowed", "frames arrive faster than saved"
                )
            if time.monotonic() > deadline:
                raise CameraTimeout(
                    self.name,
                    f"no frame within {timeout_s:.1f} s",
                    "check the trigger cable and that the DAQ pulse train is running",
                )
            time.sleep(_POLL_S)
        image, meta = core.popNextImageAndMD()
        number = int(meta.get("ImageNumber", -1))
        return CameraFrame(np.asarray(image, dtype=np.uint16), number)

    def stop(self) -> None:
        if self.core.isSequenceRunning(self.label):
            self.core.stopSequenceAcquisition(self.label)

    def close(self) -> None:
        """Stop and let go of the core, so it is destroyed now rather than during
        interpreter shutdown (pymmcore 12's callback thread aborts the process if the
        core outlives the interpreter)."""
        if self._core is not None:
            self.stop()
            self._core = None
            gc.collect()
