"""A SCPI source-meter driving the gold film directly (Keithley 2400 dialect): voltage
source, current compliance, output, measured current.

For labs without the CS120 amplifier. Same checks as the generator: identity first, the
error queue drained after every change, every setting read back, limits refused before
sending. It cannot bound a heat step by itself (no triggered burst). Readbacks take the
forms the Keithley 2400 manual's SCPI reference gives: booleans as 1/0, numbers as
<NR3> with 7 significant digits; any other answer is unknown, never safe.
"""

from __future__ import annotations

from collections.abc import Callable

from tjump.devices.faults import DriverLimitError
from tjump.devices.visa import Identity, VisaInstrument, VisaLibrary, exclusive

DIGITS = 7
_BOOLEAN = {"1": "1", "0": "0"}  # :OUTPut[:STATe]?
_FUNCTIONS = {"VOLT": "VOLT", "CURR": "CURR", "MEM": "MEM"}  # :SOURce:FUNCtion[:MODE]?
_MODES = {"FIX": "FIX", "FIXED": "FIX", "SWE": "SWE", "LIST": "LIST"}  # :SOURce:VOLTage:MODE?


class ScpiSourceMeter:
    """A voltage source with current compliance, as a `HeaterSupply`."""

    maker = "KEITHLEY INSTRUMENTS INC."
    models = ("MODEL 2400", "MODEL 2401", "MODEL 2410", "MODEL 2420", "MODEL 2440")

    def __init__(
        self,
        resource: str,
        visa_library: VisaLibrary = "",
        max_voltage_V: float = 1.0,
        compliance_A: float = 0.1,
        timeout_ms: int = 2000,
        name: str = "supply",
        mirror: Callable[[str], object] | None = None,
    ) -> None:
        self.name = f"{name} (source meter at {resource})"
        self.max_voltage_V = max_voltage_V
        self.compliance_A = compliance_A
        self._io = VisaInstrument(self.name, resource, visa_library, timeout_ms, mirror=mirror)
        try:
            self.idn: Identity = self._io.identify(self.maker, self.models)
            self._take_over(compliance_A)
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
    def _take_over(self, compliance_A: float) -> None:
        """Output off first, then a fixed voltage source at 0 V with the compliance set."""
        io = self._io
        io.change(
            "*CLS", ":OUTP 0", ":SOUR:FUNC VOLT", ":SOUR:VOLT:MODE FIXED",
            ':SENS:FUNC "CURR"', ":FORM:ELEM CURR", f":SENS:CURR:PROT {compliance_A:.7g}",
            ":SOUR:VOLT:LEV 0",
        )  # fmt: skip
        io.expect(":OUTP?", _BOOLEAN, "0", ":OUTP 0")
        io.expect(":SOUR:FUNC?", _FUNCTIONS, "VOLT", ":SOUR:FUNC VOLT")
        io.expect(":SOUR:VOLT:MODE?", _MODES, "FIX", ":SOUR:VOLT:MODE FIXED")
        io.expect_number(":SENS:CURR:PROT?", compliance_A, ":SENS:CURR:PROT", DIGITS)
        io.expect_number(":SOUR:VOLT:LEV?", 0.0, ":SOUR:VOLT:LEV 0", DIGITS)

    @exclusive
    def describe(self) -> str:
        return (
            f"{self.voltage():g} V, compliance {self._io.number(':SENS:CURR:PROT?'):g} A, "
            f"output {'ON' if self.output_enabled() else 'OFF'}"
        )

    @exclusive
    def set_voltage(self, volts: float) -> None:
        command = f":SOUR:VOLT:LEV {volts:.7g}"
        if not 0.0 <= volts <= self.max_voltage_V:
            raise DriverLimitError(
                self.name, command, f"{volts:g} V is outside 0..{self.max_voltage_V:g} V"
            )
        self._io.change(command)
        self._io.expect_number(":SOUR:VOLT:LEV?", volts, command, DIGITS)

    @exclusive
    def voltage(self) -> float:
        return self._io.number(":SOUR:VOLT:LEV?")

    @exclusive
    def set_output(self, on: bool) -> None:
        self._io.change(f":OUTP {int(on)}")
        self._io.expect(":OUTP?", _BOOLEAN, str(int(on)), f":OUTP {int(on)}")

    @exclusive
    def output_enabled(self) -> bool:
        """True or False only as the instrument documents it; anything else raises."""
        return self._io.choice(":OUTP?", _BOOLEAN) == "1"

    @exclusive
    def current(self) -> float:
        """The film's current as measured by the instrument (0 with the output off)."""
        return self._io.number(":MEAS:CURR?")

    @exclusive
    def close(self) -> None:
        try:
            self._io.ask(":OUTP 0;*OPC?")  # the answer: the instrument has done it
        except Exception:  # closing must not hide the error that led here
            pass
        finally:
            self._io.close()
