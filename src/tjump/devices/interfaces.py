"""One interface per role. Real drivers and simulated devices both satisfy these."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class DaqChannel(StrEnum):
    """What a DAQ's analog inputs record, in this order (the run's daq.csv columns)."""

    DRIVE_V = "drive_V"  # the voltage on the film
    CURRENT_A = "current_A"  # the film's current, from the supply's current monitor


DAQ_CHANNELS: tuple[str, ...] = (DaqChannel.DRIVE_V, DaqChannel.CURRENT_A)


class DaqLine(StrEnum):
    """The DAQ's digital output lines, by what they are wired to."""

    GENERATOR_TRIGGER = "generator_trigger"  # the generator's external trigger input
    SHUTTER = "shutter"  # the light stimulus's shutter
    FAST_CAMERA_TRIGGER = "fast_camera_trigger"  # the fast camera's trigger input


@dataclass(frozen=True)
class CameraFrame:
    """One image as the camera delivered it, with the camera's own frame counter."""

    image: NDArray[np.uint16]
    number: int


class Camera(Protocol):
    """A camera that takes a hardware-triggered (or free-running) sequence."""

    name: str

    def shape(self) -> tuple[int, int]:
        """Image (rows, columns)."""
        ...

    def set_exposure_ms(self, exposure_ms: float) -> None: ...

    def set_interval_ms(self, interval_ms: float) -> None:
        """Frame period when the camera times itself (ignored when triggered)."""
        ...

    def start(self, n_frames: int) -> None:
        """Arm a sequence of `n_frames`; frames come as triggers arrive."""
        ...

    def next_frame(self, timeout_s: float) -> CameraFrame:
        """The oldest frame not yet read; raises `CameraTimeout` if none comes in time."""
        ...

    def frames_delivered(self) -> int:
        """Frames that reached the computer since `start` (read or waiting)."""
        ...

    def frames_waiting(self) -> int:
        """Frames that reached the computer and have not been read yet."""
        ...

    def dropped_frames(self, triggers_sent: int) -> int:
        """How many of `triggers_sent` triggers produced no frame."""
        ...

    def check_frames(self, triggers_sent: int) -> None:
        """Raise `DroppedFrames` if any of `triggers_sent` triggers produced no frame."""
        ...

    def stop(self) -> None:
        """End the sequence; frames already taken stay readable."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DaqBlock:
    """Analog samples on the DAQ's clock: rows are samples, columns are channels."""

    first_index: int
    data: NDArray[np.float64]

    @property
    def end_index(self) -> int:
        return self.first_index + len(self.data)


class Daq(Protocol):
    """The master timebase: a pulse train triggers the camera, analog inputs record the
    heater drive and current on the sample clock."""

    name: str
    channels: tuple[str, ...]

    @property
    def sample_rate_hz(self) -> float: ...

    def start(self, frame_rate_hz: float) -> None:
        """Start the analog sample clock and the camera trigger pulse train together."""
        ...

    def read(self) -> DaqBlock:
        """Samples acquired since the previous read."""
        ...

    def stop_triggers(self) -> None:
        """Stop the camera pulse train after the current pulse; sampling goes on."""
        ...

    def start_triggers(self, frame_rate_hz: float) -> int:
        """Start a new pulse train now at `frame_rate_hz`; returns the sample index of its
        first pulse."""
        ...

    def set_digital(self, line: str, on: bool) -> None:
        """Set a digital output line (a `DaqLine`, e.g. the light stimulus's shutter)."""
        ...

    def triggers_sent(self) -> int:
        """Camera trigger pulses issued since `start`."""
        ...

    def exposures_counted(self) -> int:
        """Exposures the camera reported (its exposure-active output, counted) since
        `start`."""
        ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


class FunctionGenerator(Protocol):
    """A generator whose output sets the heater supply's control voltage."""

    name: str

    def identity(self) -> str: ...

    def set_dc(self, volts: float) -> None: ...

    def dc_level(self) -> float: ...

    def set_output(self, on: bool) -> None: ...

    def output_enabled(self) -> bool: ...

    def close(self) -> None: ...


class HeaterSupply(Protocol):
    """What drives the gold film: sets the drive voltage and switches the output."""

    name: str

    def identity(self) -> str: ...

    def set_voltage(self, volts: float) -> None:
        """Drive voltage across the film, in volts."""
        ...

    def voltage(self) -> float: ...

    def set_output(self, on: bool) -> None: ...

    def output_enabled(self) -> bool: ...

    def close(self) -> None: ...
