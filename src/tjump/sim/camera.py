"""The simulated camera: a pymmcore-plus unicore Python device, so frames travel through
the real MMCore sequence machinery exactly as a lab camera's would. Its pixels are
rendered in the application (deterministic, no process to start: tests) or, as a real
camera's are, outside it (`RenderProcess`: what `tjump run` and the GUI use). For
benchmarks, frames rendered beforehand can be replayed (`SimWorld.replay`): each trigger
then costs the application one copy into MMCore's buffer, as a real camera's driver."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import DTypeLike
from pymmcore_plus.experimental.unicore import CameraDevice

from tjump.devices.mmcamera import FRAME_COUNTER_KEY
from tjump.sim.frames import Scene
from tjump.sim.render_process import RenderProcess
from tjump.sim.world import SimWorld

_WAIT_S = 0.05
GetBuffer = Callable[[Sequence[int], DTypeLike], np.ndarray]


class SimCamera(CameraDevice):
    """Renders one frame per DAQ trigger; free of timing of its own."""

    def __init__(self, world: SimWorld, render_process: RenderProcess | None = None) -> None:
        super().__init__()
        self.world = world
        self.render_process = render_process

    def get_exposure(self) -> float:
        return self.world.exposure_s * 1e3

    def set_exposure(self, exposure: float) -> None:
        self.world.exposure_s = exposure / 1e3

    def shape(self) -> tuple[int, int]:
        sensor = self.world.config.sensor
        return (sensor.height, sensor.width)

    def dtype(self) -> DTypeLike:
        return np.uint16

    def start_sequence(self, n: int | None, get_buffer: GetBuffer) -> Iterator[Mapping[str, str]]:
        limit = n if n is not None else 2**63
        stop = getattr(threading.current_thread(), "stop_event", threading.Event())
        self.world.discard_stale_end()
        if self.world.replay is not None or self.render_process is None:
            return self._rendered_here(limit, stop, get_buffer)
        return self._rendered_apart(self.render_process, limit, stop, get_buffer)

    def _next_scene(self, accepted: int, timeout_s: float) -> Scene | bool | None:
        """The next scene the camera exposes and keeps; None when the DAQ stopped
        triggering; False if none came within `timeout_s` or the frame was lost (faults)."""
        try:
            scene = self.world.scenes.get(timeout=timeout_s)
        except queue.Empty:
            return False
        if scene is None:
            return None
        faults = self.world.faults
        if faults.camera_stalls_after is not None and accepted >= faults.camera_stalls_after:
            return False  # triggers arrive, the camera does nothing: a cable is out
        if scene.index in faults.camera_drops:
            return False  # exposed (the counter moves on) but lost on the way
        return scene

    def _rendered_here(
        self, limit: int, stop: threading.Event, get_buffer: GetBuffer
    ) -> Iterator[Mapping[str, str]]:
        shape, taken = self.shape(), 0
        while taken < limit and not stop.is_set():
            scene = self._next_scene(taken, _WAIT_S)
            if scene is None:  # the DAQ stopped triggering
                return
            if scene is False:
                continue
            assert isinstance(scene, Scene)
            replay = self.world.replay
            if replay is None:
                self.world.renderer.render(scene, get_buffer(shape, np.uint16))
            else:
                np.copyto(get_buffer(shape, np.uint16), replay[scene.index % len(replay)])
            taken += 1
            yield {FRAME_COUNTER_KEY: str(scene.index)}

    def _rendered_apart(
        self, frames: RenderProcess, limit: int, stop: threading.Event, get_buffer: GetBuffer
    ) -> Iterator[Mapping[str, str]]:
        """Scenes go to the renderer process as they come (up to its free slots), and
        frames come back in order and are copied into MMCore's buffer."""
        renderer, shape = self.world.renderer, self.shape()
        sent: list[int] = []  # frame counter of each scene in flight, oldest first
        accepted, ended = 0, False
        try:
            while not stop.is_set() and (sent or (not ended and accepted < limit)):
                while not ended and accepted < limit and frames.free_slots():
                    scene = self._next_scene(accepted, 0.0 if sent else _WAIT_S)
                    if scene is None:
                        ended = True
                    elif isinstance(scene, Scene):
                        key = renderer.table_key(scene.exposure_s)
                        frames.submit(scene, key, renderer.table(scene.exposure_s))
                        sent.append(scene.index)
                        accepted += 1
                        continue
                    break
                image = frames.next_frame(_WAIT_S) if sent else None
                if image is None:
                    continue
                np.copyto(get_buffer(shape, np.uint16), image)
                frames.release()
                yield {FRAME_COUNTER_KEY: str(sent.pop(0))}
        finally:
            frames.drain()
