"""A pyvisa backend for simulated instruments whose state pyvisa-sim's YAML cannot hold.

`SimVisaLibrary` reuses pyvisa-sim's sessions (USB-TMC, LAN, serial, GPIB resource names)
but hands every message to a Python instrument model. Pass the library object itself to
`pyvisa.ResourceManager`; each one is fresh (no state shared between libraries). Faults
are injected per instrument: a dead instrument, lost answers.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Protocol, SupportsInt

from pyvisa import constants, errors, rname
from pyvisa.typing import VISARMSession, VISASession
from pyvisa_sim.highlevel import (
    SimVisaLibrary as _PyvisaSimLibrary,
)
from pyvisa_sim.sessions.session import Session

_ids = itertools.count()


class ScpiModel(Protocol):
    """An instrument model: one SCPI message in, its answer (or None) out."""

    def handle(self, message: str) -> str | None: ...


class SimInstrument:
    """The transport end of one simulated instrument: buffers, terminators and faults."""

    def __init__(self, model: ScpiModel, termination: str = "\n") -> None:
        self.model = model
        self.termination = termination.encode()
        self.dead = False  # ignores everything: powered off or hung
        self.answers_to_drop = 0  # answers lost on the way back (a USB glitch)
        self.ignored: tuple[str, ...] = ()  # accepted without effect (a stuck setting)
        self.log: list[str] = []  # every message received, in order
        self._input = bytearray()
        self._output: deque[bytes] = deque()

    # pyvisa-sim's session calls these two
    def write(self, data: bytes) -> None:
        if self.dead:
            return
        self._input.extend(data)
        while self.termination in self._input:
            line, _, rest = bytes(self._input).partition(self.termination)
            self._input = bytearray(rest)
            message = line.decode("ascii", errors="replace").strip()
            if message:
                self._receive(message)

    def read(self) -> tuple[bytes, bool]:
        if self.dead or not self._output:
            return b"", False
        return self._output.popleft(), True

    def _receive(self, message: str) -> None:
        self.log.append(message)
        if self.ignored and message.upper().startswith(self.ignored):
            return
        answer = self.model.handle(message)
        if answer is None:
            return
        if self.answers_to_drop > 0:
            self.answers_to_drop -= 1
            return
        self._output.append(answer.encode("ascii") + self.termination)


class _Instruments:
    """The `devices` mapping pyvisa-sim's library expects, keyed by canonical name."""

    def __init__(self) -> None:
        self._by_name: dict[str, SimInstrument] = {}

    def add(self, resource: str, instrument: SimInstrument) -> None:
        self._by_name[str(rname.parse_resource_name(resource))] = instrument

    def __getitem__(self, resource: str) -> SimInstrument:
        return self._by_name[resource]

    def __contains__(self, resource: str) -> bool:
        return resource in self._by_name

    def list_resources(self) -> tuple[str, ...]:
        return tuple(self._by_name)


class SimVisaLibrary(_PyvisaSimLibrary):  # type: ignore[misc]
    """A VISA library whose instruments are Python models."""

    def __new__(cls) -> SimVisaLibrary:
        # pyvisa caches one library per path: a unique path gives a fresh library
        obj: SimVisaLibrary = super().__new__(cls, f"tjump-sim-{next(_ids)}")
        return obj

    def __init__(self) -> None:
        """Nothing to load; instruments are added with `add`."""

    def _init(self) -> None:
        self.sessions: dict[int, Any] = {}
        self.devices = _Instruments()

    def add(self, resource: str, model: ScpiModel, termination: str = "\n") -> SimInstrument:
        """Attach `model` at VISA resource name `resource`."""
        instrument = SimInstrument(model, termination)
        self.devices.add(resource, instrument)
        return instrument

    def instrument(self, resource: str) -> SimInstrument:
        return self.devices[str(rname.parse_resource_name(resource))]

    def open(
        self,
        session: VISARMSession,
        resource_name: str,
        access_mode: constants.AccessModes = constants.AccessModes.no_lock,
        open_timeout: SupportsInt = constants.VI_TMO_IMMEDIATE,
    ) -> tuple[VISASession, constants.StatusCode]:
        """Open a session; unlike pyvisa-sim, a bad or unknown name raises as VISA does."""
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName as e:
            raise errors.VisaIOError(constants.StatusCode.error_invalid_resource_name) from e
        if str(parsed) not in self.devices:
            raise errors.VisaIOError(constants.StatusCode.error_resource_not_found)
        cls = Session.get_session_class(parsed.interface_type_const, parsed.resource_class)
        sess = cls(session, resource_name, parsed)
        sess.device = self.devices[str(parsed)]
        return self._register(sess), constants.StatusCode.success
