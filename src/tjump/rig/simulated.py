"""The simulated rig: the world and its instrument models behind the same real drivers
the lab uses, wherever the transport allows (VISA, Micro-Manager); the DAQ is simulated."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial

import numpy as np
from pymmcore_plus.experimental.unicore import UniMMCore

from tjump.clock import VirtualClock
from tjump.devices.mmcamera import MicroManagerCamera
from tjump.rig import connect
from tjump.rig.config import RigConfig, SourceMeterConfig
from tjump.rig.heater import Heater
from tjump.sim.camera import SimCamera
from tjump.sim.devices import SimDaq
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.sourcemeter import SimKeithley2400
from tjump.sim.visa import SimVisaLibrary
from tjump.sim.world import SimWorld


def instruments(
    config: RigConfig, seed: int | None
) -> tuple[VirtualClock, SimWorld, SimVisaLibrary, dict[str, Callable[[], object]]]:
    """The clock, the world, the instrument models on simulated VISA resources, and the
    DAQ lines wired to them."""
    sim = config.simulation
    if seed is not None:
        sim = sim.model_copy(update={"seed": seed})
    devices = config.devices
    clock = VirtualClock()
    visa = SimVisaLibrary()
    wired: dict[str, Callable[[], object]] = {}
    generator = None
    if devices.generator is not None:  # before the world: its clock listener runs first
        generator = SimRigolDG1000Z(clock, drive_channel=devices.generator.channel)
        visa.add(devices.generator.resource, generator)
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
        visa.add(devices.supply.resource, meter)
    return clock, world, visa, wired


def devices(
    config: RigConfig, world: SimWorld, visa: SimVisaLibrary, wired: dict[str, Callable[[], object]]
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
        supply = connect.supply(config, visa)
        stack.callback(supply.close)
        heater = connect.heater(config, supply, daq)
        stack.pop_all()
    return camera, daq, heater


def film_current(world: SimWorld, volts: float) -> float:
    """What the simulated film draws at `volts` now (the source-meter's measurement)."""
    temperature = np.array([world.temperature()])
    film = world.thermal.film_voltage(volts, temperature)
    return float((film / world.thermal.resistance(temperature))[0])
