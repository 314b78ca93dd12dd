"""A SCPI instrument over VISA (pyvisa): open, identify, write, query, drain the error
queue, and turn every VISA failure into a named fault with the device and the command."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import pyvisa
from pyvisa import constants, errors, rname
from pyvisa.highlevel import VisaLibraryBase
from pyvisa.resources import MessageBasedResource

from tjump.devices.faults import (
    InstrumentError,
    NoAnswer,
    ReadbackMismatch,
    ResourceNotFound,
    VisaIOFault,
    VisaLibraryMissing,
    VisaTimeout,
    WrongInstrument,
)

VisaLibrary = str | VisaLibraryBase
P = ParamSpec("P")
R = TypeVar("R")

_NOT_FOUND = (
    constants.StatusCode.error_resource_not_found,
    constants.StatusCode.error_invalid_resource_name,
    constants.StatusCode.error_resource_busy,
)
_MAX_ERRORS = 32  # an error queue longer than this is not draining
_TOLERANCE_V = 1e-6  # readbacks of levels may differ by formatting only


class HasSession(Protocol):
    _io: VisaInstrument


S = TypeVar("S", bound=HasSession)


def exclusive(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """One driver operation at a time per instrument (a watchdog thread may make the
    heater safe while the acquisition thread talks to it): no interleaved SCPI."""

    @functools.wraps(method)
    def locked(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._io.lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(frozen=True)
class Identity:
    """`*IDN?` split into its four fields."""

    maker: str
    model: str
    serial: str
    firmware: str

    def __str__(self) -> str:
        return f"{self.maker} {self.model} (serial {self.serial}, firmware {self.firmware})"


class VisaInstrument:
    """One open VISA session to a SCPI instrument."""

    def __init__(
        self,
        device: str,
        resource: str,
        library: VisaLibrary = "",
        timeout_ms: int = 2000,
        termination: str = "\n",
    ) -> None:
        self.device = device
        self.resource = resource
        self.lock = threading.RLock()
        try:
            rname.parse_resource_name(resource)
        except rname.InvalidResourceName as e:
            raise ResourceNotFound(
                device,
                f"open {resource}",
                "not a VISA resource name",
                "write it as USB0::0x1AB1::0x0642::<serial>::INSTR or TCPIP0::<address>::INSTR",
            ) from e
        try:
            self._rm = pyvisa.ResourceManager(library)
        except (OSError, ValueError, errors.Error) as e:
            raise VisaLibraryMissing(
                device,
                f"open VISA library {library or '(default)'}",
                f"no VISA library: {str(e).strip()}",
                "install NI-VISA or pyvisa-py, or name a pyvisa-sim file as visa_library",
            ) from e
        try:
            res = self._rm.open_resource(
                resource,
                read_termination=termination,
                write_termination=termination,
                timeout=timeout_ms,
            )
        except errors.VisaIOError as e:
            self._rm.close()
            if e.error_code in _NOT_FOUND:
                raise ResourceNotFound(
                    device,
                    f"open {resource}",
                    f"no instrument at this resource ({e.abbreviation})",
                    "check the cable and power, then the resource name in the rig file "
                    "(list what VISA sees with `python -m pyvisa info`)",
                ) from e
            raise VisaIOFault(
                device, f"open {resource}", f"VISA error {e.abbreviation}", "check the connection"
            ) from e
        if not isinstance(res, MessageBasedResource):
            res.close()
            self._rm.close()
            raise ResourceNotFound(
                device,
                f"open {resource}",
                "is not a message-based (SCPI) resource",
                "name the INSTR resource",
            )
        self._res: MessageBasedResource = res

    def write(self, command: str) -> None:
        try:
            self._res.write(command)
        except errors.VisaIOError as e:
            raise self._fault(e, command) from e

    def query(self, command: str) -> str:
        try:
            return str(self._res.query(command)).strip()
        except errors.VisaIOError as e:
            raise self._fault(e, command) from e

    def identify(self, maker: str, model_prefixes: tuple[str, ...]) -> Identity:
        """Ask `*IDN?` and check maker (any case) and model; touch nothing else."""
        try:
            answer = str(self._res.query("*IDN?")).strip()
        except errors.VisaIOError as e:
            if e.error_code == constants.StatusCode.error_timeout:
                raise NoAnswer(
                    self.device,
                    "*IDN?",
                    f"{self.resource} opened but does not answer",
                    "check that the instrument is on and not in a menu or remote lock; "
                    "power-cycle it",
                ) from e
            raise self._fault(e, "*IDN?") from e
        fields = [f.strip() for f in answer.split(",")]
        fields += [""] * (4 - len(fields))
        identity = Identity(*fields[:4])
        model_ok = any(identity.model.upper().startswith(p.upper()) for p in model_prefixes)
        if identity.maker.casefold() != maker.casefold() or not model_ok:
            raise WrongInstrument(
                self.device,
                "*IDN?",
                f"{self.resource} is '{answer}', expected {maker} {'/'.join(model_prefixes)}*",
                "the rig file names another instrument's resource: correct it",
            )
        return identity

    def check_errors(self, after: str) -> None:
        """Drain `:SYST:ERR?`; raise `InstrumentError` naming every non-zero entry."""
        found: list[str] = []
        for _ in range(_MAX_ERRORS):
            answer = self.query(":SYST:ERR?")
            code = answer.split(",", 1)[0].strip()
            try:
                if int(code) == 0:
                    break
            except ValueError:
                found.append(answer)
                break
            found.append(answer)
        else:
            found.append("(error queue does not empty)")
        if found:
            raise InstrumentError(
                self.device,
                after,
                "instrument reported " + "; ".join(found),
                "the value or command was refused: check the rig file's settings",
            )

    def change(self, command: str) -> None:
        """Send a setting and check the error queue after it."""
        self.write(command)
        self.check_errors(command)

    def set_checked(self, command: str, readback: str, expected: str) -> None:
        """Send a setting, then read it back (any case) and insist it took."""
        self.change(command)
        got = self.query(readback)
        if got.upper() != expected:
            raise ReadbackMismatch(
                self.device, readback, f"reads {got!r} after {command!r}, expected {expected!r}"
            )

    def number(self, query: str) -> float:
        """The first number of the answer to `query`."""
        answer = self.query(query)
        try:
            return float(answer.split(",")[0])
        except ValueError as e:
            raise ReadbackMismatch(self.device, query, f"answered {answer!r}, not a number") from e

    def expect_number(
        self, query: str, value: float, after: str = "", relative: float = 1e-5
    ) -> None:
        """Read a number back and insist it is `value` (within 1 uV + `relative`)."""
        got = self.number(query)
        if abs(got - value) > _TOLERANCE_V + relative * abs(value):
            where = f" after {after!r}" if after else ""
            raise ReadbackMismatch(self.device, query, f"reads {got:g}{where}, expected {value:g}")

    def close(self) -> None:
        try:
            self._res.close()
        except errors.Error:
            pass
        finally:
            self._rm.close()

    def _fault(self, error: errors.VisaIOError, command: str) -> Exception:
        if error.error_code == constants.StatusCode.error_timeout:
            return VisaTimeout(
                self.device,
                command,
                f"no answer within {self._res.timeout:g} ms",
                "the instrument stopped responding: check the cable and power",
            )
        return VisaIOFault(
            self.device, command, f"VISA error {error.abbreviation}", "check the connection"
        )
