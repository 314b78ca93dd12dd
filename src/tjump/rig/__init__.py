"""Builds the devices a rig file names, with their limits and calibration."""

from tjump.rig.build import Rig, build_rig, open_rig
from tjump.rig.calibration import HeaterCalibration, load_calibration
from tjump.rig.config import Limits, RigConfig, load_rig
from tjump.rig.heater import Heater

__all__ = [
    "Heater",
    "HeaterCalibration",
    "Limits",
    "Rig",
    "RigConfig",
    "build_rig",
    "load_calibration",
    "load_rig",
    "open_rig",
]
