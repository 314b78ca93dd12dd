"""A Rigol DG1000Z (DG1062Z) as an instrument model: the SCPI tjump's driver speaks, in
short and long forms and any case, with the instrument's limits, error queue, coupled
DC/offset state, output load and triggered bursts. Answers take the forms the DG1000Z
Programming Guide (Rigol, chapter 2 "Command System") documents for each query.

What the output does is passed on as the voltage an open (high-impedance) input would see,
so a driver that forgets `:OUTP:IMP INF` doubles the drive, as on the bench. A triggered
burst ends by itself on the virtual clock, even if nobody talks to the instrument again.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from tjump.clock import VirtualClock
from tjump.sim.scpi import (
    DATA_OUT_OF_RANGE,
    MISSING_PARAMETER,
    SETTINGS_CONFLICT,
    TRIGGER_IGNORED,
    UNDEFINED_HEADER,
    Command,
    ErrorQueue,
    ScpiError,
    Vocabulary,
    choice,
    number,
    sci,
)

HIGHZ_OHM = 9.9e37  # what `:OUTP:IMP?` reads for an INFinity load
HIGHZ_LIMIT_V = 10.0  # |offset| + amplitude / 2, into a high-impedance load
SOURCE_OHM = 50.0
MAX_FREQUENCY_HZ = 60e6
MIN_FREQUENCY_HZ = 1e-6

_VOCABULARY = Vocabulary(
    [
        "*IDN", "*RST", "*CLS", "*OPC", "SYSTem", "ERRor", "NEXT", "SOURce", "APPLy", "DC",
        "PULSe", "SINusoid", "SQUare", "FUNCtion", "VOLTage", "OFFSet", "AMPLitude",
        "FREQuency", "WIDTh", "BURSt", "STATe", "MODE", "NCYCles", "TRIGger", "IMMediate",
        "SLOPe", "IDLE", "OUTPut", "IMPedance", "LOAD",
    ]
)  # fmt: skip

_RESOLUTION_DIGITS = 6  # output levels are quantised to 1 uV

OutputListener = Callable[[float, bool], None]


@dataclass
class _Channel:
    """One output channel, at its power-on state."""

    function: str = "SIN"
    frequency_hz: float = 1e3
    amplitude_Vpp: float = 5.0
    offset_V: float = 0.0
    width_s: float = 500e-6
    output: bool = False
    load_ohm: float | None = 50.0  # None: high impedance
    burst: bool = False
    burst_mode: str = "TRIG"
    cycles: int = 1
    trigger_source: str = "INT"
    slope: str = "POS"
    idle: str = "FPT"
    fired_at: float | None = None

    @property
    def high_V(self) -> float:
        return self.offset_V + self.amplitude_Vpp / 2

    @property
    def low_V(self) -> float:
        return self.offset_V - self.amplitude_Vpp / 2

    @property
    def limit_V(self) -> float:
        """Largest |level| the setting may reach: 10 V into HighZ, less into a load."""
        if self.load_ohm is None:
            return HIGHZ_LIMIT_V
        return HIGHZ_LIMIT_V * self.load_ohm / (self.load_ohm + SOURCE_OHM)

    @property
    def open_circuit_factor(self) -> float:
        """Voltage on a high-impedance input per volt of setting."""
        return 1.0 if self.load_ohm is None else (self.load_ohm + SOURCE_OHM) / self.load_ohm

    def burst_end(self) -> float | None:
        if self.fired_at is None:
            return None
        return (
            self.fired_at + self.cycles / self.frequency_hz - (1 / self.frequency_hz - self.width_s)
        )

    def level_at(self, t: float) -> float:
        """The setting's voltage at time `t` (RMS for a repeating waveform)."""
        if self.function == "DC":
            return self.offset_V
        if self.function == "PULS" and self.burst and self.burst_mode == "TRIG":
            end = self.burst_end()
            if self.fired_at is not None and end is not None and self.fired_at <= t < end:
                return self.high_V
            idle = {"TOP": self.high_V, "CENTER": self.offset_V, "BOTTOM": self.low_V}
            return idle.get(self.idle, self.high_V)  # a pulse's first point is its high level
        if self.function == "PULS":
            duty = self.width_s * self.frequency_hz
            return math.sqrt(duty * self.high_V**2 + (1 - duty) * self.low_V**2)
        ripple = self.amplitude_Vpp / 2 / (math.sqrt(2) if self.function == "SIN" else 1.0)
        return math.sqrt(self.offset_V**2 + ripple**2)


class SimRigolDG1000Z:
    """The instrument behind the simulated raw-SCPI socket (`tjump.sim.server`).

    `clock` gives the instrument its time (bursts end on it); `on_output(volts, on)`
    receives channel `drive_channel`'s open-circuit output whenever it changes, and
    `advance(t)` lets the world integrate up to a burst's end before the level drops.
    Build the model before the world so its clock listener runs first.
    """

    def __init__(
        self,
        clock: VirtualClock,
        idn: str = "Rigol Technologies,DG1062Z,DG1ZA000000001,00.01.14",
        drive_channel: int = 1,
    ) -> None:
        self.clock = clock
        self.idn = idn
        self.drive_channel = drive_channel
        self.channels = {1: _Channel(), 2: _Channel()}
        self.errors = ErrorQueue()
        self._on_output: OutputListener | None = None
        self._advance: Callable[[float], None] | None = None
        self._last: tuple[float, bool] | None = None
        self.lock = threading.RLock()  # the transport's thread and the clock's both enter
        clock.on_advance(self._on_clock)

    def connect(self, on_output: OutputListener, advance: Callable[[float], None]) -> None:
        """Wire the drive channel's output to the world."""
        self._on_output, self._advance = on_output, advance
        self._emit()

    # -- the transport's entry point ------------------------------------------------

    def handle(self, message: str) -> str | None:
        with self.lock:
            return self._handle(message)

    def _handle(self, message: str) -> str | None:
        answers: list[str] = []
        for part in message.split(";"):
            try:
                answer = self._dispatch(_VOCABULARY.parse(part))
            except ScpiError as e:
                self.errors.push((e.code, e.text))
                continue
            if answer is not None:
                answers.append(answer)
        self._emit()
        return ";".join(answers) if answers else None

    def external_trigger(self, channel: int = 1) -> bool:
        """A rising edge on the rear-panel trigger input; True if a burst started."""
        with self.lock:
            ch = self.channels[channel]
            if ch.trigger_source != "EXT":
                return False
            started = self._fire(ch)
            self._emit()
            return started

    def output_V(self) -> tuple[float, bool]:
        """Open-circuit voltage of the drive channel now, and whether its output is on."""
        ch = self.channels[self.drive_channel]
        volts = round(ch.level_at(self.clock.now()) * ch.open_circuit_factor, _RESOLUTION_DIGITS)
        return volts + 0.0, ch.output  # + 0.0: no negative zero

    # -- time -----------------------------------------------------------------------

    def _on_clock(self, t: float) -> None:
        with self.lock:
            self._end_burst(t)

    def _end_burst(self, t: float) -> None:
        ch = self.channels[self.drive_channel]
        end = ch.burst_end()
        if end is None or ch.fired_at is None or not ch.fired_at < end <= t:
            return
        if self._advance is not None:
            self._advance(end)  # the world runs hot up to the burst's end ...
        ch.fired_at = None
        self._emit()  # ... then sees the idle level

    def _fire(self, ch: _Channel) -> bool:
        if not (ch.burst and ch.burst_mode == "TRIG" and ch.function == "PULS"):
            return False
        now = self.clock.now()
        if ch.fired_at is not None and now < ch.fired_at + ch.cycles / ch.frequency_hz:
            return False  # still running: the trigger is ignored
        ch.fired_at = now
        return True

    def _emit(self) -> None:
        if self._on_output is None:
            return
        state = self.output_V()
        if state != self._last:
            self._last = state
            self._on_output(*state)

    # -- commands -------------------------------------------------------------------

    def _dispatch(self, cmd: Command) -> str | None:
        nodes, args = cmd.nodes, cmd.args
        if nodes == ("*IDN",) and cmd.query:
            return self.idn
        if nodes == ("*RST",):
            self.channels = {1: _Channel(), 2: _Channel()}
            return None
        if nodes == ("*CLS",):
            self.errors.clear()
            return None
        if nodes == ("*OPC",):
            return "1" if cmd.query else None
        if nodes in (("SYST", "ERR"), ("SYST", "ERR", "NEXT")) and cmd.query:
            return self.errors.pop()
        if nodes[0] == "OUTP":
            return self._output(self.channels[_channel(cmd.suffixes[0])], cmd)
        channel = 1
        if nodes[0] == "SOUR":
            channel = _channel(cmd.suffixes[0])
            nodes = nodes[1:]
        ch = self.channels[channel]
        if not nodes:
            raise ScpiError(UNDEFINED_HEADER)
        if nodes[0] == "APPL":
            return self._apply(ch, nodes[1:], args, cmd.query)
        if nodes[0] == "BURS":
            return self._burst(ch, nodes[1:], args, cmd.query)
        return self._setting(ch, nodes, args, cmd.query)

    def _output(self, ch: _Channel, cmd: Command) -> str | None:
        nodes, args = cmd.nodes[1:], cmd.args
        if nodes in ((), ("STAT",)):
            if cmd.query:
                return "ON" if ch.output else "OFF"
            ch.output = _on_off(args)
            return None
        if nodes in (("IMP",), ("LOAD",)):
            if cmd.query:  # guide p. 2-56: HighZ reads 9.900000E+37
                return sci(HIGHZ_OHM) if ch.load_ohm is None else sci(ch.load_ohm)
            arg = _one(args)
            if arg.upper() in ("INF", "INFINITY"):
                ch.load_ohm = None
            else:
                ch.load_ohm = number(arg, 1.0, 10e3, {"MIN": 1.0, "MAX": 10e3})
            return None
        raise ScpiError(UNDEFINED_HEADER)

    def _apply(
        self, ch: _Channel, nodes: tuple[str, ...], args: tuple[str, ...], query: bool
    ) -> str | None:
        if not nodes and query:
            if ch.function == "DC":
                return f'"DC,DEF,DEF,{sci(ch.offset_V)}"'
            return (
                f'"{ch.function},{sci(ch.frequency_hz)},{sci(ch.amplitude_Vpp)},{sci(ch.offset_V)}"'
            )
        if nodes == ("DC",) and not query:
            offset = number(_arg(args, 2, "0"), -ch.limit_V, ch.limit_V, {"DEF": 0.0})
            ch.function, ch.offset_V, ch.burst, ch.fired_at = "DC", offset, False, None
            return None
        if nodes == ("PULS",) and not query:
            frequency = number(
                _arg(args, 0, "DEF"), MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ, {"DEF": 1e3}
            )
            amplitude = number(_arg(args, 1, "DEF"), 1e-3, 2 * ch.limit_V, {"DEF": 5.0})
            offset = number(_arg(args, 2, "DEF"), -ch.limit_V, ch.limit_V, {"DEF": 0.0})
            if abs(offset) + amplitude / 2 > ch.limit_V + 1e-9:
                raise ScpiError(DATA_OUT_OF_RANGE)
            if ch.width_s >= 1 / frequency:
                ch.width_s = 0.5 / frequency
            ch.function, ch.frequency_hz = "PULS", frequency
            ch.amplitude_Vpp, ch.offset_V = amplitude, offset
            return None
        raise ScpiError(UNDEFINED_HEADER)

    def _setting(
        self, ch: _Channel, nodes: tuple[str, ...], args: tuple[str, ...], query: bool
    ) -> str | None:
        if nodes == ("FUNC",):
            if query:  # the guide's return format spells the pulse out: PULSE
                return "PULSE" if ch.function == "PULS" else ch.function
            ch.function = choice(_one(args), ["SINusoid", "SQUare", "PULSe", "DC"])
            if ch.function == "DC":
                ch.burst = False
            return None
        if nodes == ("FUNC", "PULS", "WIDT"):
            if query:
                return sci(ch.width_s)
            ch.width_s = number(_one(args), 16e-9, 1 / ch.frequency_hz * (1 - 1e-6))
            return None
        if nodes == ("FREQ",):
            if query:
                return sci(ch.frequency_hz)
            frequency = number(_one(args), MIN_FREQUENCY_HZ, MAX_FREQUENCY_HZ)
            if ch.function == "PULS" and ch.width_s >= 1 / frequency:
                raise ScpiError(SETTINGS_CONFLICT)
            ch.frequency_hz = frequency
            return None
        if nodes in (("VOLT", "OFFS"), ("VOLT",), ("VOLT", "AMPL")):
            offset = nodes == ("VOLT", "OFFS")
            if query:
                return sci(ch.offset_V if offset else ch.amplitude_Vpp)
            if offset:
                value = number(_one(args), -ch.limit_V, ch.limit_V)
                amplitude = 0.0 if ch.function == "DC" else ch.amplitude_Vpp
                if abs(value) + amplitude / 2 > ch.limit_V + 1e-9:
                    raise ScpiError(DATA_OUT_OF_RANGE)
                ch.offset_V = value
            else:
                value = number(_one(args), 1e-3, 2 * ch.limit_V)
                if abs(ch.offset_V) + value / 2 > ch.limit_V + 1e-9:
                    raise ScpiError(DATA_OUT_OF_RANGE)
                ch.amplitude_Vpp = value
            return None
        raise ScpiError(UNDEFINED_HEADER)

    def _burst(
        self, ch: _Channel, nodes: tuple[str, ...], args: tuple[str, ...], query: bool
    ) -> str | None:
        if nodes in ((), ("STAT",)):
            if query:
                return "ON" if ch.burst else "OFF"
            on = _on_off(args)
            if on and ch.function == "DC":
                raise ScpiError(SETTINGS_CONFLICT)
            ch.burst, ch.fired_at = on, None
            return None
        if nodes in (("TRIG",), ("TRIG", "IMM")) and not query:
            if not ch.burst or ch.trigger_source != "MAN" or not self._fire(ch):
                raise ScpiError(TRIGGER_IGNORED)
            return None
        fields: dict[tuple[str, ...], tuple[str, list[str]]] = {
            ("MODE",): ("burst_mode", ["TRIGgered", "GATed", "INFinity"]),
            ("TRIG", "SOUR"): ("trigger_source", ["INTernal", "EXTernal", "MANual"]),
            ("TRIG", "SLOP"): ("slope", ["POSitive", "NEGative"]),
            ("IDLE",): ("idle", ["FPT", "TOP", "CENTER", "BOTTOM"]),
        }
        if nodes in fields:
            name, options = fields[nodes]
            if query:
                return str(getattr(ch, name))
            setattr(ch, name, choice(_one(args), options))
            return None
        if nodes == ("NCYC",):
            if query:
                return str(ch.cycles)
            ch.cycles = int(number(_one(args), 1, 500_000, {"MIN": 1, "MAX": 500_000}))
            return None
        raise ScpiError(UNDEFINED_HEADER)


def _channel(suffix: int | None) -> int:
    if suffix not in (None, 1, 2):
        raise ScpiError(UNDEFINED_HEADER)
    return suffix or 1


def _one(args: tuple[str, ...]) -> str:
    if len(args) != 1:
        raise ScpiError(MISSING_PARAMETER)
    return args[0]


def _arg(args: tuple[str, ...], index: int, default: str) -> str:
    return args[index] if len(args) > index else default


def _on_off(args: tuple[str, ...]) -> bool:
    return choice(_one(args), ["ON", "OFF", "1", "0"]) in ("ON", "1")
