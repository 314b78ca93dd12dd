"""Analysis from movie to activation energies: pure functions over arrays and tables.

The same detection and trace code runs live (frame by frame, in the sequencer) and offline
(on a recorded stack)."""

from tjump.analysis.detection import Detections, detect_particles
from tjump.analysis.traces import ApertureTraces, OnlineTraces

__all__ = ["ApertureTraces", "Detections", "OnlineTraces", "detect_particles"]
