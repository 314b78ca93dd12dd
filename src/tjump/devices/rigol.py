"""Rigol DG1000Z function generator (DG1022Z, DG1032Z, DG1062Z) over VISA: USB-TMC, LAN
VXI-11 or the LAN raw socket (port 5555).

Every change goes out with the `:SYST:ERR?` that checks it and is read back. Levels beyond
the instrument's limit (10 V into HighZ) or the rig's lower one are refused before anything
is sent. A heat pulse of fixed length is a one-cycle pulse burst on a trigger (external: a
DAQ line; manual: `:BURS:TRIG:IMM`), idling at 0 V, so the instrument ends the heat on time
by itself.

Readbacks are taken in the forms the DG1000Z Programming Guide (Rigol, chapter 2 "Command
System") documents for each query, cited beside each; numbers are compared as numbers at
the 7 significant digits the guide's return formats print. Any other answer is unknown,
never taken as the safe one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from tjump.devices.faults import DriverLimitError, ReadbackMismatch
from tjump.devices.visa import Identity, VisaInstrument, VisaLibrary, exclusive

HIGHZ_LIMIT_V = 10.0
HIGHZ_READS_OHM = 9.9e37  # `:OUTP:IMP?` for an INFinity load (guide p. 2-56)
MAX_PULSE_S = 1e5  # the pulse period (1.01 x width) stays within the 1 uHz minimum
DIGITS = 7  # "scientific notation with 7 effective digits" (guide's return formats, p. 2-56, 2-83)
LEVEL_RESOLUTION_V = 1e-6
_PERIOD_PER_WIDTH = 1.01  # the pulse's low tail; the next trigger may come after it

# documented answers, as {answer: meaning}
_ON_OFF = {"ON": "ON", "OFF": "OFF"}  # :OUTPut[<n>][:STATe]?, [:SOURce<n>]:BURSt[:STATe]?
_IDLE = {k: k for k in ("FPT", "TOP", "CENTER", "BOTTOM")}  # [:SOURce<n>]:BURSt:IDLE?
_FUNCTIONS = {  # [:SOURce<n>]:FUNCtion?: PULSE spelled out, PULS accepted as its short form
    "SIN": "SIN", "SQU": "SQU", "RAMP": "RAMP", "PULSE": "PULSE", "PULS": "PULSE",
    "NOISE": "NOISE", "USER": "USER", "HARM": "HARM", "DC": "DC",
}  # fmt: skip

PulseTrigger = Literal["external", "manual"]


class RigolDG1000Z:
    """One channel of a DG1000Z driving a high-impedance input."""

    maker = "Rigol Technologies"
    models = ("DG1022Z", "DG1032Z", "DG1062Z")

    def __init__(
        self,
        resource: str,
        visa_library: VisaLibrary = "",
        channel: int = 1,
        max_level_V: float = HIGHZ_LIMIT_V,
        pulse_trigger: PulseTrigger = "external",
        timeout_ms: int = 2000,
        name: str = "generator",
        mirror: Callable[[str], object] | None = None,
    ) -> None:
        """`mirror` is told every message the instrument took (a simulated sample's
        generator model, in a dry run with the lab's generator)."""
        self.name = f"{name} (Rigol DG1000Z at {resource})"
        self.max_level_V = min(max_level_V, HIGHZ_LIMIT_V)
        self.pulse_trigger = pulse_trigger
        self._src = f":SOUR{channel}"
        self._out = f":OUTP{channel}"
        self._io = VisaInstrument(self.name, resource, visa_library, timeout_ms, mirror=mirror)
        try:
            self.idn: Identity = self._io.identify(self.maker, self.models)
            self._take_over()
        except BaseException:
            self._io.close()
            raise

    def identity(self) -> str:
        return str(self.idn)

    @property
    def session(self) -> VisaInstrument:
        """The VISA session (round trips, TCP_NODELAY), for `devices check`."""
        return self._io

    @exclusive
    def _take_over(self) -> None:
        """Whatever a crashed run left (an armed burst, the output on, queued errors):
        output off first, then DC 0 V (which has no burst) into HighZ, all read back."""
        src, out = self._src, self._out
        self._io.change("*CLS", f"{out} OFF", f"{src}:APPL:DC DEF,DEF,0", f"{out}:IMP INF")
        self._io.expect(f"{out}?", _ON_OFF, "OFF", f"{out} OFF")
        self._io.expect(f"{src}:BURS?", _ON_OFF, "OFF", f"{src}:APPL:DC")
        load = self._io.number(f"{out}:IMP?")
        if load < HIGHZ_READS_OHM:
            raise ReadbackMismatch(
                self.name, f"{out}:IMP?", f"reads {load:g} ohm after {out}:IMP INF, not HighZ"
            )
        self._dc_level_checked(0.0, "APPL:DC")

    @exclusive
    def describe(self) -> str:
        """Function, level, output and load as the instrument reports them."""
        function = self._io.choice(f"{self._src}:FUNC?", _FUNCTIONS)
        offset = self._io.number(f"{self._src}:VOLT:OFFS?")
        output = self._io.choice(f"{self._out}?", _ON_OFF)
        load = self._io.number(f"{self._out}:IMP?")
        shown = "HighZ" if load >= HIGHZ_READS_OHM else f"{load:g} ohm"
        return f"{function} {offset:g} V, output {output}, load {shown}"

    # -- DC level and output -----------------------------------------------------

    @exclusive
    def set_dc(self, volts: float) -> None:
        command = f"{self._src}:APPL:DC DEF,DEF,{volts:.{DIGITS}g}"
        self._check_level(volts, command)
        self._io.change(command)  # DC has no burst mode: this also ends an armed pulse
        self._io.expect_number(
            f"{self._src}:VOLT:OFFS?", volts, command, DIGITS, LEVEL_RESOLUTION_V
        )

    @exclusive
    def dc_level(self) -> float:
        function = self._io.choice(f"{self._src}:FUNC?", _FUNCTIONS)
        if function != "DC":
            raise ReadbackMismatch(
                self.name, f"{self._src}:FUNC?", f"output is {function}, not a DC level"
            )
        return self._io.number(f"{self._src}:VOLT:OFFS?")

    @exclusive
    def set_output(self, on: bool) -> None:
        state = "ON" if on else "OFF"
        self._io.change(f"{self._out} {state}")
        self._io.expect(f"{self._out}?", _ON_OFF, state, f"{self._out} {state}")

    @exclusive
    def output_enabled(self) -> bool:
        """True or False only as the instrument documents it; anything else raises."""
        return self._io.choice(f"{self._out}?", _ON_OFF) == "ON"

    # -- instrument-bounded heat pulse -------------------------------------------

    @exclusive
    def arm_pulse(self, level_V: float, width_s: float) -> None:
        """Output off, program one pulse of `level_V` for `width_s` on the trigger,
        idling at 0 V, then output on (still at 0 V until triggered). Eight round trips:
        one for all settings, five readbacks, output on and its readback."""
        src = self._src
        setup = f"{src}:APPL:PULS"
        if not level_V > 0.0:
            raise DriverLimitError(self.name, setup, f"pulse level {level_V:g} V must be > 0")
        self._check_level(level_V, setup)
        if not 0.0 < width_s <= MAX_PULSE_S:
            raise DriverLimitError(
                self.name, setup, f"pulse width {width_s:g} s is outside 0..{MAX_PULSE_S:g} s"
            )
        source = "EXT" if self.pulse_trigger == "external" else "MAN"
        frequency = 1.0 / (width_s * _PERIOD_PER_WIDTH)
        level = float(f"{level_V:.{DIGITS}g}")  # amplitude, and half of it as offset: low 0 V
        pulse = f"{setup} {frequency:.9g},{level:.{DIGITS}g},{level / 2:.{DIGITS}g},0"
        self._io.change(
            f"{self._out} OFF",
            pulse,
            f"{src}:FUNC:PULS:WIDT {width_s:.9g}",
            f"{src}:BURS:MODE TRIG",
            f"{src}:BURS:NCYC 1",
            f"{src}:BURS:TRIG:SOUR {source}",
            f"{src}:BURS:TRIG:SLOP POS",
            f"{src}:BURS:IDLE BOTTOM",
            f"{src}:BURS ON",
        )
        io = self._io
        io.expect(f"{src}:BURS?", _ON_OFF, "ON", f"{src}:BURS ON")
        io.expect(f"{src}:BURS:IDLE?", _IDLE, "BOTTOM", f"{src}:BURS:IDLE BOTTOM")
        io.expect_number(f"{src}:FUNC:PULS:WIDT?", width_s, "pulse width", DIGITS)
        io.expect_number(f"{src}:VOLT?", level, pulse, DIGITS, LEVEL_RESOLUTION_V)
        io.expect_number(f"{src}:VOLT:OFFS?", level / 2, pulse, DIGITS, LEVEL_RESOLUTION_V)
        self.set_output(True)

    @exclusive
    def fire_pulse(self) -> None:
        self._io.change(f"{self._src}:BURS:TRIG:IMM")

    @exclusive
    def close(self) -> None:
        """Output off, then let go of the session (best effort: the heater facade has
        already verified the safe state)."""
        try:
            self._io.ask(f"{self._out} OFF;*OPC?")  # the answer: the instrument has done it
        except Exception:  # closing must not hide the error that led here
            pass
        finally:
            self._io.close()

    # -- helpers -------------------------------------------------------------------

    def _dc_level_checked(self, volts: float, after: str) -> None:
        function = self._io.choice(f"{self._src}:FUNC?", _FUNCTIONS)
        if function != "DC":
            raise ReadbackMismatch(self.name, f"{self._src}:FUNC?", f"is {function} after {after}")
        self._io.expect_number(f"{self._src}:VOLT:OFFS?", volts, after, DIGITS, LEVEL_RESOLUTION_V)

    def _check_level(self, volts: float, command: str) -> None:
        if not abs(volts) <= self.max_level_V:
            raise DriverLimitError(
                self.name,
                command,
                f"{volts:g} V is beyond the generator's limit of +-{self.max_level_V:g} V",
            )
