"""Writing in a thread of its own, in order, behind a small queue: the acquisition hands a
frame over and goes back to the camera while the disk takes it.

The queue holds at most `max_bytes` of frames (at least one frame), so a disk slower than
the camera holds the acquisition back (and the camera's own buffer takes the slack)
instead of filling memory. A kill loses the frames still queued: the run directory on
disk stays as consistent as if the process had stopped before taking them."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_QUEUED_BYTES = 32 * 2**20  # about 50 frames of 640 x 480, 4 of 2048 x 2048


@dataclass(frozen=True)
class _Task:
    work: Callable[[], None]
    nbytes: int
    quiet: bool  # a failure to write it (OSError) is no failure of the run


class WriterThread:
    """Runs the work handed to `submit` one piece at a time, in order, in a thread named
    `tjump-writer`. After a piece fails, nothing more is done but quiet pieces, and every
    later `submit` (but a quiet one's) raises that failure in the caller's thread."""

    def __init__(self, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.max_bytes = max_bytes
        self.error: BaseException | None = None
        self._heard = False  # whether `submit` has raised `error` yet
        self._tasks: deque[_Task] = deque()
        self._bytes = 0
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="tjump-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], None], nbytes: int = 0, quiet: bool = False) -> None:
        """Queue `work`; waits while the queue holds `max_bytes` already. Raises the
        failure of earlier work, if any (not for quiet work, which is then dropped)."""
        with self._changed:
            while self._bytes and self._bytes + nbytes > self.max_bytes and not self.error:
                self._changed.wait()
            if self.error is not None:
                if quiet:
                    return
                self._heard = True
                raise self.error
            if self._stopping:
                raise RuntimeError("the writer thread has been stopped")
            self._tasks.append(_Task(work, nbytes, quiet))
            self._bytes += nbytes
            self._changed.notify_all()

    def drain(self) -> None:
        """Wait until everything queued has been done; raises a failure no `submit` has
        raised yet."""
        with self._changed:
            while self._tasks and self._thread.is_alive():
                self._changed.wait()
            if self.error is not None and not self._heard:
                self._heard = True
                raise self.error

    def stop(self) -> None:
        """Drain, then end the thread."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()

    def unheard(self) -> BaseException | None:
        """A failure no `submit` has raised yet (the last work failed)."""
        return None if self._heard else self.error

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._tasks and not self._stopping:
                    self._changed.wait()
                if not self._tasks:
                    return
                task, failed = self._tasks[0], self.error is not None
            if not failed or task.quiet:
                try:
                    task.work()
                except BaseException as e:  # handed to the acquisition's thread
                    if not (task.quiet and isinstance(e, OSError)):
                        with self._changed:
                            self.error = self.error or e
            with self._changed:
                self._tasks.popleft()
                self._bytes -= task.nbytes
                self._changed.notify_all()
