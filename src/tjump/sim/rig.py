"""The simulated rig, assembled in this one place: the world and its instrument models
behind the same real drivers the lab uses (`tjump.rig.connect`). Each SCPI instrument
model is served on a loopback TCP socket and reached through pyvisa-py (`@py`), as a LAN
instrument's raw socket port; the camera runs in Micro-Manager's core; the DAQ is
simulated.

A dry run: an instrument the rig file puts anywhere else is the lab's own, driven for real,
and its model (hence the simulated film) follows every message the driver sent it.

`install()` lets the lab's `load_rig` and `build_rig` read and build simulated rig files."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from pymmcore_plus.experimental.unicore import UniMMCore
from pyvisa import rname

from tjump.clock import VirtualClock
from tjump.devices.interfaces import DaqLine
from tjump.devices.mmcamera import MicroManagerCamera
from tjump.errors import InputError
from tjump.rig import connect
from tjump.rig.build import Rig
from tjump.rig.config import SIMULATED, RigConfig, SourceMeterConfig, VisaConnection
from tjump.rig.heater import Heater
from tjump.rig.simulator import provide_simulator
from tjump.sim.camera import SimCamera
from tjump.sim.devices import SimDaq
from tjump.sim.fastcamera import SimFastCamera
from tjump.sim.faults import InjectedFaults
from tjump.sim.render_process import RenderProcess
from tjump.sim.rig_config import SimRigConfig
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.scpi import ScpiModel
from tjump.sim.server import ScpiSocketServer
from tjump.sim.sourcemeter import SimKeithley2400
from tjump.sim.world import SimWorld

PYVISA_PY = "@py"
Servers = dict[str, ScpiSocketServer]
Wired = dict[str, Callable[[], object]]


@dataclass(kw_only=True)
class SimRig(Rig):
    """A simulated rig: the lab's `Rig`, plus the simulator's own handles. Tests read
    what really happens (the generator's output, the film) and inject faults here, never
    through the lab's devices."""

    model: SimWorld
    servers: Servers = field(default_factory=dict)  # the instruments served on loopback
    generator: SimRigolDG1000Z | None = None  # its model, served or following the lab's
    render_process: RenderProcess | None = None  # the camera's pixels, rendered apart

    @property
    def faults(self) -> InjectedFaults:
        """Camera and DAQ faults to inject (a stalled or dropping camera, a cut cable)."""
        return self.model.faults

    def instrument(self, role: str) -> ScpiSocketServer:
        """The simulated instrument serving `role` ("generator", "supply"): its messages
        (`log`), its transport faults (`faults`) and its model (`model`)."""
        try:
            return self.servers[role]
        except KeyError:
            raise KeyError(f"no simulated {role} is served on this rig") from None

    def generator_output(self) -> tuple[float, bool]:
        """What the simulated generator really puts out: (volts, output on)."""
        if self.generator is None:
            raise KeyError("this rig has no generator")
        return self.generator.output_V()

    def film_drive_V(self) -> float:
        """The voltage on the simulated film now."""
        return self.model.drive_V()

    def film_temperature_K(self) -> float:
        """The simulated film's temperature now (what no real rig can read directly)."""
        return self.model.temperature()

    def film_resistance_ohm(self) -> float:
        """The simulated film's resistance now."""
        return float(self.model.thermal.resistance(self.model.temperature()))

    def digital_line_changes(self) -> list[tuple[str, bool]]:
        """Every DAQ digital line set so far, in order: (line, on)."""
        return list(self.model.digital_changes)

    def close(self) -> None:
        """The lab rig's close, then the served instruments (the drivers say goodbye first)."""
        with ExitStack() as stack:
            for server in self.servers.values():
                stack.callback(server.close)
            if self.render_process is not None:  # after the camera has stopped
                stack.callback(self.render_process.close)
            super().close()


def build_sim_rig(
    config: RigConfig, seed: int | None = None, camera_process: bool = False
) -> SimRig:
    """Assemble the simulated rig `config` describes; `seed` overrides its seed;
    `camera_process`: the camera renders in a process of its own (else in this one). On
    any failure, what was already served, started or connected is closed again."""
    if not isinstance(config, SimRigConfig):
        raise InputError(f"rig '{config.name}' is not a simulated rig file")
    config, clock, world, models, servers, mirrors, wired = _instruments(config, seed)
    with ExitStack() as undo:
        for server in servers.values():
            undo.callback(server.close)
        apart = camera_process and os.name == "posix"  # elsewhere: rendered here
        frames = RenderProcess(world.renderer.pixels) if apart else None
        if frames is not None:
            undo.callback(frames.close)
        camera, daq, heater = _devices(config, world, wired, mirrors, frames)
        undo.callback(heater.supply.close)
        undo.callback(daq.close)
        undo.callback(camera.close)
        if frames is not None:  # started meanwhile: ready before the first trigger
            frames.wait_ready()
        undo.pop_all()
    generator = models.get("generator")
    return SimRig(
        config,
        clock,
        camera,
        daq,
        heater,
        world=world,
        fast_camera=SimFastCamera(world),
        model=world,
        servers=servers,
        generator=generator if isinstance(generator, SimRigolDG1000Z) else None,
        render_process=frames,
    )


@dataclass(frozen=True)
class SimulatedRigs:
    """The simulator as the lab's rig code sees it (`tjump.rig.simulator.Simulator`):
    simulated rig files read and built, their cameras rendering apart or here."""

    camera_process: bool = False

    @property
    def config_model(self) -> type[RigConfig]:
        return SimRigConfig

    def build(self, config: RigConfig, seed: int | None) -> Rig:
        return build_sim_rig(config, seed, self.camera_process)


def install(camera_process: bool = False) -> None:
    """Let `tjump.rig.load_rig` and `build_rig` read and build simulated rig files;
    `camera_process`: their cameras render in a process of their own, as `tjump run` and
    the GUI do (the default renders here: no process to start, as tests want)."""
    simulator = SimulatedRigs(camera_process)
    provide_simulator(lambda: simulator)


def _instruments(
    config: SimRigConfig, seed: int | None
) -> tuple[
    SimRigConfig, VirtualClock, SimWorld, dict[str, ScpiModel], Servers, connect.Mirrors, Wired
]:
    """The clock, the world and the instrument models (by role); the rig config pointing each
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
        wired[DaqLine.GENERATOR_TRIGGER] = partial(
            generator.external_trigger, devices.generator.channel
        )
    supply = devices.supply
    if isinstance(supply, SourceMeterConfig):  # it drives the film itself
        limit = config.limits.max_current_A
        world = SimWorld(
            sim, config.daq.sample_rate_hz, clock, min(supply.compliance_A or limit, limit)
        )
        meter = SimKeithley2400(partial(film_current, world))
        meter.connect(world.set_drive)
        models["supply"] = meter
        if generator is not None:  # wired to nothing that heats
            generator.connect(lambda volts, on: None, world.advance_to)
    else:  # the generator drives the film through the amplifier
        amplifier = connect.amplifier_of(supply)
        world = SimWorld(
            sim, config.daq.sample_rate_hz, clock, amplifier.current_limit_A or math.inf
        )
        if generator is not None:
            generator.connect(
                lambda volts, on: world.set_drive(amplifier.output_V(volts), on), world.advance_to
            )
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
    return _pointed_at(config, servers), clock, world, models, servers, mirrors, wired


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


def _pointed_at(config: SimRigConfig, servers: Servers) -> SimRigConfig:
    """`config` with each served instrument's resource at its socket, through pyvisa-py."""
    changes = {
        role: getattr(config.devices, role).model_copy(
            update={"resource": server.resource, "visa_library": PYVISA_PY}
        )
        for role, server in servers.items()
    }
    return config.model_copy(update={"devices": config.devices.model_copy(update=changes)})


def _devices(
    config: RigConfig,
    world: SimWorld,
    wired: Wired,
    mirrors: connect.Mirrors,
    frames: RenderProcess | None,
) -> tuple[MicroManagerCamera, SimDaq, Heater]:
    """Camera (UniMMCore with the Python camera), DAQ and heater, or nothing left open."""
    with ExitStack() as stack:
        core = UniMMCore(mm_path=tempfile.gettempdir())
        core.loadPyDevice(config.devices.camera.label, SimCamera(world, frames))
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
