"""A watchdog: if the acquisition loop stops checking in, make the heater safe anyway."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Watchdog:
    """Calls `on_expire` once, from its own thread, if `kick` is not called for
    `timeout_s` seconds of wall time."""

    def __init__(self, timeout_s: float, on_expire: Callable[[], None]) -> None:
        self.timeout_s = timeout_s
        self._on_expire = on_expire
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tjump-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def kick(self) -> None:
        self._last = time.monotonic()

    def _watch(self) -> None:
        while not self._stop.wait(min(0.5, self.timeout_s / 4)):
            if time.monotonic() - self._last > self.timeout_s:
                self._on_expire()
                return
