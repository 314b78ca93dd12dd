"""The NI USB-6251 driver's task layout, asserted call by call through nidaqmx's
interpreter seam (as nidaqmx's own unit tests do); and, where NI-DAQmx is installed with
the simulated device of hardware_sims/, a run on that device."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import numpy as np
import pytest
from nidaqmx._base_interpreter import BaseInterpreter
from nidaqmx.constants import (
    AcquisitionType,
    CountDirection,
    Edge,
    Level,
    TerminalConfiguration,
    VoltageUnits,
)
from nidaqmx.errors import DaqReadError

from tjump.devices.faults import DaqOverflow, InstrumentFault
from tjump.devices.interfaces import DaqLine
from tjump.devices.nidaq import NiDaq, NiDaqLayout
from tjump.sequencer.closed_loop import pulse_line

READ_ATTR_AVAIL = 0x1223  # DAQmx_Read_AvailSampPerChan
READ_ATTR_TOTAL = 0x192A  # DAQmx_Read_TotalSampPerChanAcquired
CO_PULSE_TERM = 0x18E1
CI_COUNT_EDGES_TERM = 0x18C7
CONTINUOUS = AcquisitionType.CONTINUOUS.value


@pytest.fixture
def interpreter() -> Iterator[Any]:
    """An autospec'd interpreter; every task's handle is its name."""
    fake = mock.create_autospec(BaseInterpreter, instance=True)
    fake.create_task.side_effect = lambda name, *rest: (name, True)
    fake.internal_get_last_created_chan.side_effect = ["drive_V", "monitor_V", "exposures",
                                                       "port0_line0", "port0_line1",
                                                       *["camera_trigger"] * 10]  # fmt: skip
    fake.get_read_attribute_uint32.return_value = 0
    fake.get_read_attribute_uint64.return_value = 0
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=fake):
        yield fake


def calls(interpreter: Any, *names: str) -> list[Any]:
    return [c for c in interpreter.method_calls if c[0] in names]


def test_tasks_are_laid_out_as_the_6251_needs(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(device="Dev1", current_A_per_V=0.02), 200.0)
    diff, volts = TerminalConfiguration.DIFF.value, VoltageUnits.VOLTS.value
    assert calls(interpreter, "create_task") == [
        mock.call.create_task("tjump-ai"),
        mock.call.create_task("tjump-exposures"),
        mock.call.create_task("tjump-port0-line0"),
        mock.call.create_task("tjump-port0-line1"),
    ]
    assert calls(interpreter, "create_ai_voltage_chan") == [
        mock.call.create_ai_voltage_chan(
            "tjump-ai", "Dev1/ai0", "drive_V", diff, -10.0, 10.0, volts, ""
        ),
        mock.call.create_ai_voltage_chan(
            "tjump-ai", "Dev1/ai1", "monitor_V", diff, -10.0, 10.0, volts, ""
        ),
    ]
    assert calls(interpreter, "create_ci_count_edges_chan") == [
        mock.call.create_ci_count_edges_chan(
            "tjump-exposures",
            "Dev1/ctr1",
            "exposures",
            Edge.RISING.value,
            0,
            CountDirection.COUNT_UP.value,
        )
    ]
    assert (
        mock.call.set_chan_attribute_string(
            "tjump-exposures", "exposures", CI_COUNT_EDGES_TERM, "/Dev1/PFI3"
        )
        in interpreter.method_calls
    )
    rising = Edge.RISING.value
    assert calls(interpreter, "cfg_samp_clk_timing") == [
        mock.call.cfg_samp_clk_timing("tjump-ai", 200.0, "", rising, CONTINUOUS, 2000),
        mock.call.cfg_samp_clk_timing(
            "tjump-exposures", 200.0, "/Dev1/ai/SampleClock", rising, CONTINUOUS, 2000
        ),
    ]
    assert [c.args[:3] for c in calls(interpreter, "create_do_chan")] == [
        ("tjump-port0-line0", "Dev1/port0/line0", "port0_line0"),
        ("tjump-port0-line1", "Dev1/port0/line1", "port0_line1"),
    ]
    written = calls(interpreter, "write_digital_lines")
    assert [(c.args[0], c.args[-1].tolist()) for c in written] == [
        ("tjump-port0-line0", [False]),
        ("tjump-port0-line1", [False]),
    ]  # every line starts low
    assert calls(interpreter, "start_task") == []  # nothing runs before `start`
    daq.close()


def test_start_order_and_the_camera_pulse_train_on_the_sample_clock(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.01), 200.0)
    interpreter.reset_mock()
    daq.start(10.0)
    daq.stop()
    assert calls(interpreter, "create_co_pulse_chan_ticks") == [
        mock.call.create_co_pulse_chan_ticks(
            "tjump-camera-trigger",
            "Dev1/ctr0",
            "/Dev1/ai/SampleClock",
            "camera_trigger",
            Level.LOW.value,
            2,
            10,
            10,
        )
    ]  # 20 samples per frame at 200 Hz / 10 fps, half high
    assert (
        mock.call.set_chan_attribute_string(
            "tjump-camera-trigger", "camera_trigger", CO_PULSE_TERM, "/Dev1/PFI12"
        )
        in interpreter.method_calls
    )
    assert calls(interpreter, "cfg_implicit_timing") == [
        mock.call.cfg_implicit_timing("tjump-camera-trigger", CONTINUOUS, 1000)
    ]
    assert [c.args[0] for c in calls(interpreter, "start_task")] == [
        "tjump-exposures",  # counts from the first sample clock edge
        "tjump-camera-trigger",  # waits for the sample clock too
        "tjump-ai",  # last: its start begins everything on the same edge
    ]
    daq.close()


def test_a_frame_rate_that_does_not_divide_the_clock_is_refused(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.01), 200.0)
    with pytest.raises(InstrumentFault, match="7 frames/s is not a whole division"):
        daq.start(7.0)
    daq.close()


def test_samples_are_scaled_and_indexed(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.02), 200.0)
    available = iter([3, 0, 0, 0, 0, 0, 0, 0, 0, 0])

    def read_ai(task: str, n: int, timeout: float, fill: int, data: Any) -> tuple[Any, int]:
        data[:] = np.array([[1.0, 1.1, 1.2], [2.0, 2.5, 3.0]])
        return data, n

    def read_counts(task: str, n: int, timeout: float, fill: int, data: Any) -> tuple[Any, int]:
        data[:] = [0, 1, 1]
        return data, n

    interpreter.get_read_attribute_uint32.side_effect = lambda task, attr: next(available, 0)
    interpreter.read_analog_f64.side_effect = read_ai
    interpreter.read_counter_u32_ex.side_effect = read_counts
    daq.start(10.0)
    block = daq.read()
    deadline = time.monotonic() + 2.0
    while len(block.data) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
        block = daq.read()
    daq.stop()
    assert block.first_index == 0
    np.testing.assert_allclose(block.data, [[1.0, 0.04], [1.1, 0.05], [1.2, 0.06]])
    assert daq.exposures_counted() == 1
    daq.close()


def test_a_device_buffer_overflow_is_named(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.01), 200.0)
    interpreter.get_read_attribute_uint32.return_value = 5
    interpreter.read_analog_f64.side_effect = DaqReadError(
        "The application is not able to keep up with the hardware acquisition.", -200279, 0
    )
    daq.start(10.0)
    deadline = time.monotonic() + 2.0
    with pytest.raises(DaqOverflow, match=r"input buffer overflow .* \[DAQmx Read\]"):
        while time.monotonic() < deadline:
            daq.read()
            time.sleep(0.01)
    daq.close()


def test_digital_lines_by_name(interpreter: Any) -> None:
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.01), 200.0)
    interpreter.reset_mock()
    daq.set_digital("generator_trigger", True)
    daq.set_digital("shutter", True)
    written = calls(interpreter, "write_digital_lines")
    assert [(c.args[0], c.args[-1].tolist()) for c in written] == [
        ("tjump-port0-line0", [True]),
        ("tjump-port0-line1", [True]),
    ]
    with pytest.raises(InstrumentFault, match="no such digital line"):
        daq.set_digital("laser", True)
    daq.close()
    written = calls(interpreter, "write_digital_lines")[2:]
    assert [c.args[-1].tolist() for c in written] == [[False], [False]]  # closed: all low


def test_without_ni_daqmx_the_message_says_so() -> None:
    from tjump.devices.nidaq import nidaqmx

    try:
        nidaqmx.system.System.local().driver_version  # noqa: B018
    except Exception:
        with pytest.raises(InstrumentFault, match="NI-DAQmx is not installed"):
            NiDaq(NiDaqLayout(current_A_per_V=0.01), 200.0)
    else:
        pytest.skip("NI-DAQmx is installed here")


def ni_max_device() -> str | None:
    """The simulated USB-6251 imported from hardware_sims/, if NI-DAQmx has it."""
    from tjump.devices.nidaq import nidaqmx

    try:
        names = nidaqmx.system.System.local().devices.device_names
    except Exception:
        return None
    return "tjumpSim" if "tjumpSim" in names else None


@pytest.mark.skipif(
    ni_max_device() is None, reason="needs NI-DAQmx with hardware_sims/ni-max-usb6251.ini imported"
)
def test_on_the_ni_max_simulated_device() -> None:
    daq = NiDaq(NiDaqLayout(device="tjumpSim", current_A_per_V=0.01), 200.0)
    try:
        daq.start(10.0)
        time.sleep(0.5)
        block = daq.read()
        assert len(block.data) > 50
        assert daq.triggers_sent() > 3
        daq.set_digital("generator_trigger", True)
        daq.set_digital("generator_trigger", False)
    finally:
        daq.close()


def test_a_burst_pulses_the_fast_camera_line(interpreter: Any) -> None:
    """The closed loop fires the fast camera with a rising and a falling edge on its own
    line, created low beside the others."""
    daq = NiDaq(NiDaqLayout(current_A_per_V=0.01, fast_camera_trigger_line="port0/line2"), 200.0)
    created = [c.args[:2] for c in calls(interpreter, "create_do_chan")]
    assert ("tjump-port0-line2", "Dev1/port0/line2") in created
    interpreter.reset_mock()
    pulse_line(daq, DaqLine.FAST_CAMERA_TRIGGER)
    written = calls(interpreter, "write_digital_lines")
    assert [(c.args[0], c.args[-1].tolist()) for c in written] == [
        ("tjump-port0-line2", [True]),
        ("tjump-port0-line2", [False]),
    ]
    daq.close()
