"""Faults of the simulated camera and DAQ, injected through the simulated rig
(`SimRig.faults`); the instruments' transport faults are each served instrument's own
(`SimRig.instrument(role).faults`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class InjectedFaults:
    """What goes wrong on the simulated bench, set by a test."""

    camera_stalls_after: int | None = None  # the camera's cable comes out after N frames
    camera_drops: set[int] = field(default_factory=set)  # exposed, but lost on the way
    exposure_line_cut_after: int | None = None  # the exposure-out cable comes out
    # the film's current as the DAQ reads it, times this (a crack, a failing contact)
    current_factor: float = 1.0
