"""A lab rig's fast camera: named in the rig file with its DAQ trigger line, loaded on a
Micro-Manager core of its own from its configuration file, checked by `devices check`, and
accepted for bursts by `run --check`. The core is a pymmcore-plus `UniMMCore` here, so the
configuration file can load a Python camera (`#py pyDevice`) where the lab loads a C++
adapter; everything from the rig file to the burst is the lab's code."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pymmcore_plus.experimental.unicore import UniMMCore

from tjump.devices.fastcamera import Roi
from tjump.devices.interfaces import DaqLine
from tjump.devices.nidaq import NiDaqLayout
from tjump.errors import DeviceError, InputError
from tjump.protocol import load_protocol
from tjump.protocol.checks import check_against_rig
from tjump.rig import connect, load_calibration, load_rig
from tjump.rig.check import FAST_CHECK_S, _fast_camera_rows
from tjump.rig.config import RigConfig

from conftest import series_protocol

WriteFile = Callable[[str, str], Path]
ROOT = Path(__file__).resolve().parent.parent
LINE = "    fast_camera_trigger_line: port0/line2\n"


def lab_rig_text(fast_camera: str, line: str = LINE) -> str:
    """The shipped lab rig file with its paths made absolute and a fast camera added."""
    text = (ROOT / "configs" / "rigs" / "lab.yaml").read_text()
    text = text.replace("../calibrations/", f"{ROOT / 'configs' / 'calibrations'}/")
    text = text.replace("../mm/", f"{ROOT / 'configs' / 'mm'}/")
    text = text.replace("    shutter_line: port0/line1\n", "    shutter_line: port0/line1\n" + line)
    return text + fast_camera


def fast_camera_section(camera_class: str = "CountingCamera", label: str = "Fast") -> str:
    return (
        "  fast_camera:\n"
        f"    config: fast-{camera_class}.cfg\n"
        f"    label: {label}\n"
        "    frame_rate_hz: 500\n"
    )


@pytest.fixture
def lab_rig(write_file: WriteFile, monkeypatch: pytest.MonkeyPatch) -> Callable[..., RigConfig]:
    """A lab rig file with a fast camera whose Micro-Manager configuration loads the given
    Python camera class; lab cores are `UniMMCore`s so that such a file loads."""
    monkeypatch.setattr(connect, "CMMCorePlus", lambda *_: UniMMCore(tempfile.gettempdir()))

    def make(camera_class: str = "CountingCamera", label: str = "Fast") -> RigConfig:
        write_file(
            f"fast-{camera_class}.cfg",
            f"#py pyDevice,Fast,mm_devices,{camera_class}\nProperty,Core,Initialize,1\n",
        )
        return load_rig(
            write_file("lab.yaml", lab_rig_text(fast_camera_section(camera_class, label)))
        )

    return make


def test_a_lab_fast_camera_needs_its_trigger_line(write_file: WriteFile) -> None:
    path = write_file("lab.yaml", lab_rig_text(fast_camera_section(), line=""))
    with pytest.raises(InputError, match=r"devices.daq.fast_camera_trigger_line"):
        load_rig(path)


def test_the_fast_camera_line_is_one_of_the_daqs_lines() -> None:
    layout = NiDaqLayout(current_A_per_V=0.01, fast_camera_trigger_line="port0/line2")
    assert layout.lines()[DaqLine.FAST_CAMERA_TRIGGER] == "port0/line2"
    assert DaqLine.FAST_CAMERA_TRIGGER not in NiDaqLayout(current_A_per_V=0.01).lines()


def test_bursts_are_accepted_on_a_lab_rig_with_a_fast_camera(
    write_file: WriteFile, lab_rig: Callable[..., RigConfig]
) -> None:
    burst = "burst: {trigger: any, pre_s: 1.0, post_s: 0.1}\n"
    protocol = load_protocol(write_file("p.yaml", series_protocol(cycles=2) + burst))
    rig = lab_rig()
    assert rig.devices.fast_camera is not None
    config = rig.devices.fast_camera.config
    assert config.is_absolute() and config.name == "fast-CountingCamera.cfg"  # beside the rig
    calibration = load_calibration(rig.calibration)
    check_against_rig(protocol, rig, calibration, "p.yaml")  # raises if anything does not fit
    without = load_rig(ROOT / "configs" / "rigs" / "lab.yaml")
    with pytest.raises(InputError, match="burst: rig 'lab' has no fast camera"):
        check_against_rig(protocol, without, calibration, "p.yaml")


def test_a_lab_fast_camera_streams_and_keeps_the_frames_around_a_trigger(
    lab_rig: Callable[..., RigConfig],
) -> None:
    camera = connect.lab_fast_camera(lab_rig())
    assert camera is not None
    try:
        assert camera.frame_rate_hz == 500.0
        camera.arm(pre_s=0.02, post_s=0.01)  # 10 frames before the trigger, 5 after
        while camera.frames_recorded < 20:
            pass
        camera.trigger()
        burst = camera.read_burst(Roi(4, 2, 8, 6), timeout_s=5.0)
    finally:
        camera.close()
    assert burst.frames.shape == (15, 6, 8)
    assert np.array_equal(np.diff(burst.frames[:, 0, 0].astype(int)), np.ones(14))
    assert burst.offset_s[10] == 0.0 and burst.offset_s[0] == pytest.approx(-0.02)
    assert burst.exposure_s == pytest.approx(0.002)  # one frame period at 500 frames/s


def test_a_fast_camera_the_configuration_does_not_hold_is_one_clear_fault(
    lab_rig: Callable[..., RigConfig],
) -> None:
    with pytest.raises(DeviceError, match=r"no camera 'HighSpeed' in .*fast-CountingCamera.cfg"):
        connect.lab_fast_camera(lab_rig(label="HighSpeed"))


def test_devices_check_measures_the_rate_the_fast_camera_delivers(
    lab_rig: Callable[..., RigConfig],
) -> None:
    (row,) = _fast_camera_rows(lab_rig())
    assert row.device == "fast camera" and row.limits == "500 frames/s"
    assert f"for {FAST_CHECK_S:g} s, stopped" in row.state
    (slow,) = _fast_camera_rows(lab_rig("SlowCamera"))  # at most 100 frames/s
    rate = float(slow.state.split()[1])
    assert 30 < rate <= 101
    assert "below the 500 frames/s set" in slow.problem
