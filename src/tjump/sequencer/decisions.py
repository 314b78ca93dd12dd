"""What the closed loop decided during a run, as the log, the GUI and the tables see it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DecisionKind(StrEnum):
    HOLD_ENDED = "hold_ended"  # an adaptive heat ended (switched fraction, or its longest)
    COOL_ENDED = "cool_ended"  # an adaptive cool ended (film and particles back, or longest)
    SERIES_ENDED = "series_ended"  # an adaptive temperature had its cycles
    SUSPENDED = "suspended"  # the heater left its band: made safe, run paused
    RESUMED = "resumed"  # after a suspension, the cycle starts again
    ABORTED = "aborted"  # after a suspension, the run cannot go on
    BURST = "burst"  # the fast camera was fired by a nucleation


@dataclass(frozen=True)
class LiveDecision:
    """One decision: when (experiment time), what, and why in words."""

    time_s: float
    kind: DecisionKind
    reason: str
    segment: int
    cycle: int

    def fields(self) -> dict[str, object]:
        """For the run's log (log.jsonl)."""
        return {
            "time_s": round(self.time_s, 6),
            "decision": str(self.kind),
            "reason": self.reason,
            "segment": self.segment,
            "cycle": self.cycle,
        }
