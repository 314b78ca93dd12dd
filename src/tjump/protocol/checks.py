"""Checking a protocol against a rig's limits, before any device is touched."""

from __future__ import annotations

from pathlib import Path

from tjump.errors import InputError
from tjump.files import load_yaml, validate
from tjump.protocol.schedule import Schedule, Segment, SegmentKind, build_schedule
from tjump.protocol.schema import Protocol, series_steps
from tjump.rig.calibration import HeaterCalibration
from tjump.rig.config import RigConfig
from tjump.rig.heater import TimeAbove


def load_protocol(path: Path) -> Protocol:
    """Read and validate a protocol file on its own."""
    return validate(Protocol, load_yaml(path, "protocol"), f"protocol {path}")


def check_against_rig(
    protocol: Protocol, rig: RigConfig, calibration: HeaterCalibration, source: str
) -> Schedule:
    """The protocol's schedule, or one `InputError` naming every field beyond a limit."""
    schedule = build_schedule(protocol, rig.ambient_K, rig.camera.exposure_ms, source)
    problems: list[str] = _closed_loop_problems(protocol, rig)
    for seg in schedule.segments:
        problems.extend(_camera_problems(seg, rig))
        problems.extend(_temperature_problems(seg, rig, calibration))
    problems.extend(_time_above_problems(schedule, rig))
    problems.extend(_arm_time_problems(schedule, rig))
    problems = list(dict.fromkeys(problems))  # a series repeats its fields every cycle
    if problems:
        raise InputError(
            f"protocol {source} does not fit rig '{rig.name}':\n  " + "\n  ".join(problems)
        )
    return schedule


def _closed_loop_problems(protocol: Protocol, rig: RigConfig) -> list[str]:
    """What the closed loop needs from the rig: the film's R(T) and step response for the
    suspender's band, a fast camera for bursts."""
    problems = []
    if protocol.suspend is not None and (rig.film is None or rig.step_response is None):
        problems.append(
            f"suspend: rig '{rig.name}' does not know its film's R(T) and step response "
            "(film_resistance and heater_step_response, or a heater_model from "
            "`tjump calibrate`), so the film's temperature cannot be watched"
        )
    if any(s.adaptive_cool for s in series_steps(protocol.steps)) and rig.step_response is None:
        problems.append(
            f"adaptive_cool: rig '{rig.name}' does not know its film's step response "
            "(heater_step_response, or a heater_model from `tjump calibrate`), so it cannot "
            "tell when the film is back near the cool's temperature"
        )
    if protocol.burst is not None and not rig.has_fast_camera:
        problems.append(
            f"burst: rig '{rig.name}' has no fast camera (devices.fast_camera, with the DAQ's "
            "fast_camera_trigger_line wired to its trigger input)"
        )
    return problems


def _camera_problems(seg: Segment, rig: RigConfig) -> list[str]:
    if not seg.kind.takes_frames:
        return []
    problems = []
    fps, where = seg.frame_rate_hz, _step_field(seg)
    if fps > rig.camera.max_frame_rate_hz:
        problems.append(
            f"{where}frame_rate_hz: {fps:g} Hz is above the camera's max_frame_rate_hz "
            f"{rig.camera.max_frame_rate_hz:g} Hz"
        )
    per_frame = rig.daq.sample_rate_hz / fps
    if abs(per_frame - round(per_frame)) > 1e-6:
        problems.append(
            f"{where}frame_rate_hz: {fps:g} Hz must divide the DAQ sample rate "
            f"{rig.daq.sample_rate_hz:g} Hz into whole samples"
        )
    if seg.exposure_ms > 1e3 / fps:
        problems.append(
            f"{where}exposure_ms: {seg.exposure_ms:g} ms is longer than one frame at {fps:g} Hz "
            f"({1e3 / fps:g} ms)"
        )
    return problems


def _step_field(seg: Segment) -> str:
    """'' for the protocol's own settings, else the step's path: 'steps.2.'."""
    return seg.field.rsplit(".", 1)[0] + "." if seg.field.count(".") > 1 else ""


def _temperature_problems(
    seg: Segment, rig: RigConfig, calibration: HeaterCalibration
) -> list[str]:
    t, limits = seg.setpoint_K, rig.limits
    if t > limits.max_temperature_K:
        return [
            f"{seg.field}: {t:g} K is above the rig's max_temperature_K "
            f"{limits.max_temperature_K:g} K"
        ]
    if t < rig.ambient_K:
        return [f"{seg.field}: {t:g} K is below ambient {rig.ambient_K:g} K (no cooler)"]
    if t == rig.ambient_K:
        return []
    lo, hi = calibration.range_K
    if not lo <= t <= hi:
        return [f"{seg.field}: {t:g} K is outside the heater calibration {lo:g}-{hi:g} K"]
    if (v := calibration.drive_for(t)) > limits.max_drive_V:
        return [
            f"{seg.field}: {t:g} K needs {v:.3f} V, above the rig's max_drive_V "
            f"{limits.max_drive_V:g} V"
        ]
    return []


def _time_above_problems(schedule: Schedule, rig: RigConfig) -> list[str]:
    """Continuous stretches above the rig's max_time_above temperature that last too long."""
    rule, limit = TimeAbove(rig.limits.max_time_above), rig.limits.max_time_above
    problems: list[str] = []
    for seg in schedule.segments:
        if not rule.add(seg.setpoint_K, seg.duration_s):
            problems.append(
                f"{seg.field}: {rule.seconds:g} s in a row above {limit.temperature_K:g} K "
                f"exceeds the rig's max_time_above {limit.seconds:g} s"
            )
            rule.reset()
    return problems


def _arm_time_problems(schedule: Schedule, rig: RigConfig) -> list[str]:
    """A heated step's pulse is programmed during the 0 V segment before it: that segment
    must last longer than the generator takes to arm one (devices.generator.arm_time_s)."""
    generator = rig.devices.generator
    if generator is None:
        return []
    arm = generator.arm_time_s
    problems = []
    for before, seg in zip(schedule.segments, schedule.segments[1:], strict=False):
        if (
            seg.heated_above(rig.ambient_K)
            and before.setpoint_K <= rig.ambient_K
            and before.duration_s < arm
        ):
            where = (
                before.field.rsplit(".", 1)[0] + ".cool_s"
                if before.kind is SegmentKind.COOL
                else ""
            )
            problems.append(
                f"{where or before.field}: {before.duration_s:g} s at 0 V before the "
                f"{seg.kind} step is shorter than the time to arm its heat pulse, "
                f"devices.generator.arm_time_s {arm:g} s (measured by `tjump devices check`)"
            )
    return problems
