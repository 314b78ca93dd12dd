"""Rigol DG1000Z function generator (DG1022Z, DG1062Z) over VISA (USB-TMC or LAN).

Every change is followed by draining `:SYST:ERR?` and reading the value back. Levels
beyond the instrument's limit (10 V into HighZ) or the rig's lower one are refused before
anything is sent. A heat pulse of fixed length is a one-cycle pulse burst on a trigger
(external: a DAQ line; manual: `:BURS:TRIG:IMM`), idling at 0 V, so the instrument ends
the heat on time by itself.
"""

from __future__ import annotations

from typing import Literal

from tjump.devices.faults import DriverLimitError, ReadbackMismatch
from tjump.devices.visa import Identity, VisaInstrument, VisaLibrary, exclusive

HIGHZ_LIMIT_V = 10.0
MAX_PULSE_S = 1e5  # the pulse period (1.01 x width) stays within the 1 uHz minimum
_PERIOD_PER_WIDTH = 1.01  # the pulse's low tail; the next trigger may come after it

PulseTrigger = Literal["external", "manual"]


class RigolDG1000Z:
    """One channel of a DG1000Z driving a high-impedance input."""

    maker = "Rigol Technologies"
    models = ("DG1",)

    def __init__(
        self,
        resource: str,
        visa_library: VisaLibrary = "",
        channel: int = 1,
        max_level_V: float = HIGHZ_LIMIT_V,
        pulse_trigger: PulseTrigger = "external",
        timeout_ms: int = 2000,
        name: str = "generator",
    ) -> None:
        self.name = f"{name} (Rigol DG1000Z at {resource})"
        self.max_level_V = min(max_level_V, HIGHZ_LIMIT_V)
        self.pulse_trigger = pulse_trigger
        self._src = f":SOUR{channel}"
        self._out = f":OUTP{channel}"
        self._pulse_armed = False
        self._io = VisaInstrument(self.name, resource, visa_library, timeout_ms)
        try:
            self.idn: Identity = self._io.identify(self.maker, self.models)
            self._io.write("*CLS")
            self.set_output(False)
            self._io.set_checked(f"{self._out}:IMP INF", f"{self._out}:IMP?", "INFINITY")
            self.set_dc(0.0)
        except BaseException:
            self._io.close()
            raise

    def identity(self) -> str:
        return str(self.idn)

    @exclusive
    def describe(self) -> str:
        """Function, level, output and load as the instrument reports them."""
        function = self._io.query(f"{self._src}:FUNC?")
        offset = self._io.number(f"{self._src}:VOLT:OFFS?")
        output = self._io.query(f"{self._out}?")
        load = self._io.query(f"{self._out}:IMP?")
        return f"{function} {offset:g} V, output {output}, load {load}"

    # -- DC level and output -----------------------------------------------------

    @exclusive
    def set_dc(self, volts: float) -> None:
        command = f"{self._src}:APPL:DC DEF,DEF,{volts:.6g}"
        self._check_level(volts, command)
        if self._pulse_armed:
            self._io.set_checked(f"{self._src}:BURS OFF", f"{self._src}:BURS?", "OFF")
            self._pulse_armed = False
        self._io.write(command)
        self._io.check_errors(command)
        self._io.expect_number(f"{self._src}:VOLT:OFFS?", volts, command)

    @exclusive
    def dc_level(self) -> float:
        function = self._io.query(f"{self._src}:FUNC?")
        if function.upper() != "DC":
            raise ReadbackMismatch(
                self.name, f"{self._src}:FUNC?", f"output is {function}, not a DC level"
            )
        return self._io.number(f"{self._src}:VOLT:OFFS?")

    @exclusive
    def set_output(self, on: bool) -> None:
        state = "ON" if on else "OFF"
        self._io.set_checked(f"{self._out} {state}", f"{self._out}?", state)

    @exclusive
    def output_enabled(self) -> bool:
        return self._io.query(f"{self._out}?").upper() == "ON"

    # -- instrument-bounded heat pulse -------------------------------------------

    @exclusive
    def arm_pulse(self, level_V: float, width_s: float) -> None:
        """Output off, program one pulse of `level_V` for `width_s` on the trigger,
        idling at 0 V, then output on (still at 0 V until triggered)."""
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
        self.set_output(False)
        self._pulse_armed = True
        level = float(f"{level_V:.6g}")  # sent as amplitude and half of it as offset: low 0 V
        self._io.change(f"{setup} {frequency:.9g},{level:.6g},{level / 2:.7g},0")
        self._io.change(f"{src}:FUNC:PULS:WIDT {width_s:.9g}")
        self._io.change(f"{src}:BURS:MODE TRIG")
        self._io.change(f"{src}:BURS:NCYC 1")
        self._io.change(f"{src}:BURS:TRIG:SOUR {source}")
        self._io.change(f"{src}:BURS:TRIG:SLOP POS")
        self._io.set_checked(f"{src}:BURS:IDLE BOTTOM", f"{src}:BURS:IDLE?", "BOTTOM")
        self._io.set_checked(f"{src}:BURS ON", f"{src}:BURS?", "ON")
        self._io.expect_number(f"{src}:FUNC:PULS:WIDT?", width_s, "pulse width", relative=1e-6)
        self.set_output(True)

    @exclusive
    def fire_pulse(self) -> None:
        command = f"{self._src}:BURS:TRIG:IMM"
        self._io.write(command)
        self._io.check_errors(command)

    @exclusive
    def close(self) -> None:
        """Output off, then let go of the session (best effort: the heater facade has
        already verified the safe state)."""
        try:
            self._io.write(f"{self._out} OFF")
        except Exception:  # closing must not hide the error that led here
            pass
        finally:
            self._io.close()

    # -- helpers -------------------------------------------------------------------

    def _check_level(self, volts: float, command: str) -> None:
        if not abs(volts) <= self.max_level_V:
            raise DriverLimitError(
                self.name,
                command,
                f"{volts:g} V is beyond the generator's limit of +-{self.max_level_V:g} V",
            )
