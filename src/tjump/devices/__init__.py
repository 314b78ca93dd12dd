"""Device roles (camera, DAQ, function generator, heater supply) and their drivers.

A driver knows its instrument and nothing about protocols or runs.
"""

from tjump.devices.interfaces import (
    Camera,
    CameraFrame,
    Daq,
    DaqBlock,
    FunctionGenerator,
    HeaterSupply,
)

__all__ = ["Camera", "CameraFrame", "Daq", "DaqBlock", "FunctionGenerator", "HeaterSupply"]
