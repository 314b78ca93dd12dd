"""Checking a protocol against a rig's limits, before any device is touched."""

from __future__ import annotations

from pathlib import Path

from tjump.errors import InputError
from tjump.files import load_yaml, validate
from tjump.protocol.schedule import Schedule, build_schedule
from tjump.protocol.schema import Protocol
from tjump.rig.calibration import HeaterCalibration
from tjump.rig.config import RigConfig


def load_protocol(path: Path) -> Protocol:
    """Read and validate a protocol file on its own."""
    return validate(Protocol, load_yaml(path, "protocol"), f"protocol {path}")


def check_against_rig(
    protocol: Protocol, rig: RigConfig, calibration: HeaterCalibration, source: str
) -> Schedule:
    """The protocol's schedule, or one `InputError` naming every field beyond a limit."""
    schedule = build_schedule(protocol, rig.ambient_K)
    limits = rig.limits
    problems: list[str] = []
    fps = protocol.frame_rate_hz
    if fps > rig.camera.max_frame_rate_hz:
        problems.append(
            f"frame_rate_hz: {fps:g} Hz is above the camera's max_frame_rate_hz "
            f"{rig.camera.max_frame_rate_hz:g} Hz"
        )
    per_frame = rig.daq.sample_rate_hz / fps
    if abs(per_frame - round(per_frame)) > 1e-6:
        problems.append(
            f"frame_rate_hz: {fps:g} Hz must divide the DAQ sample rate "
            f"{rig.daq.sample_rate_hz:g} Hz into whole samples"
        )
    exposure = protocol.exposure_ms or rig.camera.exposure_ms
    if exposure > 1e3 / fps:
        problems.append(
            f"exposure_ms: {exposure:g} ms is longer than one frame at {fps:g} Hz "
            f"({1e3 / fps:g} ms)"
        )
    seen: set[str] = set()
    for seg in schedule.segments:
        if seg.field in seen:
            continue
        seen.add(seg.field)
        t = seg.setpoint_K
        if t > limits.max_temperature_K:
            problems.append(
                f"{seg.field}: {t:g} K is above the rig's max_temperature_K "
                f"{limits.max_temperature_K:g} K"
            )
        elif t > rig.ambient_K:
            lo, hi = calibration.range_K
            if not lo <= t <= hi:
                problems.append(
                    f"{seg.field}: {t:g} K is outside the heater calibration {lo:g}-{hi:g} K"
                )
            elif (v := calibration.drive_for(t)) > limits.max_drive_V:
                problems.append(
                    f"{seg.field}: {t:g} K needs {v:.3f} V, above the rig's max_drive_V "
                    f"{limits.max_drive_V:g} V"
                )
        elif t < rig.ambient_K:
            problems.append(
                f"{seg.field}: {t:g} K is below ambient {rig.ambient_K:g} K (no cooler)"
            )
    problems.extend(_time_above_problems(schedule, rig))
    problems = list(dict.fromkeys(problems))  # a series repeats its fields every cycle
    if problems:
        raise InputError(
            f"protocol {source} does not fit rig '{rig.name}':\n  " + "\n  ".join(problems)
        )
    return schedule


def _time_above_problems(schedule: Schedule, rig: RigConfig) -> list[str]:
    """Continuous stretches above the rig's max_time_above temperature that last too long."""
    limit = rig.limits.max_time_above
    problems: list[str] = []
    run_frames = 0
    for seg in schedule.segments:
        run_frames = run_frames + seg.frames if seg.setpoint_K > limit.temperature_K else 0
        seconds = run_frames / schedule.frame_rate_hz
        if seconds > limit.seconds:
            problems.append(
                f"{seg.field}: {seconds:g} s in a row above {limit.temperature_K:g} K exceeds "
                f"the rig's max_time_above {limit.seconds:g} s"
            )
            run_frames = 0
    return problems
