"""What a run's earlier sessions saw live, for a resumed session: the particles the first
session found, and each whole cycle's frame records with their live intensities, so a
resumed closed loop takes up its adaptive rules where the interruption left them.

Live traces are written in blocks, so a crash can lose the last rows before it; the
frames they belong to are measured again from the pages on disk, with the same apertures.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tjump.analysis import Detections
from tjump.analysis.traces import ApertureTraces
from tjump.errors import InputError
from tjump.sequencer.decisions import DecisionKind
from tjump.sequencer.sinks import BASELINE_FRAMES
from tjump.storage import RunDirectory
from tjump.storage.decisions import read_decisions
from tjump.storage.layout import LIVE_PARTICLES, LIVE_TRACES, FrameRecord
from tjump.storage.scan import Page, Row

FloatArray = NDArray[np.float64]
_RECORD_FIELDS = frozenset(f.name for f in fields(FrameRecord))


@dataclass(frozen=True)
class LiveHistory:
    """The live view of a run's earlier sessions."""

    particles: Detections
    baseline: FloatArray  # each particle's mean intensity over the first traces measured
    records: list[FrameRecord]  # frames of whole cycles, in the order they were taken
    rows: FloatArray  # their live intensities (records x particles)
    series_ended: frozenset[int]  # segments at which an adaptive series was ended
    resumes: int  # times the suspender resumed the run
    measured_again: int  # frames whose live row was lost, measured from their pages


def read_live_particles(run: Path) -> Detections | None:
    """The particles found live in the run's first session (None if none were)."""
    path = run / LIVE_PARTICLES
    if not path.is_file():
        return None
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as e:
        raise InputError(f"{path} cannot be read: {e}") from e
    if table.shape[1] != 5:
        raise InputError(f"{path}: expected 5 columns (particle_id,x,y,peak,flags)")
    return Detections(table[:, 1], table[:, 2], table[:, 3], table[:, 4].astype(np.int64))


def live_history(
    run: Path,
    particles: Detections,
    rows: list[Row],
    pages: Mapping[int, Page],
    baseline_frames: int = BASELINE_FRAMES,
) -> LiveHistory | None:
    """The live view of `run` before this session: `particles` are those its first
    session found (`read_live_particles`), `rows` its frames table (repaired), `pages` its
    readable pages by frame number, `baseline_frames` the frames the particles were found
    in. None when the live traces of those frames cannot be read."""
    if len(particles) == 0:
        return None
    numbers, intensity = _read_live_traces(run / LIVE_TRACES, len(particles))
    first = intensity[numbers < baseline_frames]  # the frames the particles were found in
    if len(first) == 0:
        return None
    baseline = np.nanmean(first, axis=0)
    whole = [r for r in rows if not r.get("interrupted") and not r.get("missing")]
    records = [FrameRecord(**{k: v for k, v in r.items() if k in _RECORD_FIELDS}) for r in whole]
    at = {int(n): i for i, n in enumerate(numbers)}
    measured = np.full((len(records), len(particles)), np.nan)
    lost: list[int] = []
    for k, record in enumerate(records):
        i = at.get(record.frame)
        if i is None:
            lost.append(k)
        else:
            measured[k] = intensity[i]
    again = _measure_again(run, particles, pages, records, lost, measured) if lost else 0
    decisions = read_decisions(run)
    return LiveHistory(
        particles,
        baseline,
        records,
        measured,
        frozenset(
            int(d["segment"])
            for d in decisions
            if d["decision"] == DecisionKind.SERIES_ENDED and d["segment"].lstrip("-").isdigit()
        ),
        sum(d["decision"] == DecisionKind.RESUMED for d in decisions),
        again,
    )


def _read_live_traces(path: Path, particles: int) -> tuple[NDArray[np.int64], FloatArray]:
    """Frame numbers and intensities of live-traces.csv; a line that is not a whole row of
    numbers (torn, damaged) is left out, and its frame is measured again."""
    table: list[list[float]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            for line in csv.reader(f):
                if len(line) != particles + 1:
                    continue
                try:
                    table.append([float(v) for v in line])
                except ValueError:  # the header, or a damaged line
                    continue
    values = np.array(table, dtype=np.float64).reshape(-1, particles + 1)
    return values[:, 0].astype(np.int64), values[:, 1:]


def _measure_again(
    run: Path,
    particles: Detections,
    pages: Mapping[int, Page],
    records: list[FrameRecord],
    lost: list[int],
    out: FloatArray,
) -> int:
    """Intensities of the frames `lost` (indices into `records`) from their pages; returns
    how many were measured."""
    wanted = [(k, pages[records[k].frame]) for k in lost if records[k].frame in pages]
    apertures: ApertureTraces | None = None
    frames = RunDirectory(run).iter_frames([page for _, page in wanted])
    for (k, _), image in zip(wanted, frames, strict=True):
        if apertures is None:
            apertures = ApertureTraces(particles.x, particles.y, image.shape)
        out[k] = apertures.measure(image)
    return len(wanted)
