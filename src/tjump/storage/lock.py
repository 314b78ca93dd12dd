"""One writer per run directory: a lock held for as long as a run writes to it.

The operating system releases the lock when the process ends, however it ends, so a run
directory whose manifest says `running` but whose lock is free was cut short (killed, power
lost). Where file locks are not available (Windows) no run is ever seen as alive."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from tjump.errors import InputError
from tjump.storage.layout import WRITER_LOCK


class WriterLock:
    """Held by the process writing a run directory."""

    def __init__(self, directory: Path) -> None:
        self._file: IO[str] | None = (directory / WRITER_LOCK).open("a", encoding="utf-8")
        if not _lock(self._file, exclusive=True):
            self._file.close()
            self._file = None
            raise InputError(f"a tjump process is writing to {directory} now; let it finish")

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file releases the lock
            self._file = None


def writer_alive(directory: Path) -> bool:
    """Whether a process holds the run directory's writer lock now."""
    path = directory / WRITER_LOCK
    if not path.is_file():
        return False
    try:
        with path.open("a", encoding="utf-8") as f:
            return not _lock(f, exclusive=False)
    except OSError:
        return False


def _lock(file: IO[str], exclusive: bool) -> bool:
    """Try to take the lock without waiting; True if taken."""
    if sys.platform == "win32":
        return True
    import fcntl

    mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    try:
        fcntl.flock(file.fileno(), mode)
    except OSError:
        return False
    return True
