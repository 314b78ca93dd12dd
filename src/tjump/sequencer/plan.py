"""A protocol checked against a rig, before any device is touched."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from tjump.protocol import Protocol, Schedule, check_against_rig, load_protocol
from tjump.rig import RigConfig, load_calibration, load_rig

DEFAULT_RIG = Path("configs/rigs/sim.yaml")


@dataclass(frozen=True)
class RunPlan:
    """A protocol checked against a rig: everything known before a device is touched."""

    protocol: Protocol
    protocol_path: Path | None  # None for a protocol built in Python
    rig: RigConfig
    rig_path: Path
    schedule: Schedule

    @property
    def exposure_ms(self) -> float:
        return self.protocol.exposure_ms or self.rig.camera.exposure_ms

    def frame_shape(self) -> tuple[int, int]:
        """(rows, columns) of the frames this rig's camera will deliver."""
        camera = self.rig.devices.camera
        if camera.roi is not None:
            width, height = camera.roi[2], camera.roi[3]
        else:
            width, height = self.rig.sensor_size()
        return height // camera.binning, width // camera.binning

    def bytes_per_frame(self) -> int:
        rows, columns = self.frame_shape()
        return rows * columns * 2

    @property
    def seed(self) -> int | None:
        """The simulator's seed; a lab rig has none."""
        return self.rig.seed


def plan_run(protocol: Path | str | Protocol, rig_path: Path | str = DEFAULT_RIG) -> RunPlan:
    """Load (or take) the protocol and load the rig, and check one against the other;
    raises `InputError` naming any bad field. No device is touched."""
    rig_path = Path(rig_path)
    rig = load_rig(rig_path)
    if isinstance(protocol, Protocol):
        protocol_path, source = None, f"'{protocol.name}'"
    else:
        protocol_path = Path(protocol)
        protocol, source = load_protocol(protocol_path), str(protocol_path)
    calibration = load_calibration(rig.calibration)
    schedule = check_against_rig(protocol, rig, calibration, source)
    return RunPlan(protocol, protocol_path, rig, rig_path, schedule)


def default_output(plan: RunPlan) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{plan.protocol.name}"
