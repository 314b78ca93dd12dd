"""The simulated camera: a pymmcore-plus unicore Python device, so frames travel through
the real MMCore sequence machinery exactly as a lab camera's would."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice

from tjump.devices.mmcamera import FRAME_COUNTER_KEY
from tjump.sim.world import SimWorld

_WAIT_S = 0.05


class SimCamera(CameraDevice):
    """Renders one frame per DAQ trigger; free of timing of its own."""

    def __init__(self, world: SimWorld) -> None:
        super().__init__()
        self.world = world

    def get_exposure(self) -> float:
        return self.world.exposure_s * 1e3

    def set_exposure(self, exposure: float) -> None:
        self.world.exposure_s = exposure / 1e3

    def shape(self) -> tuple[int, int]:
        sensor = self.world.config.sensor
        return (sensor.height, sensor.width)

    def dtype(self) -> DTypeLike:
        return np.uint16

    def start_sequence(
        self, n: int | None, get_buffer: Callable[[Sequence[int], DTypeLike], np.ndarray]
    ) -> Iterator[Mapping[str, str]]:
        shape, limit = self.shape(), n if n is not None else 2**63
        stop = getattr(threading.current_thread(), "stop_event", threading.Event())
        self.world.discard_stale_end()
        taken = 0
        while taken < limit and not stop.is_set():
            try:
                scene = self.world.scenes.get(timeout=_WAIT_S)
            except queue.Empty:
                continue
            if scene is None:  # the DAQ stopped triggering
                return
            faults = self.world.faults
            if faults.camera_stalls_after is not None and taken >= faults.camera_stalls_after:
                continue  # triggers arrive, the camera does nothing: a cable is out
            if scene.index in faults.camera_drops:
                continue  # exposed (the counter moves on) but lost on the way
            self.world.renderer.render(scene, get_buffer(shape, np.uint16))
            taken += 1
            yield {FRAME_COUNTER_KEY: str(scene.index)}
