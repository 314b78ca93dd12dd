"""The temperature-band suspender: when to stop heating because the heater misbehaves,
and whether to carry on afterwards. Pure decisions; the runner makes the heater safe,
waits and repeats the cycle.

Watched frame by frame while the drive is on: the film's temperature from its resistance
(V/I) against the temperature it should have (the setpoint followed through the film's
step response, when the rig knows it), and the current from one frame to the next at a
steady drive (a crack opens the film, a short or a failing contact makes it jump).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

# With the drive at 0 V the current monitor must read no more than this: more means the
# supply is not really off (or the monitor is broken), and heating again would be unsafe.
IDLE_CURRENT_A = 1e-3
MIN_DRIVE_V = 0.01  # below this the drive counts as off (no V/I thermometer)


class ExpectedFilm:
    """Where the film should be: the setpoint followed through the film's step response,
    (weight, time constant) components, from ambient."""

    def __init__(self, response: Sequence[tuple[float, float]], ambient_K: float) -> None:
        self.response = tuple(response)
        self.ambient_K = ambient_K
        self._rise = [0.0] * len(self.response)

    def advance(self, setpoint_K: float, seconds: float) -> float:
        """The film's expected temperature after `seconds` more at `setpoint_K`."""
        step = max(setpoint_K - self.ambient_K, 0.0)
        for j, (weight, tau) in enumerate(self.response):
            target = weight * step
            self._rise[j] = target + (self._rise[j] - target) * math.exp(-seconds / tau)
        return self.ambient_K + sum(self._rise)


class SuspendReason(StrEnum):
    BAND = "film temperature out of band"
    UNREADABLE = "film temperature unreadable"
    CURRENT_JUMP = "heater current jumped"


@dataclass(frozen=True)
class HeaterReading:
    """One frame's view of the heater (means over the frame's DAQ samples)."""

    time_s: float
    drive_V: float
    current_A: float
    film_K: float  # from V/I; NaN when it cannot be read
    expected_K: float  # where the film should be now; NaN if unknown (no step response)
    since_drive_change_s: float  # time since the drive was last changed


@dataclass(frozen=True)
class Suspension:
    reason: SuspendReason
    detail: str
    time_s: float

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class Verdict(StrEnum):
    RESUME = "resume"
    ABORT = "abort"


@dataclass(frozen=True)
class AfterSuspension:
    verdict: Verdict
    reason: str


class Suspender:
    """Watches heated frames; counts the resumes of one run."""

    def __init__(
        self, band_K: float, current_jump_fraction: float, max_resumes: int, settle_s: float
    ) -> None:
        self.band_K = band_K
        self.current_jump_fraction = current_jump_fraction
        self.max_resumes = max_resumes
        self.settle_s = settle_s
        self.resumes = 0
        self._last: HeaterReading | None = None

    def watch(self, reading: HeaterReading) -> Suspension | None:
        """A suspension if this frame shows the heater out of bounds, else None."""
        last, self._last = self._last, reading
        if reading.drive_V < MIN_DRIVE_V:
            return None
        settled = reading.since_drive_change_s >= self.settle_s
        if not math.isfinite(reading.film_K):
            if not settled:
                return None
            return Suspension(
                SuspendReason.UNREADABLE,
                f"{reading.current_A:.4g} A at {reading.drive_V:.4g} V: no resistance to "
                "read (is the film open?)",
                reading.time_s,
            )
        if math.isfinite(reading.expected_K) and settled:
            off = reading.film_K - reading.expected_K
            if abs(off) > self.band_K:
                return Suspension(
                    SuspendReason.BAND,
                    f"film at {reading.film_K:.1f} K, {off:+.1f} K from the expected "
                    f"{reading.expected_K:.1f} K (band +-{self.band_K:g} K)",
                    reading.time_s,
                )
        steady = (
            last is not None
            and settled
            and last.since_drive_change_s >= self.settle_s
            and math.isclose(last.drive_V, reading.drive_V, rel_tol=1e-3, abs_tol=1e-4)
        )
        if steady and last is not None and abs(last.current_A) > 0:
            change = (reading.current_A - last.current_A) / abs(last.current_A)
            if abs(change) > self.current_jump_fraction:
                return Suspension(
                    SuspendReason.CURRENT_JUMP,
                    f"{last.current_A:.4g} A -> {reading.current_A:.4g} A ({change:+.0%}) at "
                    f"{reading.drive_V:.4g} V (limit +-{self.current_jump_fraction:.0%})",
                    reading.time_s,
                )
        return None

    def after(
        self, suspension: Suspension, repeatable: bool, idle_current_A: float
    ) -> AfterSuspension:
        """Once the heater is safe and the pause is over: resume (the cycle is repeated)
        or abort. `idle_current_A`: the current read at 0 V during the pause. An ablation
        (not `repeatable`) never resumes."""
        self._last = None
        if not repeatable:
            return AfterSuspension(
                Verdict.ABORT, f"{suspension}; the step cannot be repeated, so the run aborts"
            )
        if not abs(idle_current_A) <= IDLE_CURRENT_A:
            return AfterSuspension(
                Verdict.ABORT,
                f"{suspension}; {idle_current_A:.4g} A still flows at 0 V (at most "
                f"{IDLE_CURRENT_A:g} A), so the heater is not safe to use again",
            )
        if self.resumes >= self.max_resumes:
            return AfterSuspension(
                Verdict.ABORT,
                f"{suspension}; already resumed {self.resumes} of at most {self.max_resumes} times",
            )
        self.resumes += 1
        return AfterSuspension(
            Verdict.RESUME,
            f"{suspension}; resuming ({self.resumes} of at most {self.max_resumes})",
        )
