"""The heater as the sequencer sees it: temperatures in, limits enforced, safe on demand."""

from __future__ import annotations

from tjump.devices.interfaces import HeaterSupply
from tjump.errors import DeviceError, LimitError
from tjump.rig.calibration import HeaterCalibration
from tjump.rig.config import Limits


class Heater:
    """Sets the film's temperature through the calibration; refuses anything beyond the
    rig's limits before a command is sent."""

    def __init__(
        self,
        supply: HeaterSupply,
        calibration: HeaterCalibration,
        limits: Limits,
        ambient_K: float,
    ) -> None:
        self.supply = supply
        self.calibration = calibration
        self.limits = limits
        self.ambient_K = ambient_K

    def set_temperature(self, temperature_K: float) -> float:
        """Drive the film towards `temperature_K`; returns the drive voltage used."""
        if temperature_K > self.limits.max_temperature_K:
            raise LimitError(
                "heater",
                f"{temperature_K} K is above the rig's max_temperature_K "
                f"{self.limits.max_temperature_K} K",
            )
        volts = (
            0.0 if temperature_K <= self.ambient_K else self.calibration.drive_for(temperature_K)
        )
        self.set_drive(volts)
        return volts

    def set_drive(self, volts: float) -> None:
        if not 0.0 <= volts <= self.limits.max_drive_V:
            raise LimitError(
                "heater",
                f"drive {volts:.4g} V is outside 0..max_drive_V {self.limits.max_drive_V} V",
            )
        self.supply.set_voltage(volts)
        self.supply.set_output(True)

    def make_safe(self) -> None:
        """Drive 0 V and output off, verified by reading both back."""
        self.supply.set_voltage(0.0)
        self.supply.set_output(False)
        if self.supply.voltage() != 0.0 or self.supply.output_enabled():
            raise DeviceError(
                self.supply.name,
                "did not confirm 0 V with the output off",
                "switch the heater supply off by hand",
            )

    def is_safe(self) -> bool:
        return self.supply.voltage() == 0.0 and not self.supply.output_enabled()
