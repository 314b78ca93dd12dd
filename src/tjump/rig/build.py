"""From a rig file to connected devices: the lab's instruments, or the simulated world
behind the same real drivers wherever the transport allows (VISA, Micro-Manager)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tjump.clock import Clock, RealClock
from tjump.devices.interfaces import Camera, Daq
from tjump.rig import connect, simulated
from tjump.rig.config import RigConfig, load_rig
from tjump.rig.heater import Heater
from tjump.sim.server import ScpiSocketServer
from tjump.sim.world import SimWorld


@dataclass
class Rig:
    """Connected devices of one rig, sharing one clock."""

    config: RigConfig
    clock: Clock
    camera: Camera
    daq: Daq
    heater: Heater
    world: SimWorld | None = None
    servers: dict[str, ScpiSocketServer] = field(default_factory=dict)  # simulated instruments

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the heater safe, then let go of every device, whatever fails."""
        with ExitStack() as stack:
            for server in self.servers.values():  # last: the drivers say goodbye first
                stack.callback(server.close)
            stack.callback(self.camera.close)
            stack.callback(self.daq.close)
            stack.callback(self.heater.supply.close)
            self.heater.make_safe()


def build_rig(config: RigConfig, seed: int | None = None) -> Rig:
    """Connect the devices of `config`, heater made safe; `seed` overrides the
    simulator's seed. On any failure, what was already connected is closed again."""
    if config.kind == "simulated":
        config, clock, world, servers, mirrors, wired = simulated.instruments(config, seed)
        try:
            camera, daq, heater = simulated.devices(config, world, wired, mirrors)
        except BaseException:
            for server in servers.values():
                server.close()
            raise
        return Rig(config, clock, camera, daq, heater, world, servers)
    with ExitStack() as stack:
        lab_camera = connect.lab_camera(config)
        stack.callback(lab_camera.close)
        lab_daq = connect.lab_daq(config)
        stack.callback(lab_daq.close)
        supply = connect.supply(config)
        stack.callback(supply.close)
        heater = connect.heater(config, supply, lab_daq)
        stack.pop_all()
    return Rig(config, RealClock(), lab_camera, lab_daq, heater)


def open_rig(path: Path, seed: int | None = None) -> Rig:
    """Load a rig file and connect its devices."""
    return build_rig(load_rig(path), seed)
