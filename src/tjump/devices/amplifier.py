"""The Corrtest CS120 used as an analog amplifier driven by the function generator.

It has no public remote protocol: its output is `gain x` the generator's output, capped by
its own current limit, and its state is read back through the DAQ.
"""

from __future__ import annotations

from tjump.devices.interfaces import FunctionGenerator
from tjump.devices.pulse import PulseGenerator
from tjump.errors import DeviceError


class AmplifierSupply:
    """A heater supply whose drive voltage is set through a function generator."""

    def __init__(
        self,
        generator: FunctionGenerator,
        gain: float,
        current_limit_A: float | None = None,
        name: str = "supply",
    ) -> None:
        if gain <= 0:
            raise ValueError(f"amplifier gain must be positive, got {gain}")
        self.name = name
        self.generator = generator
        self.gain = gain
        self.current_limit_A = current_limit_A

    def identity(self) -> str:
        limit = f", current limit {self.current_limit_A:g} A" if self.current_limit_A else ""
        return f"analog amplifier x{self.gain:g}{limit} driven by {self.generator.identity()}"

    def describe(self) -> str:
        """Drive and output as set through the generator (the DAQ reads the real ones)."""
        state = "ON" if self.output_enabled() else "OFF"
        return f"drive {self.voltage():g} V, output {state} (set by the generator)"

    def set_voltage(self, volts: float) -> None:
        self.generator.set_dc(volts / self.gain)

    def voltage(self) -> float:
        return self.generator.dc_level() * self.gain

    def set_output(self, on: bool) -> None:
        self.generator.set_output(on)

    def output_enabled(self) -> bool:
        return self.generator.output_enabled()

    def arm_pulse(self, volts: float, duration_s: float) -> None:
        self._pulses().arm_pulse(volts / self.gain, duration_s)

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
