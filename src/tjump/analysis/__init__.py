"""Analysis from movie to activation energies: pure functions over arrays and tables.

The same detection, trace and event code runs live (frame by frame, in the sequencer and the
GUI: `OnlineTraces`, `LiveEvents`) and offline (`tjump.analysis.pipeline.analyze_recording`
on a recorded stack). Modules: recording (opening run directories and generic TIFF + CSV
recordings as memory-mapped views), detection, traces (apertures, drift tracking), events
(cycles, common mode, nucleation and return), kinetics (censored Arrhenius, JMAK, first
order), sizing (calibration), pipeline (all of it, written atomically), report (figures +
HTML), truth (scoring against a simulated run)."""

from tjump.analysis.detection import Detections, detect_particles
from tjump.analysis.events import LiveEvent, LiveEvents
from tjump.analysis.traces import ApertureTraces, OnlineTraces

__all__ = [
    "ApertureTraces",
    "Detections",
    "LiveEvent",
    "LiveEvents",
    "OnlineTraces",
    "detect_particles",
]
