"""Names and columns of the run directory, shared by its writer and its reader
(docs/run-directory.md tells the whole format, the write order and what a crash leaves).

manifest.json   status (running / complete / aborted / failed / interrupted), rig, protocol
protocol.yaml   the protocol as run;  rig.yaml: the rig file as used
frames/NNNNNN.tif  uint16 pages, one per frame; a file holds frames NNNNNN, NNNNNN+1, ...
                and each page's description is its frames.csv row as JSON
frames.csv      one row per frame (FRAME_COLUMNS), `frame` unique in the run
daq.csv         every DAQ sample: sample,time_s,<channels>
log.jsonl       one JSON object per event: steps, faults, the end of the run
sim-truth/      simulated rigs only: what the simulator made happen
set-aside/      what a repair took out of the way (never deleted)
"""

from __future__ import annotations

from dataclasses import dataclass, fields

MANIFEST = "manifest.json"
FRAMES_DIR = "frames"
FRAMES_CSV = "frames.csv"
DAQ_CSV = "daq.csv"
LOG = "log.jsonl"
TEXT_LOG = "run.log"
TRUTH_DIR = "sim-truth"
LIVE_PARTICLES = "live-particles.csv"
RUN_PROTOCOL = "protocol.yaml"
RUN_RIG = "rig.yaml"
RUN_CALIBRATION = "heater-calibration.csv"
RUN_HEATER_MODEL = "heater-model.yaml"
RUN_MM_CONFIG = "micro-manager.cfg"
LIVE_TRACES = "live-traces.csv"
GENERIC_FRAMES = "frames.tif"  # a generic recording: one multi-page TIFF beside frames.csv
ZARR_JSON = "zarr.json"  # the root of an OME-Zarr export
# the simulator's truth, in TRUTH_DIR
TRUTH_PARTICLES = "particles.csv"
TRUTH_TRANSITIONS = "transitions.csv"
# what `tjump analyze` writes into its output folder
ANALYSIS_PARTICLES = "particles.csv"
ANALYSIS_EVENTS = "events.csv"
ANALYSIS_TEMPERATURES = "temperatures.csv"
ANALYSIS_ENSEMBLE = "ensemble.csv"
ANALYSIS_COMMON_MODE = "common_mode.csv"
ANALYSIS_TRACES = "traces.npz"
ANALYSIS_SUMMARY = "summary.json"
ANALYSIS_REPORT = "report.html"
ANALYSIS_FIGURES_DIR = "figures"
# what a batch of runs adds beside the runs' folders
BATCH_RUNS = "runs.csv"
BATCH_PARTICLES = "particles.csv"
BATCH_SAMPLES = "samples.csv"
BATCH_INDEX = "index.html"
BATCH_EA_VS_SIZE = "ea_vs_size.png"
BATCH_EA_ABLATION = "ea_ablation.png"
INPUT_FILES = frozenset({RUN_PROTOCOL, RUN_RIG, RUN_CALIBRATION, RUN_MM_CONFIG})
SET_ASIDE_DIR = "set-aside"
WRITER_LOCK = ".writer.lock"
STATUSES = ("running", "complete", "aborted", "failed", "interrupted")


@dataclass(frozen=True)
class FrameRecord:
    """What is known about one frame, all on the DAQ's timebase."""

    frame: int
    time_s: float
    temperature_K: float  # heater setpoint
    segment: int
    kind: str
    step: int
    cycle: int
    drive_V: float
    current_A: float
    daq_index: int
    camera_frame: int
    # the film's temperature from its resistance V/I (NaN: drive off or R(T) unknown)
    film_temperature_K: float = float("nan")
    schedule_frame: int = -1  # its place in the protocol's schedule (-1: same as `frame`)
    session: int = 0  # 0 for the first session, then one more for each resume
    interrupted: int = 0  # 1: in a cycle the run did not finish in that session
    missing: int = 0  # 1: the row's page was lost (set by a repair)

    def __post_init__(self) -> None:
        if self.schedule_frame < 0:
            object.__setattr__(self, "schedule_frame", self.frame)

    def row(self) -> tuple[object, ...]:
        """The values in FRAME_COLUMNS order (astuple's deep copy cost 0.3 ms a frame);
        an unknown film temperature is left empty."""
        values = tuple(getattr(self, name) for name in FRAME_COLUMNS)
        film = self.film_temperature_K
        return values if film == film else (*values[:_FILM], "", *values[_FILM + 1 :])


FRAME_COLUMNS = tuple(f.name for f in fields(FrameRecord))
_FILM = FRAME_COLUMNS.index("film_temperature_K")
OPTIONAL_NUMBERS = frozenset({"film_temperature_K"})  # empty when unknown
INT_COLUMNS = frozenset(f.name for f in fields(FrameRecord) if f.type in ("int", int))
TEXT_COLUMNS = frozenset({"kind"})


def chunk_name(first_frame: int) -> str:
    return f"{first_frame:06d}.tif"
