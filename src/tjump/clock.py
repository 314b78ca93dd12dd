"""One clock abstraction for the whole program.

The lab runs on real time (the DAQ is the master timebase; the clock only paces the
program). The simulated rig runs on a virtual clock that jumps forward when asked, firing
the simulated devices on the way, so hours of experiment take seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Time as the acquisition sees it, in seconds since the clock was made."""

    def now(self) -> float:
        """Current time in seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass."""
        ...

    def run_to(self, t: float) -> None:
        """Let time reach `t` if it can: a virtual clock jumps there, firing what is due;
        a real clock does nothing, since real time passes by itself."""
        ...


class RealClock:
    """Wall-clock time from `time.monotonic`."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._start

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def run_to(self, t: float) -> None:
        """Real time cannot be pushed; frames and samples arrive when they arrive."""


class VirtualClock:
    """Simulated time that advances only when asked, or, once `pace` is called, by itself
    at a fixed multiple of wall time (the simulated rig then behaves like the lab: frames
    come whether or not anyone is ready for them).

    Listeners registered with `on_advance` are called with the new time each time the
    clock moves, in the advancing thread; the simulated rig integrates its physics there.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._lock = threading.RLock()
        self._listeners: list[Callable[[float], None]] = []
        self._speed = 0.0  # 0: advances only when asked
        self._stop = threading.Event()
        self._pacer: threading.Thread | None = None

    def on_advance(self, listener: Callable[[float], None]) -> None:
        """Call `listener(t)` whenever the clock moves forward to `t`."""
        self._listeners.append(listener)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if self._speed:
            time.sleep(max(0.0, seconds) / self._speed)
        else:
            self._advance(self._now + max(0.0, seconds))

    def run_to(self, t: float) -> None:
        if not self._speed:
            self._advance(t)

    def pace(self, speed: float = 1.0, step_s: float = 0.002) -> None:
        """From now on, advance by itself: `speed` virtual seconds per wall second, in
        steps of about `step_s` of wall time."""
        if self._pacer is not None:
            raise RuntimeError("the clock is already paced")
        self._speed = speed
        self._pacer = threading.Thread(
            target=self._run_paced, args=(step_s,), name="tjump-clock", daemon=True
        )
        self._pacer.start()

    def stop(self) -> None:
        """Stop a paced clock (it then stands still)."""
        self._stop.set()
        if self._pacer is not None:
            self._pacer.join()

    def _run_paced(self, step_s: float) -> None:
        wall0, virtual0 = time.monotonic(), self._now
        while not self._stop.wait(step_s):
            self._advance(virtual0 + (time.monotonic() - wall0) * self._speed)

    def _advance(self, t: float) -> None:
        with self._lock:
            if t <= self._now:
                return
            self._now = t
            for listener in self._listeners:
                listener(t)
