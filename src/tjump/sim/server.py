"""A simulated instrument on a real transport: raw SCPI over TCP on loopback, as a LAN
instrument's socket port speaks it (the DG1000Z's is 5555), with the latency of a real
instrument and faults injected where they happen on a bench: in the cable and the socket.

Each message is one line ending in "\\n"; each answer goes back on the connection that
asked, after `latency_s`. The model behind is called under the server's lock, one message
at a time, as an instrument parses its input queue.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tjump.sim.scpi import ScpiModel

LATENCY_S = 0.002  # a DG1000Z answers a query over LAN in a few ms
_TERMINATOR = b"\n"


@dataclass
class Faults:
    """What goes wrong between the computer and the instrument, set by a test."""

    pulled: bool = False  # cable pulled: the socket stays open, nothing gets through
    late_answers: int = 0  # the next answers come `late_s` late
    late_s: float = 0.0
    garbled_answers: int = 0  # the next answers arrive corrupted
    binary_answers: int = 0  # the next answers arrive as bytes that are not text
    ignored: tuple[str, ...] = ()  # accepted without effect (a stuck setting)
    on_message: Callable[[str], None] | None = None  # runs before each message is handled
    sent: list[str] = field(default_factory=list)  # every answer sent, in order


class ScpiSocketServer:
    """Serves `model` at `TCPIP0::<host>::<port>::SOCKET` (port 0: any free one)."""

    def __init__(
        self,
        model: ScpiModel,
        port: int = 0,
        latency_s: float = LATENCY_S,
        lock: threading.RLock | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.model = model
        self.latency_s = latency_s
        self.faults = Faults()
        self.log: list[str] = []  # every message the instrument received, in order
        self.connections_accepted = 0
        self._lock = lock or threading.RLock()
        self._listener = socket.create_server((host, port))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"scpi:{self.port}", daemon=True)
        self._thread.start()

    @property
    def resource(self) -> str:
        """The VISA resource name that reaches this server (pyvisa-py, `@py`)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def __enter__(self) -> ScpiSocketServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults at the transport ------------------------------------------------------

    def reset_connections(self) -> None:
        """Every open connection is reset (RST), as when the instrument reboots."""
        for conn in self._take_connections():
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    def close_connections(self) -> None:
        """Every open connection is closed in order (FIN), as when the instrument drops it."""
        for conn in self._take_connections():
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        self._listener.close()
        self.close_connections()
        self._thread.join(timeout=2.0)

    # -- serving ----------------------------------------------------------------------

    def _take_connections(self) -> list[socket.socket]:
        with self._lock:
            taken, self._connections = self._connections, []
        return taken

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.append(conn)
                self.connections_accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            try:
                data = conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            pending += data
            while _TERMINATOR in pending:
                line, pending = pending.split(_TERMINATOR, 1)
                message = line.decode("ascii", errors="replace").strip()
                if message and not self._answer(conn, message):
                    break
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        conn.close()

    def _answer(self, conn: socket.socket, message: str) -> bool:
        """Handle one message; False once the connection is gone."""
        faults = self.faults
        if faults.on_message is not None:
            faults.on_message(message)
        if faults.pulled:
            return True
        with self._lock:
            if conn not in self._connections:
                return False  # reset or closed by a fault
            self.log.append(message)
            if faults.ignored:  # each `;`-joined command on its own
                kept = [c for c in message.split(";") if not c.upper().startswith(faults.ignored)]
                message = ";".join(kept)
            answer = self.model.handle(message) if message else None
        if answer is None:
            return True
        delay = self.latency_s
        if faults.late_answers > 0:
            faults.late_answers -= 1
            delay += faults.late_s
        payload = answer.encode("ascii")
        if faults.garbled_answers > 0:
            faults.garbled_answers -= 1
            payload = _garble(payload)
        elif faults.binary_answers > 0:
            faults.binary_answers -= 1
            payload = bytes(b | 0x80 for b in payload)
        time.sleep(delay)
        faults.sent.append(payload.decode("ascii", errors="replace"))
        try:
            conn.sendall(payload + _TERMINATOR)
        except OSError:
            return False
        return True


def _garble(payload: bytes) -> bytes:
    """Noise on the line: every byte's bits scrambled, still printable ASCII."""
    return bytes(33 + (b * 7 + 11) % 94 for b in payload)
