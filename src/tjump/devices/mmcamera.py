"""A camera reached through Micro-Manager (pymmcore-plus), real or Python-simulated."""

from __future__ import annotations

import atexit
import contextlib
import gc
import time
from collections.abc import Callable

import numpy as np
import pymmcore
from pymmcore_plus import CMMCorePlus

from tjump.devices.faults import DroppedFrames
from tjump.devices.interfaces import CameraFrame
from tjump.errors import CameraTimeout, DeviceError

_POLL_S = 0.0002
FRAME_COUNTER_KEY = "FrameCounter"


def release_callback(core: pymmcore.CMMCore) -> None:
    """Unregister `core`'s callback. pymmcore 12's callback thread aborts the process at
    interpreter exit now and then ("FATAL: exception not rethrown") while one is
    registered; without it the core shuts down cleanly."""
    with contextlib.suppress(Exception):  # a core half torn down raises its own kinds
        pymmcore.CMMCore.registerCallback(core, None)


@atexit.register
def _release_all_callbacks() -> None:
    """Every core still alive, whatever made it and whatever the entry point (CLI, GUI,
    scripts, tests), however the process ends, before the interpreter tears down."""
    for core in [o for o in gc.get_objects() if isinstance(o, pymmcore.CMMCore)]:
        release_callback(core)


def _frame_number(meta: pymmcore.Metadata) -> int:
    """The camera's own exposure counter where it sends one, else the core's count."""
    for key in (FRAME_COUNTER_KEY, "ImageNumber"):
        if meta.HasTag(key):
            return int(meta.GetSingleTag(key).GetValue())
    return -1


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
        self.hardware_triggered = True
        self.interval_ms = 0.0
        self.frames_read = 0
        self.numbering_gaps = 0  # frames the camera's own counter says were skipped
        self._next_number = 0
        self._buffer_mb = buffer_mb
        self._meta = pymmcore.Metadata()  # reused by each frame read
        core.setCameraDevice(label)
        core.setCircularBufferMemoryFootprint(buffer_mb)

    def configure(
        self,
        binning: int = 1,
        roi: tuple[int, int, int, int] | None = None,
        bit_depth: int | None = None,
        hardware_triggered: bool = True,
    ) -> None:
        """Binning and ROI are set, the bit depth (chosen in the Micro-Manager config)
        is checked; without hardware triggering the camera free-runs at `interval_ms`."""
        core, label = self.core, self.label
        self.hardware_triggered = hardware_triggered
        if self._binning() != binning:
            self._try(f"set binning {binning}", core.setProperty, label, "Binning", str(binning))
            if self._binning() != binning:
                raise DeviceError(self.name, f"binning reads {self._binning()}, not {binning}")
        if roi is not None:
            self._try(f"set ROI {roi}", core.setROI, label, *roi)
            got_roi = tuple(int(v) for v in core.getROI(label))
            if got_roi != roi:
                raise DeviceError(self.name, f"ROI reads {got_roi}, not {roi}")
        if bit_depth is not None and int(core.getImageBitDepth()) != bit_depth:
            raise DeviceError(
                self.name,
                f"images are {core.getImageBitDepth()}-bit, the rig file expects {bit_depth}",
                "choose the pixel format (e.g. the IIDC video mode) in the Micro-Manager config",
            )

    def set_interval_ms(self, interval_ms: float) -> None:
        """Frame period when software-timed (ignored when the DAQ triggers each frame)."""
        self.interval_ms = interval_ms

    def describe(self) -> str:
        """Camera, image size, binning, bit depth and exposure, for `devices check`."""
        core, label = self.core, self.label
        rows, cols = self.shape()
        return (
            f"{core.getDeviceLibrary(label) or 'python'}:{core.getDeviceName(label)}, "
            f"{cols} x {rows} px, binning {self._binning()}, {core.getImageBitDepth()}-bit, "
            f"exposure {core.getExposure(label):g} ms, "
            f"{'hardware' if self.hardware_triggered else 'software'}-timed"
        )

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
        """Arm the sequence before the DAQ's pulse train starts (hardware-triggered), or
        free-run at `interval_ms` (software-timed fallback)."""
        interval = 0.0 if self.hardware_triggered else self.interval_ms
        self.frames_read = 0
        self.numbering_gaps = 0
        self._next_number = 0
        self._fit_buffer_to_frames()
        self.core.startSequenceAcquisition(self.label, n_frames, interval, True)

    def _fit_buffer_to_frames(self) -> None:
        """pymmcore-plus 0.18.1's buffer for Python cameras reports an overflow when it
        wraps around with a frame still unread, unless its size is a whole number of
        frames: size it so (measured: 640 x 480 failed after 857 frames, 16 in flight)."""
        core = self.core
        is_py_device = getattr(core, "isPyDevice", None)  # a UniMMCore's, without importing it
        if is_py_device is None or not is_py_device(self.label):
            return
        rows, cols = self.shape()
        frame_bytes = rows * cols * int(core.getBytesPerPixel())
        frames = max(1, int(self._buffer_mb * 2**20) // frame_bytes)
        size_mb = frames * frame_bytes / 2**20  # exact: a whole number of bytes
        core.setCircularBufferMemoryFootprint(size_mb)  # type: ignore[arg-type]

    def frames_delivered(self) -> int:
        """Frames read since `start`, plus those waiting in the circular buffer."""
        return self.frames_read + int(self.core.getRemainingImageCount())

    def frames_waiting(self) -> int:
        return int(self.core.getRemainingImageCount())

    def dropped_frames(self, triggers_sent: int) -> int:
        """Triggers the DAQ sent that produced no frame (neither read nor waiting), or the
        gaps in the camera's own frame numbers, whichever shows more."""
        waiting = int(self.core.getRemainingImageCount())
        return max(triggers_sent - self.frames_read - waiting, self.numbering_gaps, 0)

    def check_frames(self, triggers_sent: int) -> None:
        """Raise `DroppedFrames` if any trigger produced no frame."""
        missing = self.dropped_frames(triggers_sent)
        if missing:
            raise DroppedFrames(
                self.name,
                "startSequenceAcquisition",
                f"{missing} of {triggers_sent} triggered frames never arrived",
                "lower the frame rate or exposure, or enlarge the circular buffer",
            )

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
        meta = self._meta
        meta.Clear()
        image = core.popNextImageMD(meta)  # no pythonic Metadata built per frame
        number = _frame_number(meta)
        if number > self._next_number:
            self.numbering_gaps += number - self._next_number
        self._next_number = max(self._next_number, number + 1)
        self.frames_read += 1
        return CameraFrame(np.asarray(image, dtype=np.uint16), number)

    def _binning(self) -> int:
        core, label = self.core, self.label
        return int(core.getProperty(label, "Binning")) if core.hasProperty(label, "Binning") else 1

    def _try(self, what: str, action: Callable[..., object], *args: object) -> None:
        try:
            action(*args)
        except (RuntimeError, ValueError, NotImplementedError) as e:
            raise DeviceError(self.name, f"cannot {what}: {e}") from e

    def stop(self) -> None:
        if self.core.isSequenceRunning(self.label):
            self.core.stopSequenceAcquisition(self.label)

    def close(self) -> None:
        """Stop, unregister the core's callback and let go of the core, so it is
        destroyed now rather than during interpreter shutdown."""
        if self._core is not None:
            core = self._core
            self.stop()
            self._core = None
            release_callback(core)
            del core
            gc.collect()
