"""Simulated DAQ and function generator, behind the same interfaces as the real drivers."""

from __future__ import annotations

from tjump.devices.interfaces import DaqBlock
from tjump.errors import DeviceError
from tjump.sim.world import SimWorld

# Rigol DG1000Z into a high-impedance load
_GENERATOR_MAX_V = 10.0


class SimDaq:
    """An NI USB-6251 as the simulated world sees it: drive and current on one clock,
    and the camera trigger pulse train."""

    channels: tuple[str, ...] = ("drive_V", "current_A")

    def __init__(self, world: SimWorld, name: str = "daq (simulated)") -> None:
        self.world = world
        self.name = name

    @property
    def sample_rate_hz(self) -> float:
        return 1.0 / self.world.dt

    def start(self, frame_rate_hz: float) -> None:
        try:
            self.world.start_daq(frame_rate_hz)
        except ValueError as e:
            raise DeviceError(self.name, str(e), "choose a frame rate that divides it") from e

    def read(self) -> DaqBlock:
        first, data = self.world.read_daq()
        return DaqBlock(first, data)

    def stop_triggers(self) -> None:
        self.world.stop_triggers()

    def start_triggers(self, frame_rate_hz: float) -> int:
        try:
            return self.world.start_triggers(frame_rate_hz)
        except ValueError as e:
            raise DeviceError(self.name, str(e), "choose a frame rate that divides it") from e

    def set_digital(self, line: str, on: bool) -> None:
        self.world.set_digital(line, on)

    def triggers_sent(self) -> int:
        return self.world.frames_triggered()

    def stop(self) -> None:
        self.world.stop_daq()

    def close(self) -> None:
        self.stop()


class SimFunctionGenerator:
    """A DC-level function generator whose output feeds the simulated amplifier."""

    def __init__(self, world: SimWorld, name: str = "generator (simulated)") -> None:
        self.world = world
        self.name = name

    def identity(self) -> str:
        return "Rigol Technologies,DG1062Z,SIMULATED,00.01.14"

    def set_dc(self, volts: float) -> None:
        if abs(volts) > _GENERATOR_MAX_V:
            raise DeviceError(
                self.name, f"DC level {volts:g} V is beyond +-{_GENERATOR_MAX_V:g} V (HighZ)"
            )
        self.world.set_generator(volts=volts)

    def dc_level(self) -> float:
        return self.world.generator_volts

    def set_output(self, on: bool) -> None:
        self.world.set_generator(on=on)

    def output_enabled(self) -> bool:
        return self.world.generator_on

    def close(self) -> None:
        self.set_output(False)
