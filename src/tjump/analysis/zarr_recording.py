"""Opening a tjump OME-Zarr export (`tjump export RUN --ome-zarr`) for analysis.

The image is read tile by tile: for each block of frames (one shard, `time_chunk` frames)
the analysis asks for the pixels around its particles, and only the tiles holding those
pixels are read and decompressed, concurrently, the next block's read ahead. The export's
own shards are read directly (`ShardBlock`, `tjump.storage.shards`); a store laid out by
another tool through TensorStore (`TileBlock`). Whole frames are read only for the mean
images (detection, the report's picture). The per-frame table comes from the store's
`frames` group, the run's manifest from the root's `tjump` attributes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray

from tjump.analysis.recording import FloatArray, Recording
from tjump.errors import InputError
from tjump.storage.layout import ZARR_JSON
from tjump.storage.shards import ShardGeometry, ShardReader, sharded_geometry
from tjump.storage.zarr_export import FRAMES_GROUP, IMAGE, open_image


def is_ome_zarr(path: Path) -> bool:
    """A folder with a Zarr v3 group at its root."""
    return path.is_dir() and (path / ZARR_JSON).is_file()


class TileBlock:
    """Frames [start, stop) of the image, read lazily: `block[:, rows, cols]` reads only the
    tiles holding those pixels and returns (frames, pixels); `block[a:b]` reads whole
    frames."""

    def __init__(self, image: Any, start: int, stop: int, tile: tuple[int, int]) -> None:
        self.image = image
        self.start = start
        self.stop = stop
        self.tile = tile
        self.shape = (stop - start, *(int(n) for n in image.domain.shape[1:]))

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: Any) -> NDArray[Any]:
        if isinstance(key, slice):
            lo, hi, step = key.indices(len(self))
            data = self.image[self.start + lo : self.start + hi : step].read().result()
            return np.asarray(data)
        if (
            isinstance(key, tuple)
            and len(key) == 3
            and key[0] == slice(None)
            and not isinstance(key[1], slice)
        ):
            return self._pixels(np.asarray(key[1]), np.asarray(key[2]))
        raise TypeError(f"unsupported selection of a tile block: {key!r}")

    def _pixels(self, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.uint16]:
        th, tw = self.tile
        height, width = self.shape[1:]
        across = math.ceil(width / tw)
        keys = (rows // th) * across + cols // tw
        flat_rows, flat_cols = rows.ravel(), cols.ravel()
        needed, where = np.unique(keys.ravel(), return_inverse=True)
        reads = []
        for k in needed:
            y0, x0 = int(k // across) * th, int(k % across) * tw
            region = self.image[
                self.start : self.stop, y0 : min(y0 + th, height), x0 : min(x0 + tw, width)
            ]
            reads.append(region.read())
        # each tile's pixels straight into the output: no stack of whole tiles in memory
        order = np.argsort(where, kind="stable")
        bounds = np.searchsorted(where[order], np.arange(len(needed) + 1))
        out = np.empty((len(self), flat_rows.size), dtype=np.uint16)
        for i, future in enumerate(reads):
            data = future.result()
            pick = order[bounds[i] : bounds[i + 1]]
            out[:, pick] = data[:, flat_rows[pick] % th, flat_cols[pick] % tw]
        return out.reshape(len(self), *rows.shape)


class ShardBlock(TileBlock):
    """A block that is one shard written by `tjump export`: `block[:, rows, cols]` reads
    the shard's index, then the chunks holding those pixels (neighbours in one read, the
    reads concurrent), each decompressed and its pixels copied out on the pool. The same
    pixels of the next shard are then read ahead while the caller computes (`ahead`,
    shared by the blocks of one pass), as the next block almost always needs them."""

    def __init__(
        self,
        image: Any,
        start: int,
        stop: int,
        shard: Path,
        geometry: ShardGeometry,
        following: Path | None = None,
        ahead: dict[tuple[Path, bytes], Future[NDArray[np.float32]]] | None = None,
    ) -> None:
        super().__init__(image, start, stop, (geometry.tile_h, geometry.tile_w))
        self.shard = shard
        self.geometry = geometry
        self.following = following
        self.ahead = {} if ahead is None else ahead

    def _pixels(self, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.uint16]:
        picked = self.by_pixel(rows, cols).astype(np.uint16)  # float32 holds uint16 exactly
        return np.ascontiguousarray(np.moveaxis(picked, -1, 0))

    def by_pixel(self, rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.float32]:
        """Pixels (rows[i], cols[i]) of every frame as float32 (*rows.shape, frames): each
        pixel's frames in a row, as the weighted sums of the traces want them."""
        flat_rows, flat_cols = rows.ravel(), cols.ravel()
        tag = flat_rows.tobytes() + flat_cols.tobytes()
        early = self.ahead.pop((self.shard, tag), None)
        self.ahead.clear()  # read ahead for other pixels: not needed
        if early is not None:  # read for this block's predecessor's length: as long or longer
            picked = early.result()[:, : len(self)]
        else:
            picked = _read_pixels(self.shard, self.geometry, flat_rows, flat_cols, len(self))
        if self.following is not None:  # after this block's own read, which comes first
            self.ahead[(self.following, tag)] = _ahead().submit(
                _read_pixels, self.following, self.geometry, flat_rows, flat_cols, len(self)
            )
        return picked.reshape(*rows.shape, len(self))


def _read_pixels(
    shard: Path,
    geometry: ShardGeometry,
    rows: NDArray[np.intp],
    cols: NDArray[np.intp],
    frames: int,
) -> NDArray[np.float32]:
    """Pixels (rows[i], cols[i]) of the first `frames` frames of one shard, (pixels, frames)."""
    out = np.empty((len(rows), frames), dtype=np.float32)
    reader = ShardReader(shard, geometry)
    try:
        reader.read_pixels(rows, cols, out, _pool())
    finally:
        reader.close()
    return out


@cache
def _pool() -> ThreadPoolExecutor:
    """Threads for decompressing chunks and copying out their pixels (blosc and NumPy's
    copies run outside the GIL), one a core: the disk gets every read of a shard at once
    beforehand (`ShardReader.read_pixels`), so more threads would only contend."""
    return ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="tjump-shards")


@cache
def _ahead() -> ThreadPoolExecutor:
    """One thread reading the next shard ahead (it waits on `_pool`, so it is not in it)."""
    return ThreadPoolExecutor(1, thread_name_prefix="tjump-ahead")


@dataclass
class ZarrRecording(Recording):
    """A recording whose frames are an OME-Zarr image, read by tiles."""

    image: Any = None
    time_chunk: int = 512
    tile: tuple[int, int] = (16, 16)
    sharded: ShardGeometry | None = None  # the layout `tjump export` writes: read by ShardReader

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.image.domain.shape[1]), int(self.image.domain.shape[2])

    def blocks(self, max_frames: int = 1000) -> Iterator[tuple[int, Any]]:
        """(first frame, TileBlock) for each block of `time_chunk` frames (one shard);
        `max_frames` is ignored: blocks follow the store's chunks."""
        ahead: dict[tuple[Path, bytes], Future[NDArray[np.float32]]] = {}
        starts = range(0, self.frames, self.time_chunk)
        shards = [self._shard(k) for k in range(len(starts))]
        for k, start in enumerate(starts):
            stop = min(start + self.time_chunk, self.frames)
            if self.sharded is None:
                yield start, TileBlock(self.image, start, stop, self.tile)
                continue
            following = shards[k + 1] if k + 1 < len(shards) else None
            block = ShardBlock(self.image, start, stop, shards[k], self.sharded, following, ahead)
            yield start, block

    def _shard(self, k: int) -> Path:
        """The file of the `k`-th shard (frames from k * time_chunk)."""
        return self.source / IMAGE / "c" / str(k) / "0" / "0"

    def mean_image(self, first: int, count: int) -> FloatArray:
        """Mean of frames [first, first + count): from the export's own shards, each shard's
        chunks decompressed on the pool; else read through TensorStore, a chunk of frames
        at a time."""
        total = np.zeros(self.shape)
        stop = min(first + count, self.frames)
        if self.sharded is not None:
            size = self.sharded.frames
            for k in range(first // size, -(-stop // size)):
                reader = ShardReader(self._shard(k), self.sharded)
                try:
                    lo, hi = max(first - k * size, 0), min(stop - k * size, size)
                    reader.add_frames(lo, hi, total, _pool())
                finally:
                    reader.close()
            return total / max(stop - first, 1)
        for lo in range(first, stop, 64):
            data = np.asarray(self.image[lo : min(lo + 64, stop)].read().result())
            total += data.sum(axis=0, dtype=np.float64)
        return total / max(stop - first, 1)


def open_zarr_recording(path: Path) -> ZarrRecording:
    """Open a tjump OME-Zarr export; one InputError naming what is missing or wrong."""
    try:
        root = zarr.open_group(path, mode="r")
        attrs: dict[str, Any] = dict(root.attrs)
    except Exception as e:
        raise InputError(f"{path} is not a readable Zarr store: {e}") from e
    if "ome" not in attrs or IMAGE not in root:
        raise InputError(f"{path} is not an OME-Zarr image (no 'ome' metadata or array '0')")
    if FRAMES_GROUP not in root:
        raise InputError(
            f"{path} has no '{FRAMES_GROUP}' table (time_s, temperature_K per frame); "
            "export it with tjump export --ome-zarr"
        )
    table = root[FRAMES_GROUP]
    if not isinstance(table, zarr.Group):
        raise InputError(f"{path}/{FRAMES_GROUP} is not a group")
    if "time_s" not in table or "temperature_K" not in table:
        raise InputError(f"{path}/{FRAMES_GROUP} needs arrays time_s and temperature_K")
    image = open_image(path / IMAGE)
    if image.rank != 3 or image.dtype.numpy_dtype != np.uint16:
        raise InputError(f"{path}/{IMAGE} must be (t, y, x) uint16 frames")
    time_s = _values(table, "time_s").astype(np.float64)
    temperature = _values(table, "temperature_K").astype(np.float64)
    frames = int(image.domain.shape[0])
    if len(time_s) != frames or len(temperature) != frames:
        raise InputError(f"{path}: the image has {frames} frames but the table {len(time_s)} rows")
    steps = np.diff(time_s)
    if frames < 2 or np.any(steps <= 0):
        raise InputError(f"{path}: needs two or more frames with increasing time_s")
    period = float(np.median(steps))
    manifest = _manifest(attrs)
    exposure_ms = manifest.get("exposure_ms")
    exposure = float(exposure_ms) / 1e3 if exposure_ms else period
    chunk = image.chunk_layout.read_chunk.shape
    return ZarrRecording(
        path,
        [],
        time_s,
        temperature,
        _categories(table, "kind"),
        _values(table, "cycle").astype(np.int64) if "cycle" in table else None,
        period,
        exposure_s=min(exposure, period),
        pixel_size_um=manifest.get("pixel_size_um"),
        extra={"manifest": manifest},
        film_temperature_K=_optional(table, "film_temperature_K"),
        image=image,
        time_chunk=int(chunk[0]),
        tile=(int(chunk[1]), int(chunk[2])),
        sharded=_sharded(path),
    )


def _sharded(path: Path) -> ShardGeometry | None:
    """The image's shard layout when it is the one `tjump export` writes."""
    try:
        metadata = json.loads((path / IMAGE / ZARR_JSON).read_text())
    except (OSError, ValueError):
        return None
    return sharded_geometry(metadata) if isinstance(metadata, dict) else None


def _manifest(attrs: dict[str, Any]) -> dict[str, Any]:
    section = attrs.get("tjump")
    manifest = section.get("manifest") if isinstance(section, dict) else None
    return manifest if isinstance(manifest, dict) else {}


def _values(table: zarr.Group, name: str) -> NDArray[Any]:
    array = table[name]
    if not isinstance(array, zarr.Array):
        raise InputError(f"{table.store_path}/{name} is not an array")
    return np.asarray(array[...])


def _optional(table: zarr.Group, name: str) -> FloatArray | None:
    """A numeric column that may be absent or empty (NaN) throughout: None then."""
    if name not in table:
        return None
    values = _values(table, name).astype(np.float64)
    return values if np.isfinite(values).any() else None


def _categories(table: zarr.Group, name: str) -> list[str] | None:
    if name not in table:
        return None
    codes = _values(table, name)
    categories = table[name].attrs.get("categories")
    if not isinstance(categories, list):
        return [str(v) for v in codes]
    return [str(categories[int(c)]) for c in codes]
