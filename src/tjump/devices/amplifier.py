"""The Corrtest CS120 used as an analog amplifier driven by the function generator.

It has no public remote protocol: its output is `gain x` the generator's output, capped by
its own current limit, and its state is read back through the DAQ.
"""

from __future__ import annotations

from tjump.devices.interfaces import FunctionGenerator


class AmplifierSupply:
    """A heater supply whose drive voltage is set through a function generator."""

    def __init__(self, generator: FunctionGenerator, gain: float, name: str = "supply") -> None:
        if gain <= 0:
            raise ValueError(f"amplifier gain must be positive, got {gain}")
        self.name = name
        self.generator = generator
        self.gain = gain

    def identity(self) -> str:
        return f"analog amplifier x{self.gain:g} driven by {self.generator.identity()}"

    def set_voltage(self, volts: float) -> None:
        self.generator.set_dc(volts / self.gain)

    def voltage(self) -> float:
        return self.generator.dc_level() * self.gain

    def set_output(self, on: bool) -> None:
        self.generator.set_output(on)

    def output_enabled(self) -> bool:
        return self.generator.output_enabled()

    def close(self) -> None:
        self.generator.close()
