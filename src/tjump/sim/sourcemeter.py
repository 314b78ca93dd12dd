"""A Keithley 2400 source-meter as an instrument model, for a simulated rig that drives
the film directly: the SCPI `ScpiSourceMeter` speaks (short and long forms, any case),
limits and error queue, with the output passed on to the world and the measured current
taken from the simulated film."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tjump.sim.scpi import (
    UNDEFINED_HEADER,
    Command,
    ErrorQueue,
    ScpiError,
    Vocabulary,
    choice,
    number,
    sci,
)

MAX_VOLTAGE_V = 21.0
MAX_COMPLIANCE_A = 1.05

_VOCABULARY = Vocabulary(
    [
        "*IDN", "*RST", "*CLS", "*OPC", "SYSTem", "ERRor", "NEXT", "SOURce", "FUNCtion", "VOLTage",
        "MODE", "LEVel", "IMMediate", "AMPLitude", "SENSe", "CURRent", "PROTection", "FORMat",
        "ELEMents", "OUTPut", "STATe", "MEASure",
    ]
)  # fmt: skip


class SimKeithley2400:
    """`on_output(volts, on)` receives every change of the source; `measure(volts)` gives
    the current the film draws at that voltage now."""

    def __init__(
        self,
        measure: Callable[[float], float],
        idn: str = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4000001,C32   Oct  4 2010 14:20:11/A02",
    ) -> None:
        self.idn = idn
        self.errors = ErrorQueue()
        self._measure = measure
        self._on_output: Callable[[float, bool], None] | None = None
        self.function = "VOLT"
        self.mode = "FIX"
        self.level_V = 0.0
        self.compliance_A = 105e-6
        self.output = False
        self.lock = threading.RLock()

    def connect(self, on_output: Callable[[float, bool], None]) -> None:
        self._on_output = on_output
        on_output(self.level_V, self.output)

    def handle(self, message: str) -> str | None:
        with self.lock:
            return self._handle(message)

    def _handle(self, message: str) -> str | None:
        answers: list[str] = []
        before = (self.level_V, self.output)
        for part in message.split(";"):
            try:
                answer = self._dispatch(_VOCABULARY.parse(part))
            except ScpiError as e:
                self.errors.push((e.code, e.text))
                continue
            if answer is not None:
                answers.append(answer)
        if self._on_output is not None and (self.level_V, self.output) != before:
            self._on_output(self.level_V, self.output)
        return ";".join(answers) if answers else None

    def _dispatch(self, cmd: Command) -> str | None:
        nodes, args, query = cmd.nodes, cmd.args, cmd.query
        if nodes == ("*IDN",) and query:
            return self.idn
        if nodes == ("*OPC",):
            return "1" if query else None
        if nodes == ("*CLS",):
            self.errors.clear()
            return None
        if nodes == ("*RST",):
            self.level_V, self.output, self.compliance_A = 0.0, False, 105e-6
            return None
        if nodes in (("SYST", "ERR"), ("SYST", "ERR", "NEXT")) and query:
            return self.errors.pop()
        if nodes == ("SOUR", "FUNC"):
            if query:
                return self.function
            self.function = choice(_single(args), ["VOLTage", "CURRent"])
            return None
        if nodes == ("SOUR", "VOLT", "MODE"):
            if query:
                return {"FIX": "FIXED"}.get(self.mode, self.mode)
            self.mode = choice(_single(args), ["FIXed", "SWEep", "LIST"])
            return None
        if nodes in (("SOUR", "VOLT"), ("SOUR", "VOLT", "LEV"), ("SOUR", "VOLT", "LEV", "IMM")):
            if query:
                return sci(self.level_V)
            self.level_V = number(_single(args), -MAX_VOLTAGE_V, MAX_VOLTAGE_V)
            return None
        if nodes in (("SENS", "CURR", "PROT"), ("SENS", "CURR", "PROT", "LEV")):
            if query:
                return sci(self.compliance_A)
            self.compliance_A = number(_single(args), 1e-9, MAX_COMPLIANCE_A)
            return None
        if nodes in (("SENS", "FUNC"), ("FORM", "ELEM")) and not query:
            choice(_single(args).strip('"'), ["CURRent", "VOLTage", "RESistance"])
            return None
        if nodes in (("OUTP",), ("OUTP", "STAT")):
            if query:
                return "1" if self.output else "0"
            self.output = choice(_single(args), ["ON", "OFF", "1", "0"]) in ("ON", "1")
            return None
        if nodes == ("MEAS", "CURR") and query:
            current = self._measure(self.level_V) if self.output else 0.0
            return sci(max(-self.compliance_A, min(self.compliance_A, current)))
        raise ScpiError(UNDEFINED_HEADER)


def _single(args: tuple[str, ...]) -> str:
    if len(args) != 1:
        raise ScpiError(UNDEFINED_HEADER)
    return args[0]
