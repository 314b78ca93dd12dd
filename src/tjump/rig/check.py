"""Connect to every device of a rig, report identity, state and limits, leave it safe.

A lab rig's devices are connected one at a time, so one missing instrument does not hide
the state of the others; a simulated rig is built whole (its devices share one world).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from tjump.devices.amplifier import AmplifierSupply
from tjump.devices.describe import Describable
from tjump.devices.interfaces import Camera, Daq, HeaterSupply
from tjump.devices.rigol import RigolDG1000Z
from tjump.devices.sourcemeter import ScpiSourceMeter
from tjump.errors import TjumpError
from tjump.rig import connect
from tjump.rig.build import build_rig
from tjump.rig.config import RigConfig
from tjump.rig.heater import Heater

_FAULTS = (TjumpError, OSError, RuntimeError, ValueError)
FAST_CHECK_S = 0.5  # how long the fast camera streams in a check
FAST_RATE_SHARE = 0.9  # of its set frame rate, at least
D = TypeVar("D", Daq, Camera)


@dataclass(frozen=True)
class CheckRow:
    """One device's line in the check; `problem` is empty when all is well."""

    device: str
    identity: str
    state: str
    limits: str
    problem: str = ""
    verified: str = ""  # what was read back and found as it must be
    measured: str = ""  # round-trip, arm and make-safe times


def check_rig(config: RigConfig) -> list[CheckRow]:
    """Connect, describe each device, make the heater safe (read back), disconnect.
    A device that fails gives a row with its problem instead of an exception."""
    if config.kind == "lab":
        return [
            *_checked("supply", lambda: _supply_rows(config, connect.supply(config))),
            *_checked("daq", lambda: _described(connect.lab_daq(config), _daq_row)),
            *_checked(
                "camera",
                lambda: _described(connect.lab_camera(config), partial(_camera_row, config)),
            ),
            *_checked("fast camera", lambda: _fast_camera_rows(config)),
        ]
    rows: list[CheckRow] = []

    def whole_rig() -> list[CheckRow]:
        with build_rig(config) as rig:
            rows.extend(_supply_rows(config, rig.heater.supply, rig.heater))
            rows.append(_daq_row(rig.daq))
            rows.append(_camera_row(config, rig.camera))
            if rig.fast_camera is not None:
                rows.append(
                    CheckRow(
                        "fast camera",
                        rig.fast_camera.name,
                        "records around a trigger (bursts)",
                        f"{rig.fast_camera.frame_rate_hz:g} frames/s",
                    )
                )
        return []

    problems = _checked("rig", whole_rig)
    return rows + problems


def _checked(device: str, rows: Callable[[], list[CheckRow]]) -> list[CheckRow]:
    try:
        return rows()
    except _FAULTS as e:
        return [CheckRow(device, "", "not connected", "", str(e))]


def _described(device: D, row: Callable[[D], CheckRow]) -> list[CheckRow]:
    """The row describing `device`, which is closed afterwards."""
    try:
        return [row(device)]
    finally:
        device.close()


def _supply_rows(
    config: RigConfig, supply: HeaterSupply, heater: Heater | None = None
) -> list[CheckRow]:
    limits = config.limits
    rows: list[CheckRow] = []
    own = heater is None  # a lab check opened the supply itself: close it after
    try:
        heater = heater or connect.heater(config, supply, None)
        if isinstance(supply, AmplifierSupply):
            gen = supply.generator
            rows.append(
                CheckRow(
                    "generator",
                    gen.identity(),
                    _state(gen),
                    f"level <= {supply.amplifier.input_V(limits.max_drive_V):g} V "
                    "(max_drive_V / gain)",
                    verified=_verified(gen),
                    measured=_timings(gen, heater),
                )
            )
        rows.append(
            CheckRow(
                "supply",
                supply.identity(),
                _state(supply),
                f"drive <= {limits.max_drive_V:g} V, current <= {limits.max_current_A:g} A",
                verified=_verified(supply),
                measured=_timings(supply, heater),
            )
        )
        heater.make_safe()
    finally:
        if own:
            supply.close()
    above = limits.max_time_above
    rows.append(
        CheckRow(
            "heater",
            f"calibration {config.calibration}",
            "0 V, output off (read back)",
            f"<= {limits.max_temperature_K:g} K; <= {above.seconds:g} s above "
            f"{above.temperature_K:g} K",
        )
    )
    return rows


def _verified(device: object) -> str:
    """What connecting read back and found right, per instrument."""
    if isinstance(device, RigolDG1000Z):
        nagle = "TCP_NODELAY on" if device.session.no_delay else "not TCP"
        return f"identity; output OFF, DC 0 V, burst OFF, load HighZ (read back); {nagle}"
    if isinstance(device, ScpiSourceMeter):
        return "identity; output 0, voltage source at 0 V, compliance (read back)"
    return ""


def _timings(device: object, heater: Heater) -> str:
    """Round trip; arming one pulse (0.01 V, left untriggered) and making the heater safe
    after it, as measured now on this connection."""
    if not isinstance(device, RigolDG1000Z | ScpiSourceMeter):
        return ""
    session = device.session
    text = f"round trip {session.round_trip_s() * 1e3:.1f} ms"
    if isinstance(device, RigolDG1000Z):
        before = session.round_trips
        start = time.perf_counter()
        device.arm_pulse(min(0.01, device.max_level_V), 1.0)
        arm_s = time.perf_counter() - start
        text += f"; arm {arm_s * 1e3:.1f} ms ({session.round_trips - before} round trips)"
    start = time.perf_counter()
    heater.make_safe()
    return text + f"; make safe {(time.perf_counter() - start) * 1e3:.1f} ms"


def _daq_row(daq: Daq) -> CheckRow:
    return CheckRow("daq", daq.name, _state(daq), "")


def _camera_row(config: RigConfig, camera: Camera) -> CheckRow:
    return CheckRow(
        "camera", camera.name, _state(camera), f"<= {config.camera.max_frame_rate_hz:g} frames/s"
    )


def _fast_camera_rows(config: RigConfig) -> list[CheckRow]:
    """The lab's fast camera streaming for `FAST_CHECK_S`: the frame rate it delivers
    against the rate set (none without a fast camera)."""
    camera = connect.lab_fast_camera(config)
    if camera is None:
        return []
    try:
        camera.arm(pre_s=0.0, post_s=0.0)
        start, first = time.perf_counter(), camera.frames_recorded
        time.sleep(FAST_CHECK_S)
        rate = (camera.frames_recorded - first) / (time.perf_counter() - start)
    finally:
        camera.close()
    wanted = camera.frame_rate_hz
    problem = (
        f"streams {rate:.0f} frames/s, below the {wanted:g} frames/s set: a burst's frames "
        "would be spaced wider than the rig file says"
        if rate < FAST_RATE_SHARE * wanted
        else ""
    )
    return [
        CheckRow(
            "fast camera",
            camera.name,
            f"streamed {rate:.0f} frames/s for {FAST_CHECK_S:g} s, stopped",
            f"{wanted:g} frames/s",
            problem,
        )
    ]


def _state(device: object) -> str:
    return device.describe() if isinstance(device, Describable) else ""
