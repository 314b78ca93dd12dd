"""The simulated camera's renderer in a process of its own, as a real camera's sensor and
electronics are outside the computer: the application pays what a real camera costs (a
frame copied out of a buffer), and benchmarks measure tjump, not the simulator's pixels.

Scenes go to the process through a pipe; it renders each into the next free slot of a
ring of frame slots in shared memory (`multiprocessing.shared_memory`) and answers with
the slot. One process renders in the order scenes were sent, with the same noise
generator as the in-process renderer, so the frames are the same, pixel for pixel.

The process is `python -m tjump.sim.render_process`, talking over its standard input and
output: it imports numpy and this module only (multiprocessing's spawn would import the
application's main module again, the whole `tjump` command). POSIX only (pipes as
`multiprocessing.connection.Connection`); elsewhere the camera renders in the application."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import deque
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory

import numpy as np
from numpy.typing import NDArray

from tjump.sim.frames import FrameRenderer, Pixels, Scene

SLOTS = 32  # frames in flight at most: about 20 MB at 640 x 480
_START_TIMEOUT_S = 60.0  # a cold start on a loaded two-core machine
_STOP_TIMEOUT_S = 5.0
_READY = "ready"
Table = NDArray[np.uint16]


class RenderProcess:
    """A renderer process and its ring of frame slots.

    `submit` hands it a scene (False when every slot is taken), `next_frame` waits for the
    oldest frame sent, `release` gives its slot back. Used from one thread at a time."""

    def __init__(self, pixels: Pixels, slots: int = SLOTS) -> None:
        self.shape = (pixels.height, pixels.width)
        self._shm = SharedMemory(create=True, size=slots * pixels.height * pixels.width * 2)
        self._slots: NDArray[np.uint16] = np.ndarray(
            (slots, *self.shape), dtype=np.uint16, buffer=self._shm.buf
        )
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # a terminal's Ctrl-C is the application's alone
            )
        except BaseException:
            self._release_memory()
            raise
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to = Connection(os.dup(self._process.stdin.fileno()), readable=False)
        self._from = Connection(os.dup(self._process.stdout.fileno()), writable=False)
        self._process.stdin.close()
        self._process.stdout.close()
        self._to.send((self._shm.name, slots, pixels))
        self._free: deque[int] = deque(range(slots))
        self._in_flight: deque[int] = deque()
        self._tables_sent: set[float] = set()
        self._closed = False

    def wait_ready(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Wait until the process has started and can render (it imports numpy first)."""
        if not self._from.poll(timeout_s) or self._from.recv() != _READY:
            raise RuntimeError(
                f"the simulated camera's renderer process did not start in {timeout_s:g} s"
            )

    def free_slots(self) -> int:
        return len(self._free)

    def in_flight(self) -> int:
        return len(self._in_flight)

    def submit(self, scene: Scene, table_key: float, table: Table) -> bool:
        """Send `scene` to be rendered with the background `table` (sent once per key);
        False, and nothing sent, if no slot is free."""
        if not self._free:
            return False
        slot = self._free.popleft()
        new = table_key not in self._tables_sent
        self._to.send((slot, scene, table_key, table if new else None))
        self._tables_sent.add(table_key)
        self._in_flight.append(slot)
        return True

    def next_frame(self, timeout_s: float) -> NDArray[np.uint16] | None:
        """The oldest frame sent, once rendered (a view of its slot, valid until
        `release`); None if it is not ready within `timeout_s`."""
        if not self._in_flight:
            return None
        if not self._from.poll(timeout_s):
            if self._process.poll() is not None:
                raise RuntimeError("the simulated camera's renderer process has died")
            return None
        slot: int = self._from.recv()
        if slot != self._in_flight[0]:
            raise RuntimeError(f"renderer answered slot {slot}, expected {self._in_flight[0]}")
        frame: NDArray[np.uint16] = self._slots[slot]
        return frame

    def release(self) -> None:
        """Give the oldest frame's slot back to the ring."""
        self._free.append(self._in_flight.popleft())

    def drain(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Wait for every frame in flight and give its slot back (a sequence stopped)."""
        while self._in_flight and self.next_frame(timeout_s) is not None:
            self.release()

    def close(self) -> None:
        """Stop the process and free the shared memory."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._to.send(None)
        try:
            self._process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._to.close()
        self._from.close()
        self._release_memory()

    def _release_memory(self) -> None:
        del self._slots  # no view may outlive the mapping
        self._shm.close()
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


def _serve(conn_in: Connection, conn_out: Connection) -> None:
    """The process: render each scene sent into its slot, answer with the slot."""
    name, slots, pixels = conn_in.recv()
    shm = SharedMemory(name=name)
    # the application owns the memory and unlinks it: not this process's tracker's to reap
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    try:
        frames: NDArray[np.uint16] = np.ndarray(
            (slots, pixels.height, pixels.width), dtype=np.uint16, buffer=shm.buf
        )
        renderer = FrameRenderer(pixels)
        tables: dict[float, Table] = {}
        conn_out.send(_READY)
        while True:
            try:
                message = conn_in.recv()
            except EOFError:  # the application has gone
                break
            if message is None:
                break
            slot, scene, key, table = message
            if table is not None:
                tables[key] = table
            renderer.render(scene, frames[slot], tables[key])
            conn_out.send(slot)
        del frames
    finally:
        shm.close()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the application decides when to stop
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    _serve(Connection(os.dup(0), writable=False), Connection(answers, readable=False))
    os._exit(0)  # nothing left to tidy: skip the interpreter's teardown, the application waits
