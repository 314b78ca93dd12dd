"""The heater as the sequencer sees it: temperatures in, limits enforced, safe on demand.

Any fault while changing the heater leaves it at 0 V with the output off (verified) before
the error goes on up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from tjump.devices.interfaces import HeaterSupply
from tjump.devices.pulse import PulsedSupply
from tjump.errors import DeviceError, LimitError
from tjump.rig.calibration import HeaterCalibration
from tjump.rig.config import Limits, TimeAboveLimit

T = TypeVar("T")


class TimeAbove:
    """The rig's max_time_above rule, the one copy of it: at most `limit.seconds` in one
    go above `limit.temperature_K`. Stretches are added in time order; one at or below
    that temperature starts the count again. Used by the protocol check (the whole
    schedule), the heater (one heat pulse) and the runner (while running)."""

    def __init__(self, limit: TimeAboveLimit) -> None:
        self.limit = limit
        self.seconds = 0.0  # in one go above the temperature, up to the last stretch added

    def add(self, temperature_K: float, duration_s: float) -> bool:
        """Count a stretch at `temperature_K`; False if the film is now above too long."""
        above = temperature_K > self.limit.temperature_K
        self.seconds = self.seconds + duration_s if above else 0.0
        return self.seconds <= self.limit.seconds

    def reset(self) -> None:
        """Start the count again (the film was let cool: a pause, a reported problem)."""
        self.seconds = 0.0


class Heater:
    """Sets the film's temperature through the calibration; refuses anything beyond the
    rig's limits before a command is sent."""

    def __init__(
        self,
        supply: HeaterSupply,
        calibration: HeaterCalibration,
        limits: Limits,
        ambient_K: float,
        pulse_trigger: Callable[[], None] | None = None,
    ) -> None:
        self.supply = supply
        self.calibration = calibration
        self.limits = limits
        self.ambient_K = ambient_K
        self._pulse_trigger = pulse_trigger
        self._lock = threading.RLock()  # the watchdog thread may make it safe at any time

    def set_temperature(self, temperature_K: float) -> float:
        """Drive the film towards `temperature_K`; returns the drive voltage used."""
        volts = self.drive_for(temperature_K)
        self.set_drive(volts)
        return volts

    def drive_for(self, temperature_K: float) -> float:
        """The drive voltage for `temperature_K`, refusing a temperature above the limit."""
        if temperature_K > self.limits.max_temperature_K:
            raise LimitError(
                "heater",
                f"{temperature_K} K is above the rig's max_temperature_K "
                f"{self.limits.max_temperature_K} K",
            )
        if temperature_K <= self.ambient_K:
            return 0.0
        return self.calibration.drive_for(temperature_K)

    def set_drive(self, volts: float) -> None:
        self._check_drive(volts)
        with self._lock:
            self._guarded(lambda: self.supply.set_voltage(volts))
            self._guarded(lambda: self.supply.set_output(True))

    def arm_heat_pulse(self, temperature_K: float, duration_s: float) -> float:
        """Program a heat step the instrument ends by itself after `duration_s`; it
        starts at `fire_heat_pulse()`. Returns the drive voltage. The heater idles at
        0 V with the output on until then."""
        volts = self.drive_for(temperature_K)
        if volts <= 0.0:
            raise LimitError(
                "heater", f"a heat pulse needs a temperature above ambient, got {temperature_K} K"
            )
        self._check_drive(volts)
        above = self.limits.max_time_above
        if not TimeAbove(above).add(temperature_K, duration_s):
            raise LimitError(
                "heater",
                f"{duration_s:g} s above {above.temperature_K:g} K is longer than the "
                f"rig's max_time_above {above.seconds:g} s",
            )
        supply = self.supply
        if not isinstance(supply, PulsedSupply):
            raise DeviceError(supply.name, "cannot bound a heat step in hardware")
        with self._lock:
            self._guarded(lambda: supply.arm_pulse(volts, duration_s))
        return volts

    @property
    def bounds_heat_steps(self) -> bool:
        """Whether a heat step can be bounded by the instrument itself (an armed pulse
        and a wired trigger), so a dead computer cannot leave the heater on."""
        return self._pulse_trigger is not None and isinstance(self.supply, PulsedSupply)

    def fire_heat_pulse(self) -> None:
        """Start the armed heat pulse (through the DAQ's trigger line where wired)."""
        trigger = self._pulse_trigger
        if trigger is None:
            raise DeviceError("heater", "no trigger is wired for heat pulses")
        with self._lock:
            self._guarded(trigger)

    def make_safe(self) -> None:
        """Drive 0 V and output off, verified by reading both back. The output is
        switched off even if setting 0 V fails; the first failure is raised."""
        supply = self.supply
        with self._lock:
            failures: list[Exception] = []
            steps: tuple[Callable[[], None], ...] = (
                lambda: supply.set_voltage(0.0),
                lambda: supply.set_output(False),
            )
            for step in steps:
                try:
                    step()
                except Exception as e:
                    failures.append(e)
            if failures:
                for later in failures[1:]:
                    failures[0].add_note(f"also: {later}")
                raise failures[0]
            if not self.is_safe():
                raise DeviceError(
                    supply.name,
                    "did not confirm 0 V with the output off",
                    "switch the heater supply off by hand",
                )

    def is_safe(self) -> bool:
        with self._lock:
            return self.supply.voltage() == 0.0 and not self.supply.output_enabled()

    def _check_drive(self, volts: float) -> None:
        if not 0.0 <= volts <= self.limits.max_drive_V:
            raise LimitError(
                "heater",
                f"drive {volts:.4g} V is outside 0..max_drive_V {self.limits.max_drive_V} V",
            )

    def _guarded(self, action: Callable[[], T]) -> T:
        """Run `action`; on any failure make the heater safe, then re-raise."""
        try:
            return action()
        except BaseException as error:
            try:
                self.make_safe()
            except Exception as e:
                error.add_note(f"heater NOT confirmed safe after this fault: {e}")
            raise
