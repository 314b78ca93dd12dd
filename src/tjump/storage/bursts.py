"""Fast-camera bursts in the run directory (docs/run-directory.md, "Bursts").

bursts/NNNN.tif   one burst: a stack of uint16 pages, the burst's region of interest
bursts/NNNN.csv   its frames' DAQ times: frame, time_s (exposure start)
bursts.csv        one row per burst, appended only once both files are in place

A burst's files are written under temporary names and renamed, so a crash leaves either a
whole burst listed in bursts.csv, or files that no row names (ignored), never a row
naming a file that is not there.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray

from tjump.devices.fastcamera import Burst, Roi
from tjump.errors import InputError, StorageError
from tjump.storage.table import read_columns

BURSTS_DIR = "bursts"
BURSTS_CSV = "bursts.csv"
BURST_COLUMNS = (
    "burst",
    "particle",
    "trigger_time_s",
    "frames",
    "frame_rate_hz",
    "exposure_ms",
    "x0",
    "y0",
    "width",
    "height",
    "file",
)


@dataclass(frozen=True)
class BurstRecord:
    """One stored burst: which particle fired it, when (DAQ time), and where its frames are."""

    burst: int
    particle: int  # the particle whose nucleation fired it
    trigger_time_s: float
    frames: int
    frame_rate_hz: float
    exposure_ms: float
    roi: Roi
    path: Path  # the stack of frames

    def read(self) -> tuple[NDArray[np.uint16], NDArray[np.float64]]:
        """(frames, DAQ time of each exposure's start)."""
        times = read_columns(self.path.with_suffix(".csv"))
        try:
            time_s = np.array([float(v) for v in times["time_s"]])
        except (KeyError, ValueError) as e:
            raise InputError(f"{self.path.with_suffix('.csv')}: bad time_s column ({e})") from e
        stack = np.asarray(tifffile.imread(self.path), dtype=np.uint16)
        if stack.ndim == 2:
            stack = stack[None]
        if len(stack) != len(time_s):
            raise InputError(f"{self.path} holds {len(stack)} frames, its times {len(time_s)}")
        return stack, time_s


class BurstWriter:
    """Appends bursts to a run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.count = len(list(read_bursts(run_dir)))

    def write(self, burst: Burst, particle: int, trigger_time_s: float) -> BurstRecord:
        """Save `burst` (fired by `particle`'s nucleation, triggered at `trigger_time_s` on
        the DAQ's timebase); returns its record."""
        folder = self.run_dir / BURSTS_DIR
        number = self.count
        stack = folder / f"{number:04d}.tif"
        times = stack.with_suffix(".csv")
        index = self.run_dir / BURSTS_CSV
        roi = burst.roi
        record = BurstRecord(
            number,
            particle,
            trigger_time_s,
            len(burst.frames),
            burst.frame_rate_hz,
            burst.exposure_s * 1e3,
            roi,
            stack,
        )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            part = stack.with_name(f".{stack.name}.partial")
            tifffile.imwrite(part, burst.frames, photometric="minisblack")
            part.replace(stack)
            part = times.with_name(f".{times.name}.partial")
            with part.open("w", newline="") as f:
                out = csv.writer(f)
                out.writerow(["frame", "time_s"])
                for k, offset in enumerate(burst.offset_s):
                    out.writerow([k, f"{trigger_time_s + float(offset):.6f}"])
                f.flush()
                os.fsync(f.fileno())
            part.replace(times)
            new = not index.exists()
            with index.open("a", newline="") as f:
                out = csv.writer(f)
                if new:
                    out.writerow(BURST_COLUMNS)
                out.writerow(
                    [
                        number,
                        particle,
                        f"{trigger_time_s:.6f}",
                        record.frames,
                        f"{burst.frame_rate_hz:g}",
                        f"{record.exposure_ms:.4f}",
                        roi.x0,
                        roi.y0,
                        roi.width,
                        roi.height,
                        f"{BURSTS_DIR}/{stack.name}",
                    ]
                )
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise StorageError(f"cannot save fast-camera burst {number} in {folder}: {e}") from e
        self.count += 1
        return record


def read_bursts(run_dir: Path) -> Iterator[BurstRecord]:
    """The bursts listed in the run's bursts.csv (none if it has none)."""
    index = run_dir / BURSTS_CSV
    if not index.exists():
        return
    columns = read_columns(index)
    missing = [c for c in BURST_COLUMNS if c not in columns]
    if missing:
        raise InputError(f"{index} lacks the column(s) {', '.join(missing)}")
    for row in range(len(columns["burst"])):

        def value(name: str, row: int = row) -> str:
            return columns[name][row]

        try:
            roi = Roi(*(int(value(c)) for c in ("x0", "y0", "width", "height")))
            yield BurstRecord(
                int(value("burst")),
                int(value("particle")),
                float(value("trigger_time_s")),
                int(value("frames")),
                float(value("frame_rate_hz")),
                float(value("exposure_ms")),
                roi,
                run_dir / value("file"),
            )
        except ValueError as e:
            raise InputError(f"{index} line {row + 2}: {e}") from e
