"""Names for where a run is and how it ended (their values are the text on disk)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """Where a run is: ready -> running <-> pausing -> paused -> running ... -> finished."""

    READY = "ready"  # made, not started (pause, resume and abort already work)
    RUNNING = "running"
    PAUSING = "pausing"  # asked to pause: it will at the next segment boundary
    PAUSED = "paused"  # heater safe, no triggers, waiting for resume or abort
    FINISHED = "finished"


class FinishReason(StrEnum):
    """How a run ended: the manifest's `status` and `RunResult.status`."""

    COMPLETE = "complete"
    ABORTED = "aborted"  # on request (abort, Ctrl-C, SIGTERM)
    FAILED = "failed"  # a fault, a limit, the watchdog, a heater not confirmed safe
