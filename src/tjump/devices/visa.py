"""A SCPI instrument over VISA (pyvisa): open, identify, exchange messages, drain the error
queue, and turn every failure of the transport into a named fault with the device and the
command.

A session falls out of step after a timeout, a lost connection or an answer the instrument
does not document: a late answer may still be on its way and would be read as the answer
to the next query. The next exchange therefore resynchronises first: a socket session is
reopened, any other gets a device clear, then `*CLS;*OPC?` must answer exactly `1`.

Settings go out `;`-joined with the `:SYST:ERR?` that checks them, one message per round
trip; on a socket Nagle's algorithm is switched off (TCP_NODELAY), so no message waits
for the acknowledgement of the one before.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

import pyvisa
from pyvisa import constants, errors, rname
from pyvisa.highlevel import VisaLibraryBase
from pyvisa.resources import MessageBasedResource

from tjump.devices.faults import (
    ConnectionLost,
    InstrumentError,
    NoAnswer,
    ReadbackMismatch,
    ResourceNotFound,
    UnknownAnswer,
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
_TRANSPORT = (errors.VisaIOError, OSError, UnicodeDecodeError)
# pyvisa shares one resource-manager session per library: closing (or garbage-collecting)
# any ResourceManager closes every resource of that library. One per library, kept open.
_MANAGERS: dict[VisaLibrary, pyvisa.ResourceManager] = {}
_MANAGERS_LOCK = threading.Lock()


def resource_manager(library: VisaLibrary) -> pyvisa.ResourceManager:
    """The process's resource manager for `library`, opened once."""
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(library)
        if manager is None:
            manager = _MANAGERS[library] = pyvisa.ResourceManager(library)
        return manager


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


def same_number(got: float, expected: float, digits: int, floor: float = 0.0) -> bool:
    """Whether `got` (as the instrument prints it, `digits` significant digits) is
    `expected` rounded the same way; `floor` is the instrument's absolute resolution."""
    scale = max(abs(got), abs(expected))
    return abs(got - expected) <= scale * 10.0 ** (1 - digits) / 2 * 1.0001 + floor


class VisaInstrument:
    """One open VISA session to a SCPI instrument."""

    def __init__(
        self,
        device: str,
        resource: str,
        library: VisaLibrary = "",
        timeout_ms: int = 2000,
        termination: str = "\n",
        mirror: Callable[[str], object] | None = None,
    ) -> None:
        self.device = device
        self.mirror = mirror  # also told every message the instrument took (a dry run)
        self.resource = resource
        self.lock = threading.RLock()
        self.round_trips = 0  # exchanges with the instrument, for `devices check`
        self.in_step = True
        self._timeout_ms = timeout_ms
        self._termination = termination
        try:
            parsed = rname.parse_resource_name(resource)
        except rname.InvalidResourceName as e:
            raise ResourceNotFound(
                device,
                f"open {resource}",
                "not a VISA resource name",
                "write it as USB0::0x1AB1::0x0642::<serial>::INSTR, "
                "TCPIP0::<address>::INSTR or TCPIP0::<address>::5555::SOCKET",
            ) from e
        self._socket = parsed.resource_class == "SOCKET"
        try:
            self._rm = resource_manager(library)
        except (OSError, ValueError, errors.Error) as e:
            raise VisaLibraryMissing(
                device,
                f"open VISA library {library or '(default)'}",
                f"no VISA library: {str(e).strip()}",
                'install NI-VISA, or name "@py" (pyvisa-py) as visa_library',
            ) from e
        self._res = self._open()
        self.no_delay = self._switch_off_nagle()

    # -- exchanges ----------------------------------------------------------------------

    def ask(self, message: str) -> str:
        """Send `message` (commands `;`-joined, ending in one query); its answer."""
        self._resynchronise(message)
        try:
            answer = str(self._res.query(message))
        except _TRANSPORT as e:
            self.in_step = False
            raise self._fault(e, message) from e
        self.round_trips += 1
        if self.mirror is not None:
            self.mirror(message)
        return answer.strip()

    def send(self, message: str) -> None:
        """Send `message`, which asks nothing back."""
        self._resynchronise(message)
        try:
            self._res.write(message)
        except _TRANSPORT as e:
            self.in_step = False
            raise self._fault(e, message) from e
        if self.mirror is not None:
            self.mirror(message)

    def unknown(self, query: str, answer: str, documented: Collection[str]) -> UnknownAnswer:
        """The fault for an answer that is none of the `documented` forms; the session is
        out of step until resynchronised (the answer may belong to another query)."""
        self.in_step = False
        forms = ", ".join(documented)
        return UnknownAnswer(
            self.device,
            query,
            f"answered {answer!r}, none of the documented {forms}: state unknown",
            "check the cable; if it repeats, power-cycle the instrument",
        )

    def choice(self, query: str, documented: dict[str, str]) -> str:
        """Ask `query`; its answer mapped through `documented` (any case)."""
        answer = self.ask(query)
        value = documented.get(answer.upper())
        if value is None:
            raise self.unknown(query, answer, documented)
        return value

    def number(self, query: str) -> float:
        """Ask `query`; the number it answers (SCPI <NR1>/<NR2>/<NR3>)."""
        answer = self.ask(query)
        try:
            return float(answer)
        except ValueError:
            raise self.unknown(query, answer, ["a number"]) from None

    def expect_number(
        self, query: str, value: float, after: str, digits: int, floor: float = 0.0
    ) -> float:
        """Read a number back and insist it is `value` at the instrument's precision."""
        got = self.number(query)
        if not same_number(got, value, digits, floor):
            raise ReadbackMismatch(
                self.device, query, f"reads {got:.{digits}g} after {after!r}, expected {value:g}"
            )
        return got

    def expect(self, query: str, documented: dict[str, str], value: str, after: str) -> None:
        """Read a keyword back (any documented form) and insist it is `value`."""
        got = self.choice(query, documented)
        if got != value:
            raise ReadbackMismatch(
                self.device, query, f"reads {got} after {after!r}, expected {value}"
            )

    def change(self, *commands: str) -> None:
        """Send settings in one message with the `:SYST:ERR?` that checks them, then
        drain the rest of the error queue; raise `InstrumentError` naming every entry."""
        joined = ";".join(commands)
        found: list[str] = []
        answer = self.ask(f"{joined};:SYST:ERR?")
        for _ in range(_MAX_ERRORS):
            code, _, _ = answer.partition(",")
            try:
                if int(code) == 0:
                    break
            except ValueError:
                raise self.unknown(":SYST:ERR?", answer, ['<code>,"<message>"']) from None
            found.append(answer)
            answer = self.ask(":SYST:ERR?")
        else:
            found.append("(error queue does not empty)")
        if found:
            raise InstrumentError(
                self.device,
                joined,
                "instrument reported " + "; ".join(found),
                "the value or command was refused: check the rig file's settings",
            )

    def round_trip_s(self, repeats: int = 5) -> float:
        """The median time of `*OPC?` (one exchange that changes nothing)."""
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            if self.ask("*OPC?") != "1":
                raise self.unknown("*OPC?", "(not 1)", ["1"])
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    def identify(self, maker: str, models: tuple[str, ...]) -> Identity:
        """Ask `*IDN?` and check maker (any case) and model; touch nothing else."""
        try:
            answer = self.ask("*IDN?")
        except VisaTimeout as e:
            raise NoAnswer(
                self.device,
                "*IDN?",
                f"{self.resource} opened but does not answer",
                "check that the instrument is on and not in a menu or remote lock; power-cycle it",
            ) from e
        fields = [f.strip() for f in answer.split(",")]
        fields += [""] * (4 - len(fields))
        identity = Identity(*fields[:4])
        model_ok = identity.model.upper() in (m.upper() for m in models)
        if identity.maker.casefold() != maker.casefold() or not model_ok:
            raise WrongInstrument(
                self.device,
                "*IDN?",
                f"{self.resource} is '{answer}', expected {maker} {' or '.join(models)}",
                "the rig file names another instrument's resource: correct it",
            )
        return identity

    def close(self) -> None:
        with contextlib.suppress(*_TRANSPORT):
            self._res.close()

    # -- the session ----------------------------------------------------------------------

    def _open(self) -> MessageBasedResource:
        try:
            res = self._rm.open_resource(
                self.resource,
                read_termination=self._termination,
                write_termination=self._termination,
                timeout=self._timeout_ms,
                open_timeout=self._timeout_ms,
            )
        except errors.VisaIOError as e:
            if e.error_code in _NOT_FOUND:
                raise ResourceNotFound(
                    self.device,
                    f"open {self.resource}",
                    f"no instrument at this resource ({e.abbreviation})",
                    "check the cable and power, then the resource name in the rig file "
                    "(list what VISA sees with `python -m pyvisa info`)",
                ) from e
            raise self._fault(e, f"open {self.resource}") from e
        except OSError as e:
            raise self._fault(e, f"open {self.resource}") from e
        except ValueError as e:  # pyvisa-py without the package for this interface
            raise VisaLibraryMissing(
                self.device,
                f"open {self.resource}",
                f"the VISA library cannot open this kind of resource: {' '.join(str(e).split())}",
                "for USB install NI-VISA, or pyusb with a udev rule for pyvisa-py",
            ) from e
        if not isinstance(res, MessageBasedResource):
            res.close()
            raise ResourceNotFound(
                self.device,
                f"open {self.resource}",
                "is not a message-based (SCPI) resource",
                "name the INSTR or SOCKET resource",
            )
        return res

    def _switch_off_nagle(self) -> bool:
        """TCP_NODELAY on a LAN session: through VISA where the library supports it, else
        on pyvisa-py's own socket (pyvisa-py 0.8 refuses the attribute). False when the
        transport is not TCP or the library hides its socket."""
        if self._res.resource_info.interface_type != constants.InterfaceType.tcpip:
            return False
        with contextlib.suppress(Exception):  # libraries raise their own kinds here
            self._res.set_visa_attribute(
                constants.ResourceAttribute.tcpip_nodelay, constants.VisaBoolean.true
            )
            return True
        sock = self._tcp_socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return True
        return False

    def _tcp_socket(self) -> socket.socket | None:
        """pyvisa-py's socket under this session, where there is one."""
        sessions = getattr(self._res.visalib, "sessions", {})
        sock = getattr(sessions.get(self._res.session), "interface", None)
        return sock if isinstance(sock, socket.socket) else None

    def _closed_by_peer(self) -> bool:
        """Whether the instrument closed the connection (pyvisa-py reports a closed
        socket as a timeout): the socket reads as ended."""
        sock = self._tcp_socket()
        if sock is None:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _resynchronise(self, command: str) -> None:
        """Bring an out-of-step session back: no answer of an earlier query may be read
        as the answer to this one."""
        if self.in_step:
            return
        try:
            if self._socket:
                with contextlib.suppress(*_TRANSPORT):
                    self._res.close()
                self._res = self._open()
                self.no_delay = self._switch_off_nagle()
            else:
                self._res.clear()  # device clear: the instrument drops its output queue
            answer = str(self._res.query("*CLS;*OPC?")).strip()
        except _TRANSPORT as e:
            raise self._fault(e, f"*CLS;*OPC? (resynchronising before {command})") from e
        if answer != "1":
            raise UnknownAnswer(
                self.device,
                "*CLS;*OPC?",
                f"answered {answer!r} instead of 1 while resynchronising before {command}",
                "power-cycle the instrument",
            )
        self.in_step = True

    def _fault(self, error: Exception, command: str) -> Exception:
        if isinstance(error, UnicodeDecodeError):
            return UnknownAnswer(
                self.device,
                command,
                "answered bytes that are not text: state unknown",
                "check the cable; if it repeats, power-cycle the instrument",
            )
        if isinstance(error, OSError):  # pyvisa-py's sockets: reset, broken pipe, refused
            reason = f"{type(error).__name__}: {error.strerror or error}"
            refused = isinstance(error, ConnectionRefusedError)
            what = "cannot connect to" if refused else "connection lost to"
            return ConnectionLost(
                self.device,
                command,
                f"{what} {self.resource} ({reason})",
                "check the cable, the address and the instrument's power; "
                "the next command reconnects",
            )
        assert isinstance(error, errors.VisaIOError)
        timeout = error.error_code == constants.StatusCode.error_timeout
        if timeout and self._closed_by_peer():
            return ConnectionLost(
                self.device,
                command,
                f"connection lost: {self.resource} closed it",
                "check the instrument (a reboot, another program taking the port); "
                "the next command reconnects",
            )
        if timeout:
            return VisaTimeout(
                self.device,
                command,
                f"no answer within {self._timeout_ms:g} ms",
                "the instrument stopped responding: check the cable and power",
            )
        return VisaIOFault(
            self.device, command, f"VISA error {error.abbreviation}", "check the connection"
        )
