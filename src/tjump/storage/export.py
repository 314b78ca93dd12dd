"""Export a run to OME-TIFF: one standard file with the physical pixel size, each frame's
time and exposure, and the heater's temperatures, for napari, Fiji and ome-types."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from tjump.errors import InputError
from tjump.storage.reader import RunDirectory
from tjump.storage.scan import ChunkScan
from tjump.storage.verify import require_consistent

_BIGTIFF_BYTES = 2**31


def export_ome_tiff(run: RunDirectory, path: Path) -> int:
    """Write `run`'s frames and metadata to `path`; returns the number of frames.

    Written to a temporary name and renamed at the end, so a failed export never leaves
    a half-written file that looks complete."""
    verdict = require_consistent(run.path, "export")
    manifest = verdict.manifest
    pages = sorted(verdict.pages.values(), key=lambda p: p.frame)
    count = len(pages)
    if count == 0:
        raise InputError(f"run {run.path} has no frames to export")
    rows = [verdict.rows[p.frame] for p in pages]  # joined by frame number
    height, width = _shape(verdict.chunks, run.path)
    pixel = _positive(manifest, "pixel_size_um", run.path)
    exposure = _positive(manifest, "exposure_ms", run.path)
    rate = _positive(manifest, "frame_rate_hz", run.path)
    times = [float(r["time_s"]) for r in rows]
    metadata = {
        "axes": "TYX",
        "Name": f"{manifest.get('protocol')} on {manifest.get('rig')}",
        "Description": f"tjump run {run.path.name}, status {manifest.get('status')}",
        "PhysicalSizeX": pixel,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel,
        "PhysicalSizeYUnit": "µm",
        "TimeIncrement": 1.0 / rate,
        "TimeIncrementUnit": "s",
        "Plane": {
            "DeltaT": times,
            "DeltaTUnit": ["s"] * count,
            "ExposureTime": [exposure] * count,
            "ExposureTimeUnit": ["ms"] * count,
        },
        "MapAnnotation": [
            {
                "Namespace": "tjump/run",
                **{k: str(manifest.get(k)) for k in ("protocol", "rig", "seed", "status")},
            },
            {
                "Namespace": "tjump/temperature_K",
                **{str(r["frame"]): str(r["temperature_K"]) for r in rows},
            },
            {"Namespace": "tjump/kind", **{str(r["frame"]): r["kind"] for r in rows}},
            {
                "Namespace": "tjump/interrupted",
                **{str(r["frame"]): str(r.get("interrupted", 0)) for r in rows},
            },
        ],
    }
    tmp = path.with_name(path.name + ".part")
    tifffile.imwrite(
        tmp,
        data=run.iter_frames(pages),
        shape=(count, height, width),
        dtype=np.uint16,
        ome=True,
        metadata=metadata,
        bigtiff=count * height * width * 2 > _BIGTIFF_BYTES,
    )
    tmp.replace(path)
    return count


def _shape(chunks: list[ChunkScan], path: Path) -> tuple[int, int]:
    shapes = {c.shape for c in chunks if c.shape is not None}
    if len(shapes) != 1:
        raise InputError(f"run {path}: frame files differ in size or hold none")
    shape = shapes.pop()
    assert shape is not None
    return shape


def _positive(manifest: dict[str, Any], name: str, path: Path) -> float:
    """A manifest number the export needs: finite and above 0, or one clear message."""
    value = manifest.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"run {path}: manifest.json {name} is {value!r}, not a number")
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"run {path}: manifest.json {name} is {value}, not above 0")
    return float(value)
