"""A simulated DG1000Z served on a loopback socket, reached by the real driver through
pyvisa-py, with what reached its output recorded."""

from __future__ import annotations

from tjump.clock import VirtualClock
from tjump.devices.rigol import RigolDG1000Z
from tjump.sim.rigol import SimRigolDG1000Z
from tjump.sim.server import ScpiSocketServer

DG1062Z = "Rigol Technologies,DG1062Z,DG1ZA000000001,00.01.14"


class Bench:
    """A generator model on its own socket server; close it when done."""

    def __init__(self, idn: str = DG1062Z) -> None:
        self.clock = VirtualClock()
        self.model = SimRigolDG1000Z(self.clock, idn=idn)
        self.server = ScpiSocketServer(self.model, lock=self.model.lock)
        self.outputs: list[tuple[float, bool]] = []
        self.advanced: list[float] = []  # times the world was asked to integrate up to
        self.model.connect(lambda v, on: self.outputs.append((v, on)), self.advanced.append)

    def driver(self, timeout_ms: int = 200, **kwargs: object) -> RigolDG1000Z:
        """A new session, as a new run would open one."""
        return RigolDG1000Z(self.server.resource, "@py", timeout_ms=timeout_ms, **kwargs)  # type: ignore[arg-type]

    def assert_off(self) -> None:
        """The instrument's own state (not the driver's word): DC 0 V, output off."""
        ch = self.model.channels[1]
        assert (ch.function, ch.offset_V, ch.output, ch.burst) == ("DC", 0.0, False, False)
        assert self.model.output_V() == (0.0, False)

    def close(self) -> None:
        self.server.close()
