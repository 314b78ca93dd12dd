"""Heat steps whose length the instrument itself bounds: armed once, started by a trigger,
ended by the instrument even if the computer stops talking to it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PulseGenerator(Protocol):
    """A generator that can hold one level for a fixed time after a trigger."""

    def arm_pulse(self, level_V: float, width_s: float) -> None:
        """Output on, idle at 0 V; the next trigger gives `level_V` for `width_s`."""
        ...

    def fire_pulse(self) -> None:
        """Start the armed pulse now, by software (for generators triggered by software)."""
        ...


@runtime_checkable
class PulsedSupply(Protocol):
    """A heater supply that can apply a drive voltage for a time bounded by hardware."""

    def arm_pulse(self, volts: float, duration_s: float) -> None: ...

    def fire_pulse(self) -> None: ...
