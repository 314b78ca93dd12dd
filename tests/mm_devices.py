"""Small Python cameras for Micro-Manager (pymmcore-plus `unicore`) in tests: loaded
directly, or by a configuration file's `#py pyDevice,<label>,mm_devices,<Class>` line."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import SimpleCameraDevice


class NumberedCamera(SimpleCameraDevice):
    """A camera whose frames are each filled with their number (modulo 2**16)."""

    def __init__(self, exposure_ms: float = 2.0) -> None:
        super().__init__()
        self.exposure_ms = exposure_ms
        self.taken = 0

    def dtype(self) -> DTypeLike:
        return np.uint16

    def get_exposure(self) -> float:
        return self.exposure_ms

    def set_exposure(self, exposure: float) -> None:
        self.exposure_ms = exposure

    def snap(self, buffer: np.ndarray) -> Mapping[str, str]:
        buffer[:] = self.taken % 2**16
        self.taken += 1
        return {}


class CountingCamera(NumberedCamera):
    """32 x 40 px, at the rate its exposure allows, as a real camera."""

    def sensor_shape(self) -> tuple[int, int]:
        return (32, 40)

    def snap(self, buffer: np.ndarray) -> Mapping[str, str]:
        time.sleep(self.exposure_ms / 1e3)
        return super().snap(buffer)


class SlowCamera(CountingCamera):
    """A camera that cannot go faster than 100 frames/s, whatever its exposure."""

    def snap(self, buffer: np.ndarray) -> Mapping[str, str]:
        time.sleep(max(0.0, 0.01 - self.exposure_ms / 1e3))
        return super().snap(buffer)
