"""Names and columns of the run directory, shared by its writer and its reader.

manifest.json   status (running / complete / aborted / failed), rig, protocol, versions
protocol.yaml   the protocol as run;  rig.yaml: the rig file as used
frames/NNNNNN.tif  uint16 pages, one per frame, a new file every `chunk_frames`
frames.csv      one row per frame (FRAME_COLUMNS)
daq.csv         every DAQ sample: sample,time_s,<channels>
log.jsonl       one JSON object per event: steps, faults, the end of the run
sim-truth/      simulated rigs only: what the simulator made happen
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

    def row(self) -> tuple[object, ...]:
        """The values in FRAME_COLUMNS order (astuple's deep copy cost 0.3 ms a frame);
        an unknown film temperature is left empty."""
        values = tuple(getattr(self, name) for name in FRAME_COLUMNS)
        film = self.film_temperature_K
        return values if film == film else (*values[:-1], "")


FRAME_COLUMNS = tuple(f.name for f in fields(FrameRecord))


def chunk_name(first_frame: int) -> str:
    return f"{first_frame:06d}.tif"
