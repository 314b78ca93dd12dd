"""Export a run to OME-TIFF: one standard file with the physical pixel size, each frame's
time and exposure, and the heater's temperatures, for napari, Fiji and ome-types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray

from tjump.errors import InputError
from tjump.storage.reader import RunDirectory

_BIGTIFF_BYTES = 2**31


def export_ome_tiff(run: RunDirectory, path: Path) -> int:
    """Write `run`'s frames and metadata to `path`; returns the number of frames.

    Written to a temporary name and renamed at the end, so a failed export never leaves
    a half-written file that looks complete."""
    manifest = run.manifest()
    rows = run.frames_table()
    count = run.frame_count()
    if count == 0:
        raise InputError(f"run {run.path} has no frames to export")
    if count != len(rows):
        raise InputError(
            f"run {run.path} has {count} frames on disk but {len(rows)} rows in frames.csv; "
            "resume or repair it first"
        )
    height, width = manifest["frame_shape"]
    pixel = float(manifest["pixel_size_um"])
    times = [float(r["time_s"]) for r in rows]
    metadata = {
        "axes": "TYX",
        "Name": f"{manifest['protocol']} on {manifest['rig']}",
        "Description": f"tjump run {run.path.name}, status {manifest['status']}",
        "PhysicalSizeX": pixel,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": pixel,
        "PhysicalSizeYUnit": "µm",
        "TimeIncrement": 1.0 / float(manifest["frame_rate_hz"]),
        "TimeIncrementUnit": "s",
        "Plane": {
            "DeltaT": times,
            "DeltaTUnit": ["s"] * count,
            "ExposureTime": [float(manifest["exposure_ms"])] * count,
            "ExposureTimeUnit": ["ms"] * count,
        },
        "MapAnnotation": [
            {
                "Namespace": "tjump/run",
                **{k: str(manifest[k]) for k in ("protocol", "rig", "seed", "status")},
            },
            {
                "Namespace": "tjump/temperature_K",
                **{r["frame"]: r["temperature_K"] for r in rows},
            },
            {"Namespace": "tjump/kind", **{r["frame"]: r["kind"] for r in rows}},
        ],
    }
    tmp = path.with_name(path.name + ".part")
    tifffile.imwrite(
        tmp,
        data=_frames(run),
        shape=(count, height, width),
        dtype=np.uint16,
        ome=True,
        metadata=metadata,
        bigtiff=count * height * width * 2 > _BIGTIFF_BYTES,
    )
    tmp.replace(path)
    return count


def _frames(run: RunDirectory) -> Iterator[NDArray[np.uint16]]:
    yield from run.iter_frames()
