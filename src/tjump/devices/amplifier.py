"""The Corrtest CS120 used as an analog amplifier driven by the function generator.

It has no public remote protocol: its output is `gain x` the generator's output, capped by
its own current limit, and its state is read back through the DAQ. `Amplifier` is that
one model, used by the driver here (the generator level for a drive) and by the simulated
rig (the film's drive for a generator level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tjump.devices.interfaces import FunctionGenerator
from tjump.devices.pulse import PulseGenerator
from tjump.errors import DeviceError


@dataclass(frozen=True)
class Amplifier:
    """A voltage amplifier: output = `gain` x input, its current capped at
    `current_limit_A` (None: no limit of its own)."""

    gain: float
    current_limit_A: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise ValueError(f"amplifier gain must be a positive number, got {self.gain}")

    def output_V(self, input_V: float) -> float:
        """The amplifier's output for `input_V` at its input (before the current limit)."""
        return self.gain * input_V

    def input_V(self, output_V: float) -> float:
        """The input that gives `output_V` at the output."""
        return output_V / self.gain

    def describe(self) -> str:
        limit = f", current limit {self.current_limit_A:g} A" if self.current_limit_A else ""
        return f"analog amplifier x{self.gain:g}{limit}"


class AmplifierSupply:
    """A heater supply whose drive voltage is set through a function generator."""

    def __init__(
        self, generator: FunctionGenerator, amplifier: Amplifier, name: str = "supply"
    ) -> None:
        self.name = name
        self.generator = generator
        self.amplifier = amplifier

    def identity(self) -> str:
        return f"{self.amplifier.describe()} driven by {self.generator.identity()}"

    def describe(self) -> str:
        """Drive and output as set through the generator (the DAQ reads the real ones)."""
        state = "ON" if self.output_enabled() else "OFF"
        return f"drive {self.voltage():g} V, output {state} (set by the generator)"

    def set_voltage(self, volts: float) -> None:
        self.generator.set_dc(self.amplifier.input_V(volts))

    def voltage(self) -> float:
        return self.amplifier.output_V(self.generator.dc_level())

    def set_output(self, on: bool) -> None:
        self.generator.set_output(on)

    def output_enabled(self) -> bool:
        return self.generator.output_enabled()

    def arm_pulse(self, volts: float, duration_s: float) -> None:
        self._pulses().arm_pulse(self.amplifier.input_V(volts), duration_s)

    def fire_pulse(self) -> None:
        self._pulses().fire_pulse()

    def close(self) -> None:
        self.generator.close()

    def _pulses(self) -> PulseGenerator:
        if not isinstance(self.generator, PulseGenerator):
            raise DeviceError(
                self.name,
                f"{self.generator.name} cannot hold a level for a fixed time",
                "use a generator with triggered bursts for bounded heat steps",
            )
        return self.generator
