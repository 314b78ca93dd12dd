"""Small Python cameras for Micro-Manager (pymmcore-plus `unicore`) in tests: loaded
directly, or by a configuration file's `#py pyDevice,<label>,mm_devices,<Class>` line."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import SimpleCameraDevice


class CountingCamera(SimpleCameraDevice):
    """32 x 40 px; each frame is filled with its number (modulo 2**16)."""

    def __init__(self) -> None:
        super().__init__()
        self.exposure_ms = 2.0
        self.taken = 0

    def sensor_shape(self) -> tuple[int, int]:
        return (32, 40)

    def dtype(self) -> DTypeLike:
        return np.uint16

    def get_exposure(self) -> float:
        return self.exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self.exposure_ms = exposure

    def snap(self, buffer: np.ndarray) -> Mapping[str, str]:
        time.sleep(self.exposure_ms / 1e3)  # frames at the camera's rate, as a real one
        buffer[:] = self.taken % 2**16
        self.taken += 1
        return {}


class SlowCamera(CountingCamera):
    """A camera that cannot go faster than 100 frames/s, whatever its exposure."""

    def snap(self, buffer: np.ndarray) -> Mapping[str, str]:
        time.sleep(max(0.0, 0.01 - self.exposure_ms / 1e3))
        return super().snap(buffer)
