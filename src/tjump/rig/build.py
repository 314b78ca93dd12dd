"""From a rig file to connected devices."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pymmcore_plus.experimental.unicore import UniMMCore

from tjump.clock import Clock, VirtualClock
from tjump.devices.amplifier import AmplifierSupply
from tjump.devices.interfaces import Camera, Daq
from tjump.devices.mmcamera import MicroManagerCamera
from tjump.rig.calibration import load_calibration
from tjump.rig.config import RigConfig, load_rig
from tjump.rig.heater import Heater
from tjump.sim.camera import SimCamera
from tjump.sim.devices import SimDaq, SimFunctionGenerator
from tjump.sim.world import SimWorld

_CAMERA_LABEL = "Camera"


@dataclass
class Rig:
    """Connected devices of one rig, sharing one clock."""

    config: RigConfig
    clock: Clock
    camera: Camera
    daq: Daq
    heater: Heater
    world: SimWorld | None = None

    def save_truth(self, directory: Path) -> None:
        """For a simulated rig, write what the simulator knows (particles, transitions)."""
        if self.world is not None:
            self.world.write_truth(directory)

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the heater safe, then let go of every device."""
        try:
            self.heater.make_safe()
        finally:
            self.daq.close()
            self.camera.close()


def build_rig(config: RigConfig, seed: int | None = None) -> Rig:
    """Connect the devices of `config`; `seed` overrides the simulator's seed."""
    calibration = load_calibration(config.calibration)
    sim = config.simulation
    if seed is not None:
        sim = sim.model_copy(update={"seed": seed})
    clock = VirtualClock()
    world = SimWorld(sim, config.daq.sample_rate_hz, clock)
    core = UniMMCore(mm_path=tempfile.gettempdir())
    core.loadPyDevice(_CAMERA_LABEL, SimCamera(world))
    core.initializeAllDevices()
    core.setAutoShutter(False)
    camera = MicroManagerCamera(core, _CAMERA_LABEL)
    camera.set_exposure_ms(config.camera.exposure_ms)
    supply = AmplifierSupply(SimFunctionGenerator(world), gain=sim.supply.gain)
    heater = Heater(supply, calibration, config.limits, config.ambient_K)
    heater.make_safe()
    return Rig(config, clock, camera, SimDaq(world), heater, world)


def open_rig(path: Path, seed: int | None = None) -> Rig:
    """Load a rig file and connect its devices."""
    return build_rig(load_rig(path), seed)
