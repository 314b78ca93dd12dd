"""From a rig file to connected devices: the lab's instruments, or (through the simulator
a front end installed, `tjump.rig.simulator`) the simulated rig."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tjump.clock import Clock, RealClock
from tjump.devices.fastcamera import FastCamera
from tjump.devices.interfaces import Camera, Daq
from tjump.rig import connect
from tjump.rig.config import RigConfig, load_rig
from tjump.rig.heater import Heater
from tjump.rig.simulator import simulator


class TruthWriter(Protocol):
    """A simulated rig's record of what really happened, for the run directory."""

    def write_truth(self, directory: Path, time_offset_s: float = 0.0) -> None: ...


@dataclass
class Rig:
    """Connected devices of one rig, sharing one clock."""

    config: RigConfig
    clock: Clock
    camera: Camera
    daq: Daq
    heater: Heater
    world: TruthWriter | None = None  # a simulated rig's truth; None on a lab rig
    fast_camera: FastCamera | None = None  # the camera for growth bursts, where there is one

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the heater safe, then let go of every device, whatever fails."""
        with ExitStack() as stack:
            stack.callback(self.camera.close)
            if self.fast_camera is not None:
                stack.callback(self.fast_camera.close)
            stack.callback(self.daq.close)
            stack.callback(self.heater.supply.close)
            self.heater.make_safe()


def build_rig(config: RigConfig, seed: int | None = None) -> Rig:
    """Connect the devices of `config`, heater made safe; `seed` overrides a simulated
    rig's seed. On any failure, what was already connected is closed again."""
    if config.kind == "simulated":
        return simulator(f"rig '{config.name}'").build(config, seed)
    with ExitStack() as stack:
        lab_camera = connect.lab_camera(config)
        stack.callback(lab_camera.close)
        lab_daq = connect.lab_daq(config)
        stack.callback(lab_daq.close)
        supply = connect.supply(config)
        stack.callback(supply.close)
        heater = connect.heater(config, supply, lab_daq)
        fast_camera = connect.lab_fast_camera(config)
        stack.pop_all()
    return Rig(config, RealClock(), lab_camera, lab_daq, heater, fast_camera=fast_camera)


def open_rig(path: Path, seed: int | None = None) -> Rig:
    """Load a rig file and connect its devices."""
    return build_rig(load_rig(path), seed)
