"""Analysis from movie to activation energies: pure functions over arrays and tables.

The same detection, trace and event code runs live (frame by frame, in the sequencer and the
GUI: `OnlineTraces`, `LiveDetector`) and offline (`tjump.analysis.pipeline.analyze_recording`
on a recorded stack). Modules: recording (opening run directories and generic TIFF + CSV
recordings as memory-mapped views), detection, traces (apertures, drift tracking), events
(cycles, common mode, the event rule, nucleation and return), live (that rule frame by
frame), kinetics (censored Arrhenius, JMAK, first order), sizing (calibration), model (the
typed result), pipeline (computes it), tables (CSV rows, summary, the reader of what the GUI
shows), report (figures + HTML), output (writes it all atomically), truth (scoring against a
simulated run)."""

from tjump.analysis.detection import Detections, detect_particles
from tjump.analysis.live import FrameDetector, LiveDetector, LiveEvent, LiveUpdate
from tjump.analysis.traces import ApertureTraces, OnlineTraces

__all__ = [
    "ApertureTraces",
    "Detections",
    "FrameDetector",
    "LiveDetector",
    "LiveEvent",
    "LiveUpdate",
    "OnlineTraces",
    "detect_particles",
]
