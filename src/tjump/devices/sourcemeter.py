"""A SCPI source-meter driving the gold film directly (Keithley 2400 dialect): voltage
source, current compliance, output, measured current.

For labs without the CS120 amplifier. Same checks as the generator: identity first, the
error queue drained after every change, every setting read back, limits refused before
sending. It cannot bound a heat step by itself (no triggered burst).
"""

from __future__ import annotations

from tjump.devices.faults import DriverLimitError
from tjump.devices.visa import Identity, VisaInstrument, VisaLibrary, exclusive


class ScpiSourceMeter:
    """A voltage source with current compliance, as a `HeaterSupply`."""

    maker = "KEITHLEY INSTRUMENTS INC."
    models = ("MODEL 24",)

    def __init__(
        self,
        resource: str,
        visa_library: VisaLibrary = "",
        max_voltage_V: float = 1.0,
        compliance_A: float = 0.1,
        timeout_ms: int = 2000,
        name: str = "supply",
    ) -> None:
        self.name = f"{name} (source meter at {resource})"
        self.max_voltage_V = max_voltage_V
        self.compliance_A = compliance_A
        self._io = VisaInstrument(self.name, resource, visa_library, timeout_ms)
        try:
            self.idn: Identity = self._io.identify(self.maker, self.models)
            self._io.write("*CLS")
            self.set_output(False)
            self._io.set_checked(":SOUR:FUNC VOLT", ":SOUR:FUNC?", "VOLT")
            self._io.set_checked(":SOUR:VOLT:MODE FIXED", ":SOUR:VOLT:MODE?", "FIXED")
            self._io.change(':SENS:FUNC "CURR"')
            self._io.change(":FORM:ELEM CURR")
            self._io.change(f":SENS:CURR:PROT {compliance_A:.6g}")
            self._io.expect_number(":SENS:CURR:PROT?", compliance_A)
            self.set_voltage(0.0)
        except BaseException:
            self._io.close()
            raise

    def identity(self) -> str:
        return str(self.idn)

    @exclusive
    def describe(self) -> str:
        return (
            f"{self.voltage():g} V, compliance {self._io.number(':SENS:CURR:PROT?'):g} A, "
            f"output {'ON' if self.output_enabled() else 'OFF'}"
        )

    @exclusive
    def set_voltage(self, volts: float) -> None:
        command = f":SOUR:VOLT:LEV {volts:.6g}"
        if not 0.0 <= volts <= self.max_voltage_V:
            raise DriverLimitError(
                self.name, command, f"{volts:g} V is outside 0..{self.max_voltage_V:g} V"
            )
        self._io.change(command)
        self._io.expect_number(":SOUR:VOLT:LEV?", volts)

    @exclusive
    def voltage(self) -> float:
        return self._io.number(":SOUR:VOLT:LEV?")

    @exclusive
    def set_output(self, on: bool) -> None:
        self._io.set_checked(f":OUTP {int(on)}", ":OUTP?", str(int(on)))

    @exclusive
    def output_enabled(self) -> bool:
        return self._io.query(":OUTP?") == "1"

    @exclusive
    def current(self) -> float:
        """The film's current as measured by the instrument (0 with the output off)."""
        return self._io.number(":MEAS:CURR?")

    @exclusive
    def close(self) -> None:
        try:
            self._io.write(":OUTP 0")
        except Exception:  # closing must not hide the error that led here
            pass
        finally:
            self._io.close()
