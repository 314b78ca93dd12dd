"""The simulated rig: the world and its instrument models behind the same real drivers
the lab uses. Each SCPI instrument model is served on a loopback TCP socket and reached
through pyvisa-py (`@py`), as a LAN instrument's raw socket port; the camera runs in
Micro-Manager's core; the DAQ is simulated.

A dry run: an instrument the rig file puts anywhere else is the lab's own, driven for real,
and its model (hence the simulated film) follows every message the driver sent it."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial

import numpy as np
from pymmcore_plus.experimental.unicore import UniMMCore
from pyvisa import rname

from tjump.clock import VirtualClock
from tjump.devices.mmcamera import MicroManagerCamera
from tjump.errors import InputError
from tjump.rig import connect
from tjump.rig.config import SIMULATED, RigConfig, SourceMeterConfig, VisaConnection
from tjump.rig.heater import Heater
from tjump.sim.camera import SimCamera
from tjump.sim.devices import SimDaq
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.scpi import ScpiModel
from tjump.sim.server import ScpiSocketServer
from tjump.sim.sourcemeter import SimKeithley2400
from tjump.sim.world import SimWorld

PYVISA_PY = "@py"
Servers = dict[str, ScpiSocketServer]
Wired = dict[str, Callable[[], object]]


def instruments(
    config: RigConfig, seed: int | None
) -> tuple[RigConfig, VirtualClock, SimWorld, Servers, connect.Mirrors, Wired]:
    """The clock, the world and the instrument models; the rig config pointing each
    simulated instrument at the loopback socket serving it; the models that instead
    follow a real instrument's messages (a dry run), and the DAQ lines wired to them."""
    sim = config.simulation
    if seed is not None:
        sim = sim.model_copy(update={"seed": seed})
    devices = config.devices
    clock = VirtualClock()
    wired: Wired = {}
    models: dict[str, ScpiModel] = {}
    generator = None
    if devices.generator is not None:  # before the world: its clock listener runs first
        generator = SimRigolDG1000Z(clock, drive_channel=devices.generator.channel)
        models["generator"] = generator
        wired[connect.GENERATOR_TRIGGER_LINE] = partial(
            generator.external_trigger, devices.generator.channel
        )
    world = SimWorld(sim, config.daq.sample_rate_hz, clock)
    gain = sim.supply.gain

    def drive(volts: float, on: bool) -> None:
        world.set_generator(volts=volts, on=on)

    if generator is not None:
        generator.connect(drive, world.advance_to)
    if isinstance(devices.supply, SourceMeterConfig):
        meter = SimKeithley2400(partial(film_current, world))
        meter.connect(lambda volts, on: drive(volts / gain, on))
        models["supply"] = meter
    servers: Servers = {}
    mirrors: dict[str, Callable[[str], object]] = {}
    try:
        for role, model in models.items():
            connection: VisaConnection = getattr(devices, role)
            port = served_port(connection)
            if port is None:  # the lab's instrument: the model follows what it is told
                mirrors[role] = model.handle
            else:
                servers[role] = serve(role, port, model)
    except BaseException:
        for server in servers.values():
            server.close()
        raise
    return _pointed_at(config, servers), clock, world, servers, mirrors, wired


def served_port(connection: VisaConnection) -> int | None:
    """Where the simulated rig serves an instrument itself: any free loopback port for
    `simulated`, the port of a `TCPIP0::127.0.0.1::<port>::SOCKET` resource with `@py`;
    None for any other resource (a real instrument, in a dry run)."""
    if connection.visa_library == SIMULATED:
        return 0
    parsed: rname.ResourceName | None = None
    with contextlib.suppress(rname.InvalidResourceName):
        parsed = rname.parse_resource_name(connection.resource)
    if (
        isinstance(parsed, rname.TCPIPSocket)
        and parsed.host_address in ("127.0.0.1", "localhost")
        and connection.visa_library == PYVISA_PY
    ):
        return int(parsed.port)
    return None


def serve(role: str, port: int, model: ScpiModel) -> ScpiSocketServer:
    """`model` served as raw SCPI on loopback `port` (0: any free one)."""
    try:
        return ScpiSocketServer(model, port=port, lock=getattr(model, "lock", None))
    except OSError as e:
        raise InputError(
            f"devices.{role}.resource: cannot serve the simulated {role} on loopback port "
            f"{port}: {e.strerror} (choose another port, or 0 for any free one)"
        ) from e


def _pointed_at(config: RigConfig, servers: Servers) -> RigConfig:
    """`config` with each served instrument's resource at its socket, through pyvisa-py."""
    changes = {
        role: getattr(config.devices, role).model_copy(
            update={"resource": server.resource, "visa_library": PYVISA_PY}
        )
        for role, server in servers.items()
    }
    return config.model_copy(update={"devices": config.devices.model_copy(update=changes)})


def devices(
    config: RigConfig, world: SimWorld, wired: Wired, mirrors: connect.Mirrors
) -> tuple[MicroManagerCamera, SimDaq, Heater]:
    """Camera (UniMMCore with the Python camera), DAQ and heater, or nothing left open."""
    with ExitStack() as stack:
        core = UniMMCore(mm_path=tempfile.gettempdir())
        core.loadPyDevice(config.devices.camera.label, SimCamera(world))
        core.initializeAllDevices()
        core.setAutoShutter(False)
        camera = connect.camera(config, core)
        stack.callback(camera.close)
        daq = SimDaq(world, wired=wired)
        stack.callback(daq.close)
        supply = connect.supply(config, mirrors)
        stack.callback(supply.close)
        heater = connect.heater(config, supply, daq)
        stack.pop_all()
    return camera, daq, heater


def film_current(world: SimWorld, volts: float) -> float:
    """What the simulated film draws at `volts` now (the source-meter's measurement)."""
    temperature = np.array([world.temperature()])
    film = world.thermal.film_voltage(volts, temperature)
    return float((film / world.thermal.resistance(temperature))[0])
