"""Live nucleation marks: the common-mode reference and the first steep drop in each heat.

Each particle's intensity is divided by its baseline level and by the common-mode
reference (the median of the particles that have not switched in this heat), which takes
out the focal drift every particle shares (particles that switched stay out of it until
the next heat, while they recover). A particle has nucleated when that corrected
level stays `threshold` below its level just before the jump for `confirm` frames."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tjump.storage.layout import FrameRecord

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class NucleationEvent:
    particle: int
    cycle: int
    setpoint_K: float
    nucleation_s: float  # from the jump to the first frame of the drop
    frame: int
    time_s: float  # run time of that frame


class NucleationTracker:
    """Fed one frame at a time (its record and its intensities), in frame order."""

    def __init__(
        self,
        baseline: FloatArray,
        usable: NDArray[np.bool_],
        threshold: float = 0.07,
        confirm: int = 3,
        pre_frames: int = 10,
    ) -> None:
        self.baseline = np.where(baseline > 0, baseline, np.nan)
        self.usable = usable if usable.any() else np.ones_like(usable)
        self.threshold = threshold
        self.confirm = confirm
        self._recent: deque[FloatArray] = deque(maxlen=pre_frames)
        self._segment = -1
        self._reference = 1.0
        self._heat_times: list[float] = []
        self._before = np.ones_like(self.baseline)
        self._below = np.zeros(len(baseline), dtype=np.int64)
        self.switched = np.zeros(len(baseline), dtype=bool)

    def add(
        self, record: FrameRecord, row: FloatArray
    ) -> tuple[float, FloatArray, list[NucleationEvent]]:
        """Reference, corrected intensities and new nucleations for one frame."""
        heat = record.kind == "heat"
        if record.segment != self._segment and heat:
            self._heat_times = []
            self.switched[:] = False  # kept through the cooling, until the next heat
            self._below[:] = 0
            if self._recent:
                self._before = np.nanmean(np.stack(self._recent), axis=0)
        self._segment = record.segment
        ratio = row / self.baseline
        pool = ratio[self.usable & ~self.switched]
        if np.isfinite(pool).any():
            self._reference = float(np.nanmedian(pool))
        reference = self._reference  # the last one, once every particle has switched
        corrected = ratio / reference
        events: list[NucleationEvent] = []
        if not heat:
            self._recent.append(corrected)
            return reference, corrected, events
        self._heat_times.append(record.time_s)
        below = corrected < (1.0 - self.threshold) * self._before
        self._below = np.where(below & ~self.switched, self._below + 1, 0)
        for p in np.flatnonzero(self._below >= self.confirm):
            k = len(self._heat_times) - self.confirm
            events.append(
                NucleationEvent(
                    int(p),
                    record.cycle,
                    record.temperature_K,
                    round(self._heat_times[k] - self._heat_times[0], 9),
                    record.frame - self.confirm + 1,
                    self._heat_times[k],
                )
            )
            self.switched[p] = True
        self._below[self.switched] = 0
        return reference, corrected, events
