"""NI USB-6251 (M Series) through nidaqmx, laid out as docs/instruments.md describes.

- AI task: drive voltage and current monitor (differential) on the sample clock.
- ctr1: counts the camera's exposure-active edges, sampled on `ai/SampleClock`, so each
  frame's exposure is placed on the sample index it happened at.
- ctr0: the camera trigger pulse train, counted in ticks of `ai/SampleClock`, so every
  trigger falls on a sample edge (the frame period is a whole number of samples).
- digital lines (on demand): the generator's trigger input and the light shutter.

Start order: ctr1 then ctr0 (both wait for the sample clock), then AI, whose start begins
everything on the same edge. A reader thread empties the device buffer into host memory;
a device or host buffer overflow is raised as `DaqOverflow` on the next `read`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque

import nidaqmx
import nidaqmx.system
import numpy as np
from nidaqmx.constants import (
    AcquisitionType,
    CountDirection,
    Edge,
    Level,
    TerminalConfiguration,
)
from nidaqmx.errors import DaqError, DaqNotFoundError
from nidaqmx.stream_readers import AnalogMultiChannelReader, CounterReader
from nidaqmx.stream_writers import DigitalSingleChannelWriter
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from tjump.devices.faults import DaqOverflow, InstrumentFault
from tjump.devices.interfaces import DAQ_CHANNELS, DaqBlock, DaqLine

_OVERFLOW_CODES = (-200279, -200010)  # device buffer overwritten / FIFO overflow
_POLL_S = 0.02
_MIN_TICKS = 2  # M Series counters need at least two ticks high and low


class NiDaqLayout(BaseModel):
    """Which terminal does what on the device (docs/instruments.md): AI on one clock, ctr0
    the camera's pulse train, ctr1 counting exposure-active edges on the AI clock, digital
    lines for triggers. The rig file's `devices.daq` section is this layout."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device: str = Field("Dev1", description="the name NI MAX gives the device")
    drive_channel: str = Field("ai0", description="the supply's voltage monitor")
    current_channel: str = Field("ai1", description="the supply's current monitor")
    ai_range_V: PositiveFloat = 10.0
    current_A_per_V: PositiveFloat = Field(description="current monitor scale of the supply")
    camera_counter: str = "ctr0"
    camera_trigger_terminal: str = Field("PFI12", description="-> the camera's trigger input")
    exposure_counter: str = "ctr1"
    exposure_terminal: str = Field("PFI3", description="<- the camera's exposure-active output")
    generator_trigger_line: str = Field("port0/line0", description="-> the generator's Ext Trig")
    shutter_line: str = Field("port0/line1", description="-> the light stimulus's shutter")
    fast_camera_trigger_line: str | None = Field(
        None, description="-> the fast camera's trigger input (bursts); none without one"
    )
    buffer_s: PositiveFloat = Field(10.0, description="host buffer, seconds of samples")

    def lines(self) -> dict[DaqLine, str]:
        """Each digital output line's terminal."""
        lines = {
            DaqLine.GENERATOR_TRIGGER: self.generator_trigger_line,
            DaqLine.SHUTTER: self.shutter_line,
        }
        if self.fast_camera_trigger_line is not None:
            lines[DaqLine.FAST_CAMERA_TRIGGER] = self.fast_camera_trigger_line
        return lines


class NiDaq:
    """The master timebase of the lab rig."""

    channels: tuple[str, ...] = DAQ_CHANNELS

    def __init__(self, layout: NiDaqLayout, sample_rate_hz: float, name: str = "daq") -> None:
        self.layout = layout
        self.name = f"{name} (NI {layout.device})"
        self._rate = sample_rate_hz
        self._buffer = max(2, int(layout.buffer_s * sample_rate_hz))
        self._clock = f"/{layout.device}/ai/SampleClock"
        self._lock = threading.Lock()
        self._blocks: deque[NDArray[np.float64]] = deque()
        self._queued = 0
        self._read_index = 0
        self._exposures = 0
        self._fault: Exception | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._co: nidaqmx.Task | None = None
        self._triggers_before = 0  # pulses of pulse trains already stopped
        self._train_start = 0
        self._train_period = 0
        self._tasks: list[nidaqmx.Task] = []
        try:
            self._ai = self._ai_task()
            self._ci = self._exposure_task()
            self._ai_reader = AnalogMultiChannelReader(self._ai.in_stream)
            self._ci_reader = CounterReader(self._ci.in_stream)
            for reader in (self._ai_reader, self._ci_reader):
                reader.verify_array_shape = False  # the arrays are made to fit here
            self._lines: dict[str, DigitalSingleChannelWriter] = {
                line: self._line_task(terminal) for line, terminal in layout.lines().items()
            }
        except DaqNotFoundError as e:
            self.close()
            raise InstrumentFault(
                self.name,
                "create task",
                "NI-DAQmx is not installed on this computer",
                "install NI-DAQmx (Windows or a supported Linux), or use a simulated rig",
            ) from e
        except DaqError as e:
            self.close()
            raise self._fault_of(e, "configure tasks") from e

    @property
    def sample_rate_hz(self) -> float:
        return self._rate

    def describe(self) -> str:
        device = nidaqmx.system.Device(self.layout.device)
        return (
            f"{device.product_type} serial {device.serial_num:X}: {self._rate:g} samples/s, "
            f"camera trigger {self.layout.camera_trigger_terminal}, "
            f"exposures {self.layout.exposure_terminal}"
        )

    # -- tasks --------------------------------------------------------------------

    def _task(self, name: str) -> nidaqmx.Task:
        task = nidaqmx.Task(f"tjump-{name}")
        self._tasks.append(task)
        return task

    def _ai_task(self) -> nidaqmx.Task:
        lay = self.layout
        task = self._task("ai")
        for channel, label in ((lay.drive_channel, "drive_V"), (lay.current_channel, "monitor_V")):
            task.ai_channels.add_ai_voltage_chan(
                f"{lay.device}/{channel}",
                label,
                terminal_config=TerminalConfiguration.DIFF,
                min_val=-lay.ai_range_V,
                max_val=lay.ai_range_V,
            )
        task.timing.cfg_samp_clk_timing(
            self._rate, sample_mode=AcquisitionType.CONTINUOUS, samps_per_chan=self._buffer
        )
        return task

    def _exposure_task(self) -> nidaqmx.Task:
        lay = self.layout
        task = self._task("exposures")
        channel = task.ci_channels.add_ci_count_edges_chan(
            f"{lay.device}/{lay.exposure_counter}",
            "exposures",
            edge=Edge.RISING,
            initial_count=0,
            count_direction=CountDirection.COUNT_UP,
        )
        channel.ci_count_edges_term = f"/{lay.device}/{lay.exposure_terminal}"
        task.timing.cfg_samp_clk_timing(
            self._rate,
            source=self._clock,
            sample_mode=AcquisitionType.CONTINUOUS,
            samps_per_chan=self._buffer,
        )
        return task

    def _trigger_task(self, frame_rate_hz: float) -> nidaqmx.Task:
        lay = self.layout
        period = round(self._rate / frame_rate_hz)
        if period < 2 * _MIN_TICKS or abs(period * frame_rate_hz - self._rate) > 1e-6 * self._rate:
            raise InstrumentFault(
                self.name,
                "configure camera trigger",
                f"{frame_rate_hz:g} frames/s is not a whole division (>= {2 * _MIN_TICKS} "
                f"samples) of the {self._rate:g} Hz sample clock",
                "choose a frame rate that divides the DAQ's sample rate",
            )
        high = period // 2
        task = self._task("camera-trigger")
        channel = task.co_channels.add_co_pulse_chan_ticks(
            f"{lay.device}/{lay.camera_counter}",
            self._clock,
            "camera_trigger",
            idle_state=Level.LOW,
            initial_delay=_MIN_TICKS,
            low_ticks=period - high,
            high_ticks=high,
        )
        channel.co_pulse_term = f"/{lay.device}/{lay.camera_trigger_terminal}"
        task.timing.cfg_implicit_timing(sample_mode=AcquisitionType.CONTINUOUS)
        self._train_period = period
        return task

    def _line_task(self, line: str) -> DigitalSingleChannelWriter:
        task = self._task(line.replace("/", "-"))
        task.do_channels.add_do_chan(f"{self.layout.device}/{line}", line.replace("/", "_"))
        writer = DigitalSingleChannelWriter(task.out_stream, auto_start=True)
        writer.write_one_sample_one_line(False)
        return writer

    # -- the Daq role -------------------------------------------------------------

    def start(self, frame_rate_hz: float) -> None:
        """Exposure counter, then the trigger train, then AI: all begin on AI's start."""
        try:
            self._co = self._trigger_task(frame_rate_hz)
            self._triggers_before = 0
            self._train_start = 0
            self._ci.start()
            self._co.start()
            self._ai.start()
        except DaqError as e:
            raise self._fault_of(e, "start tasks") from e
        self._stop.clear()
        self._thread = threading.Thread(target=self._pump_loop, name="daq-reader", daemon=True)
        self._thread.start()

    def read(self) -> DaqBlock:
        with self._lock:
            if self._fault is not None:
                raise self._fault
            data = np.concatenate(self._blocks) if self._blocks else np.empty((0, 2))
            self._blocks.clear()
            self._queued = 0
            first = self._read_index
            self._read_index += len(data)
        return DaqBlock(first, data)

    def stop_triggers(self) -> None:
        if self._co is not None:
            self._triggers_before = self.triggers_sent()
            self._close_task(self._co)
            self._co = None

    def start_triggers(self, frame_rate_hz: float) -> int:
        """A new pulse train from the next sample edges; returns the sample index of its
        first pulse (exact to the sample: ctr1 records where each exposure fell)."""
        self.stop_triggers()
        try:
            self._co = self._trigger_task(frame_rate_hz)
            acquired = int(self._ai.in_stream.total_samp_per_chan_acquired)
            self._co.start()
        except DaqError as e:
            raise self._fault_of(e, "start camera trigger") from e
        self._train_start = acquired + _MIN_TICKS
        return self._train_start

    def triggers_sent(self) -> int:
        """Pulses of the stopped trains plus those of the running one so far."""
        if self._co is None:
            return self._triggers_before
        acquired = int(self._ai.in_stream.total_samp_per_chan_acquired)
        elapsed = acquired - self._train_start
        running = 0 if elapsed <= 0 else (elapsed - 1) // self._train_period + 1
        return self._triggers_before + running

    def exposures_counted(self) -> int:
        """Exposure-active edges the camera reported back, as last read."""
        return self._exposures

    def set_digital(self, line: str, on: bool) -> None:
        try:
            writer = self._lines[line]
        except KeyError as e:
            raise InstrumentFault(self.name, f"set {line}", "no such digital line",
                                  f"lines: {', '.join(self._lines)}") from e  # fmt: skip
        try:
            writer.write_one_sample_one_line(on)
        except DaqError as e:
            raise self._fault_of(e, f"set {line}") from e

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        self.stop_triggers()
        for task in (self._ai, self._ci):
            with contextlib.suppress(DaqError):
                task.stop()

    def close(self) -> None:
        """Stop, drive every line low, release every task."""
        if hasattr(self, "_ai"):
            self.stop()
        for writer in getattr(self, "_lines", {}).values():
            with contextlib.suppress(DaqError):
                writer.write_one_sample_one_line(False)
        for task in list(self._tasks):
            self._close_task(task)

    # -- reading ------------------------------------------------------------------

    def _pump_loop(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self._pump()
            except Exception as e:  # handed to the reader of `read`
                with self._lock:
                    self._fault = e
                return

    def _pump(self) -> None:
        """Move every sample the device holds to host memory."""
        try:
            n = int(self._ai.in_stream.avail_samp_per_chan)
            if n == 0:
                return
            ai = np.empty((2, n))
            self._ai_reader.read_many_sample(ai, n, timeout=1.0)
            counts = np.empty(n, dtype=np.uint32)
            self._ci_reader.read_many_sample_uint32(counts, n, timeout=1.0)
        except DaqError as e:
            raise self._fault_of(e, "DAQmx Read") from e
        block = np.column_stack([ai[0], ai[1] * self.layout.current_A_per_V])
        with self._lock:
            if self._queued + n > self._buffer:
                raise DaqOverflow(
                    self.name,
                    "DAQmx Read",
                    f"samples were not collected for {self.layout.buffer_s:g} s",
                    "the acquisition loop is stalled; lower the frame rate or disk load",
                )
            self._blocks.append(block)
            self._queued += n
            self._exposures = int(counts[-1])

    def _fault_of(self, error: DaqError, command: str) -> InstrumentFault:
        if error.error_code in _OVERFLOW_CODES:
            return DaqOverflow(
                self.name,
                command,
                f"input buffer overflow (DAQmx {error.error_code}): samples were lost",
                "the reader fell behind: lower the sample rate or the computer's load",
            )
        return InstrumentFault(
            self.name,
            command,
            f"DAQmx error {error.error_code}: {str(error).splitlines()[0]}",
            "check the device name in the rig file and NI MAX",
        )

    def _close_task(self, task: nidaqmx.Task) -> None:
        with contextlib.suppress(DaqError):
            task.close()
        if task in self._tasks:
            self._tasks.remove(task)
