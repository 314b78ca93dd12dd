"""Export a run to OME-Zarr v0.5 (Zarr v3), laid out for reading particles.

The image is one (t, y, x) uint16 array `0`, cut into small tiles that are long in time
(`ZarrLayout`: 1024 frames x 8 x 8 px), so a particle's trace is a few tiles per block of
frames instead of every whole frame. The tiles are compressed (blosc lz4 with byte shuffle)
and packed into one shard per block of frames (one file on disk, with an index, so a reader
fetches only the tiles it needs). The per-frame table of the run (time, setpoint, kind,
step, cycle, and any other column of `frames.csv`, such as a film temperature) is a group
`frames` of 1-D arrays beside the image; the run's manifest is in the root's attributes
under `tjump`.

zarr-python writes the metadata and the table; the shards are written by
`tjump.storage.shards` (the Zarr v3 sharding codec, which every Zarr reader reads). The
export streams: a thread reads the next block of frames from the TIFFs while a pool
compresses and writes the current one, whatever the run's length; it is written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts
import zarr
from numpy.typing import NDArray
from zarr.codecs import BloscCname, BloscCodec, BloscShuffle, TransposeCodec

from tjump.errors import InputError
from tjump.storage.layout import FRAMES_CSV
from tjump.storage.reader import RunDirectory
from tjump.storage.scan import Page
from tjump.storage.shards import TIME_LAST, ShardGeometry, blosc, write_shard
from tjump.storage.table import read_columns

IMAGE = "0"
FRAMES_GROUP = "frames"
TABLE_CHUNK = 65536


@dataclass(frozen=True)
class ZarrLayout:
    """Chunking and compression of the image (scripts/bench_zarr.py measures the choices)."""

    time_chunk: int = 1024  # frames per tile and per shard
    tile: int = 8  # tile side in pixels
    cname: str = "lz4"  # zstd 1: 1.6x smaller, but 3x slower to decompress, 2.5x to compress
    clevel: int = 5
    shuffle: str = "shuffle"  # blosc's byte shuffle; "bitshuffle" or "noshuffle"
    time_last: bool = True  # each tile stored pixel by pixel, a pixel's frames in a row


def export_ome_zarr(
    run: RunDirectory,
    path: Path,
    layout: ZarrLayout | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write `run` to an OME-Zarr store at `path`; returns the number of frames.

    `progress(done, total)` is called after each block of frames. Refuses to overwrite an
    existing path; a failed export removes its partial store."""
    layout = layout or ZarrLayout()
    if path.exists():
        raise InputError(f"{path} already exists; choose another output or remove it first")
    manifest = run.manifest()
    columns = _rows_with_pages(_read_columns(run.path / FRAMES_CSV))
    pages = run.pages()
    count = len(pages)
    rows = len(next(iter(columns.values()), []))
    if count == 0:
        raise InputError(f"run {run.path} has no frames to export")
    if "frame" in columns and columns["frame"] != [str(p.frame) for p in pages]:
        raise InputError(
            f"run {run.path}: the frames on disk are not those of the rows in {FRAMES_CSV}; "
            f"run `tjump verify --repair {run.path}` first"
        )
    if count != rows:
        raise InputError(
            f"run {run.path} has {count} frames on disk but {rows} rows in {FRAMES_CSV}; "
            "resume or repair it first"
        )
    height, width = (int(n) for n in manifest["frame_shape"])
    tmp = path.with_name(path.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        time_s = np.asarray(columns["time_s"], dtype=np.float64)
        root.attrs.update(_attributes(run, manifest, time_s, layout))
        _create_image(root, (count, height, width), layout)
        _write_image(run, pages, tmp / IMAGE, (height, width), layout, progress)
        _write_table(root, columns)
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def open_image(path: Path, write: bool = False) -> Any:
    """The image array of a store (its `0`) as a TensorStore, for reading or writing."""
    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    return ts.open(spec, open=True, read=True, write=write).result()


def _create_image(root: zarr.Group, shape: tuple[int, int, int], layout: ZarrLayout) -> None:
    _, height, width = shape
    tile = layout.tile
    shard = (
        layout.time_chunk,
        math.ceil(height / tile) * tile,
        math.ceil(width / tile) * tile,
    )
    root.create_array(
        IMAGE,
        shape=shape,
        dtype="uint16",
        chunks=(layout.time_chunk, tile, tile),
        shards=shard,
        filters=[TransposeCodec(order=TIME_LAST)] if layout.time_last else None,
        compressors=BloscCodec(
            cname=BloscCname(layout.cname),
            clevel=layout.clevel,
            shuffle=BloscShuffle(layout.shuffle),
        ),
        fill_value=0,
        dimension_names=["t", "y", "x"],
    )


def _attributes(
    run: RunDirectory, manifest: dict[str, Any], time_s: NDArray[np.float64], layout: ZarrLayout
) -> dict[str, Any]:
    period = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 1.0
    pixel = float(manifest.get("pixel_size_um") or 1.0)
    unit = "micrometer" if manifest.get("pixel_size_um") else None
    space = [{"name": a, "type": "space", **({"unit": unit} if unit else {})} for a in "yx"]
    return {
        "ome": {
            "version": "0.5",
            "multiscales": [
                {
                    "name": run.path.name,
                    "axes": [{"name": "t", "type": "time", "unit": "second"}, *space],
                    "datasets": [
                        {
                            "path": IMAGE,
                            "coordinateTransformations": [
                                {"type": "scale", "scale": [period, pixel, pixel]}
                            ],
                        }
                    ],
                }
            ],
        },
        "tjump": {
            "source": run.path.name,
            "frames_table": FRAMES_GROUP,
            "layout": {
                "time_chunk": layout.time_chunk,
                "tile": layout.tile,
                "compressor": f"blosc {layout.cname} level {layout.clevel} {layout.shuffle}",
                "time_last": layout.time_last,
            },
            "manifest": manifest,
        },
    }


def _write_image(
    run: RunDirectory,
    pages: list[Page],
    folder: Path,
    shape: tuple[int, int],
    layout: ZarrLayout,
    progress: Callable[[int, int], None] | None,
) -> None:
    """The image's shards, one per block of frames: a reader thread fills one block's
    buffer from the TIFFs while the pool compresses and writes the previous block."""
    frames = layout.time_chunk
    geometry = ShardGeometry(frames, *shape, layout.tile, layout.tile, layout.time_last)
    codec = blosc(layout.cname, layout.clevel, layout.shuffle)
    buffers = [np.empty((frames, *shape), dtype=np.uint16) for _ in range(2)]
    starts = list(range(0, len(pages), frames))

    def fill(k: int) -> NDArray[np.uint16]:
        block = pages[starts[k] : starts[k] + frames]
        out = buffers[k % 2]
        run.read_into(block, out)
        return out[: len(block)]

    workers = max(os.cpu_count() or 1, 2)
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(workers) as pool:
        pending = reader.submit(fill, 0)
        for k, start in enumerate(starts):
            block = pending.result()
            if k + 1 < len(starts):
                pending = reader.submit(fill, k + 1)
            write_shard(folder / "c" / str(k) / "0" / "0", block, geometry, codec, pool)
            if progress is not None:
                progress(start + len(block), len(pages))


def _rows_with_pages(columns: dict[str, list[str]]) -> dict[str, list[str]]:
    """The table less the rows a repair marked `missing` (their pages were lost)."""
    missing = columns.get("missing")
    if missing is None or "1" not in missing:
        return columns
    keep = [i for i, m in enumerate(missing) if m != "1"]
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def _read_columns(table: Path) -> dict[str, list[str]]:
    columns = read_columns(table)
    if "time_s" not in columns:
        raise InputError(f"{table} has no 'time_s' column")
    return columns


def _write_table(root: zarr.Group, columns: dict[str, list[str]]) -> None:
    """Each column as a 1-D array: integers as int64, numbers as float64, text as codes
    into the array's `categories` attribute."""
    group = root.create_group(FRAMES_GROUP, attributes={"columns": list(columns)})
    for name, values in columns.items():
        data, attrs = _column(values)
        array = group.create_array(
            name,
            shape=data.shape,
            dtype=data.dtype,
            chunks=(min(TABLE_CHUNK, max(len(data), 1)),),
            attributes=attrs,
            dimension_names=["t"],
        )
        array[:] = data


def _column(values: list[str]) -> tuple[NDArray[Any], dict[str, Any]]:
    try:
        return np.array([int(v) for v in values], dtype=np.int64), {}
    except ValueError:
        pass
    try:
        return np.array([float(v) if v else math.nan for v in values], dtype=np.float64), {}
    except ValueError:
        pass
    categories = sorted(set(values))
    index = {c: i for i, c in enumerate(categories)}
    return np.array([index[v] for v in values], dtype=np.int16), {"categories": categories}
