"""Zarr v3 shards of a (t, y, x) uint16 image, written and read without a Zarr library.

One shard holds one block of `T` frames of the whole image, cut into chunks of (T, th, tw)
pixels; each chunk is stored little-endian and compressed with blosc, the chunks one after
another, then the shard index (an (offset, length) uint64 pair per chunk, C order) and its
CRC-32C: the `sharding_indexed` codec of the Zarr v3 specification with the index at the
end, so zarr-python, TensorStore and napari read these files as they read their own.

Writing a shard compresses its chunks on a thread pool (blosc works without Python's lock)
and writes the file in one go. Reading asks for chunks by their (row, column) in the chunk
grid: chunks that lie one after another in the file are fetched in one read, the reads run
concurrently, and each is decompressed on the pool as it arrives.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from numcodecs import Blosc
from numpy.typing import NDArray

from tjump.errors import InputError

SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
EMPTY = 2**64 - 1  # the index's mark for a chunk that is not stored
MERGE_GAP = 16384  # read through gaps this small rather than issue another read
TRANSPOSE_FRAMES = 64


@dataclass(frozen=True)
class ShardGeometry:
    """How one shard is cut: `frames` x `height` x `width` pixels in chunks of
    `frames` x `tile_h` x `tile_w` (the shard's edge chunks run past the image, padded)."""

    frames: int
    height: int
    width: int
    tile_h: int
    tile_w: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile_h)

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile_w)

    @property
    def index_bytes(self) -> int:
        return self.rows * self.cols * 16 + 4


def blosc(cname: str, clevel: int, shuffle: str) -> Blosc:
    """The blosc compressor of a layout (typesize from the data: 2 for uint16)."""
    return Blosc(cname=cname, clevel=clevel, shuffle=SHUFFLES[shuffle], blocksize=0)


def write_shard(
    path: Path,
    block: NDArray[np.uint16],
    geometry: ShardGeometry,
    codec: Blosc,
    pool: Executor,
) -> int:
    """Write frames `block` (at most `geometry.frames` of them; the rest of the shard is
    padded with 0) as one shard file; returns its size in bytes."""
    g = geometry
    full = (g.frames, g.rows * g.tile_h, g.cols * g.tile_w)
    if block.shape != full:  # the last block, or tiles running past the image's edge
        padded = np.zeros(full, dtype="<u2")
        padded[: len(block), : g.height, : g.width] = block
        block = padded
    # a tile's row of pixels moved as one wide number: transposing 16-byte items in runs
    # of 64 frames (which stay in the CPU's cache) is several times faster than 2-byte items
    unit = next(u for u in (16, 8, 4, 2) if (g.tile_w * 2) % u == 0)
    wide_type = {16: np.complex128, 8: np.uint64, 4: np.uint32, 2: np.uint16}[unit]
    wide: NDArray[Any] = np.ascontiguousarray(block).view(wide_type)
    wide = wide.reshape(g.frames, g.rows, g.tile_h, g.cols, g.tile_w * 2 // unit)

    def encode(row: int) -> list[bytes]:
        # one row of chunks, each made contiguous (t, th, tw), then compressed
        strip: NDArray[Any] = np.empty((g.cols, g.frames, g.tile_h, wide.shape[-1]), wide_type)
        for t in range(0, g.frames, TRANSPOSE_FRAMES):
            part = wide[t : t + TRANSPOSE_FRAMES, row]
            strip[:, t : t + TRANSPOSE_FRAMES] = part.transpose(2, 0, 1, 3)
        return [codec.encode(chunk) for chunk in strip.view("<u2")]

    parts: list[bytes] = []
    for row in pool.map(encode, range(g.rows)):
        parts.extend(row)
    lengths = np.array([len(p) for p in parts], dtype=np.uint64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.uint64)
    index = np.stack([offsets, lengths], axis=1).astype("<u8").tobytes()
    crc = google_crc32c.value(index).to_bytes(4, "little")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for p in parts:
            f.write(p)
        f.write(index)
        f.write(crc)
    return int(lengths.sum()) + len(index) + 4


class ShardReader:
    """Reads chunks of one shard file by their (row, column) in the shard's chunk grid."""

    def __init__(self, path: Path, geometry: ShardGeometry, codec: Blosc) -> None:
        self.path = path
        self.geometry = geometry
        self.codec = codec
        self._fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(self._fd).st_size
            raw = os.pread(self._fd, geometry.index_bytes, size - geometry.index_bytes)
        except OSError as e:
            os.close(self._fd)
            raise InputError(f"{path}: cannot read the shard index: {e}") from e
        index, crc = raw[:-4], raw[-4:]
        if len(raw) != geometry.index_bytes or google_crc32c.value(index) != int.from_bytes(
            crc, "little"
        ):
            os.close(self._fd)
            raise InputError(f"{path}: the shard index is damaged (checksum does not match)")
        pairs = np.frombuffer(index, dtype="<u8").reshape(-1, 2)
        self.offsets = pairs[:, 0]
        self.lengths = pairs[:, 1]

    def close(self) -> None:
        os.close(self._fd)

    def read_into(self, chunks: list[int], out: NDArray[np.uint16], pool: Executor) -> None:
        """Chunks by flat number (row * cols + column) into `out[i]` ((frames, tile_h,
        tile_w) each, C order); a chunk not stored reads as zeros."""
        place = {c: i for i, c in enumerate(chunks)}
        stored = [c for c in place if self.offsets[c] != EMPTY]
        for c in place:
            if self.offsets[c] == EMPTY:
                out[place[c]] = 0

        def fetch(run: list[int]) -> None:
            start = int(self.offsets[run[0]])
            end = int(self.offsets[run[-1]] + self.lengths[run[-1]])
            data = memoryview(os.pread(self._fd, end - start, start))
            for c in run:
                lo = int(self.offsets[c]) - start
                self.codec.decode(data[lo : lo + int(self.lengths[c])], out=out[place[c]])

        for _ in pool.map(fetch, self._runs(stored)):
            pass

    def _runs(self, chunks: list[int]) -> list[list[int]]:
        """Chunks grouped into reads: by file offset, a new read where the gap is large."""
        ordered = sorted(chunks, key=lambda c: int(self.offsets[c]))
        runs: list[list[int]] = []
        end = -1
        for c in ordered:
            start = int(self.offsets[c])
            if runs and 0 <= start - end <= MERGE_GAP:
                runs[-1].append(c)
            else:
                runs.append([c])
            end = start + int(self.lengths[c])
        return runs


def sharded_geometry(metadata: dict[str, Any]) -> tuple[ShardGeometry, Blosc] | None:
    """The shard geometry and blosc codec of an array's zarr.json when it is what
    `write_shard` writes (uint16; sharding with [bytes little, blosc] inside and the index at
    the end with [bytes little, crc32c]; one shard spans whole frames); else None."""
    try:
        shape = [int(n) for n in metadata["shape"]]
        grid = [int(n) for n in metadata["chunk_grid"]["configuration"]["chunk_shape"]]
        (codec,) = metadata["codecs"]
        config = codec["configuration"]
        inner, index = config["codecs"], config["index_codecs"]
        names = [c["name"] for c in inner], [c["name"] for c in index]
        endians = [c.get("configuration", {}).get("endian", "little") for c in (inner[0], index[0])]
        chunk = [int(n) for n in config["chunk_shape"]]
        fits = (
            metadata["data_type"] == "uint16"
            and codec["name"] == "sharding_indexed"
            and config.get("index_location", "end") == "end"
            and names == (["bytes", "blosc"], ["bytes", "crc32c"])
            and endians == ["little", "little"]
            and len(shape) == 3
            and grid[0] == chunk[0]
        )
        if not fits:
            return None
        geometry = ShardGeometry(chunk[0], shape[1], shape[2], chunk[1], chunk[2])
        if [geometry.rows * chunk[1], geometry.cols * chunk[2]] != grid[1:]:
            return None
        b = inner[1]["configuration"]
        return geometry, blosc(b["cname"], int(b["clevel"]), b["shuffle"])
    except (KeyError, TypeError, ValueError):
        return None
