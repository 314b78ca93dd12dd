"""Zarr v3 shards of a (t, y, x) uint16 image, written and read without a Zarr library.

One shard holds one block of `T` frames of the whole image, cut into chunks of (T, th, tw)
pixels; each chunk is stored little-endian and compressed with blosc, the chunks one after
another, then the shard index (an (offset, length) uint64 pair per chunk, C order) and its
CRC-32C: the `sharding_indexed` codec of the Zarr v3 specification with the index at the
end, so zarr-python, TensorStore and napari read these files as they read their own.
A chunk is stored time-last (`ShardGeometry.time_last`: Zarr's `transpose` codec with
order [1, 2, 0] before the bytes), each pixel's frames one after another, so a reader takes
a pixel's trace as one row of the decompressed chunk; chunks stored (t, y, x), as earlier
exports wrote them, are read too.

Writing a shard compresses its chunks on a thread pool (blosc works without Python's lock),
a row of chunks a task, and writes each row while later rows compress. Reading asks for
pixels: the chunks holding them that lie one after another in the file are fetched in one
read, the disk is given every read of the shard at once, and each chunk is decompressed on
the pool and its asked pixels copied out of it while it is in the CPU's cache.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
from numcodecs import Blosc
from numcodecs.blosc import decompress
from numpy.typing import NDArray

from tjump.errors import InputError

SHUFFLES = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
EMPTY = 2**64 - 1  # the index's mark for a chunk that is not stored
MERGE_GAP = 16384  # read through gaps this small rather than issue another read
MAX_READ = 4 * 2**20  # longer runs of chunks are split so that the pool shares them out
TRANSPOSE_FRAMES = 64
TASKS_PER_READ = 4  # tasks a read of a shard is split into, whatever the pool's size
TIME_LAST = [1, 2, 0]  # the transpose codec's order for a (t, y, x) chunk stored time-last
PAGE = 4096  # O_DIRECT writes: whole pages, from page-aligned memory
STAGE = 8 * 2**20  # written in pieces of this size


@dataclass(frozen=True)
class ShardGeometry:
    """How one shard is cut: `frames` x `height` x `width` pixels in chunks of
    `frames` x `tile_h` x `tile_w` (the shard's edge chunks run past the image, padded)."""

    frames: int
    height: int
    width: int
    tile_h: int
    tile_w: int
    time_last: bool = True  # each chunk stored (th, tw, frames): a pixel's frames in a row

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
    pixels = block.reshape(g.frames, g.rows, g.tile_h, g.cols, g.tile_w)

    def encode_time_last(row: int) -> list[bytes]:
        # one row of chunks (th, tw, t), each pixel's frames in a row; transposed in runs
        # of 64 frames, which stay in the CPU's cache
        strip = np.empty((g.cols, g.tile_h, g.tile_w, g.frames), dtype="<u2")
        for t in range(0, g.frames, TRANSPOSE_FRAMES):
            part = pixels[t : t + TRANSPOSE_FRAMES, row]
            strip[..., t : t + TRANSPOSE_FRAMES] = part.transpose(2, 1, 3, 0)
        return [codec.encode(chunk) for chunk in strip]

    def encode(row: int) -> list[bytes]:
        # one row of chunks, each made contiguous (t, th, tw), then compressed
        strip: NDArray[Any] = np.empty((g.cols, g.frames, g.tile_h, wide.shape[-1]), wide_type)
        for t in range(0, g.frames, TRANSPOSE_FRAMES):
            part = wide[t : t + TRANSPOSE_FRAMES, row]
            strip[:, t : t + TRANSPOSE_FRAMES] = part.transpose(2, 0, 1, 3)
        return [codec.encode(chunk) for chunk in strip.view("<u2")]

    path.parent.mkdir(parents=True, exist_ok=True)
    sizes: list[int] = []
    with _DirectFile(path) as f:
        rows = pool.map(encode_time_last if g.time_last else encode, range(g.rows))
        for row in rows:  # each row written while later ones encode
            for part in row:
                f.write(part)
                sizes.append(len(part))
        lengths = np.array(sizes, dtype=np.uint64)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.uint64)
        index = np.stack([offsets, lengths], axis=1).astype("<u8").tobytes()
        f.write(index + google_crc32c.value(index).to_bytes(4, "little"))
    return int(lengths.sum()) + len(index) + 4


class _DirectFile:
    """A new file written in aligned pieces of STAGE bytes with O_DIRECT, past the page
    cache: copying an export's gigabytes into the cache costs as much processor time as
    compressing them (1-2 s a GB on the development machine), and nothing reads them back
    soon. The last partial piece goes through the cache; so does everything where the file
    system refuses O_DIRECT."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.direct = _set_direct(self.fd, True)
        spare = np.empty(STAGE + PAGE, dtype=np.uint8)
        skip = -spare.ctypes.data % PAGE  # O_DIRECT wants the memory aligned too
        self.stage = spare[skip : skip + STAGE]
        self.fill = 0

    def __enter__(self) -> _DirectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                whole = self.fill // PAGE * PAGE
                self._write(self.stage[:whole])
                if self.direct:
                    _set_direct(self.fd, False)
                    self.direct = False
                self._write(self.stage[whole : self.fill])
        finally:
            os.close(self.fd)

    def write(self, data: bytes) -> None:
        view = np.frombuffer(data, dtype=np.uint8)
        while len(view):
            n = min(len(view), STAGE - self.fill)
            self.stage[self.fill : self.fill + n] = view[:n]
            self.fill += n
            view = view[n:]
            if self.fill == STAGE:
                self._write(self.stage)
                self.fill = 0

    def _write(self, data: NDArray[np.uint8]) -> None:
        done = 0
        while done < len(data):
            try:
                done += os.write(self.fd, data.data[done:])
            except OSError as e:
                if not (self.direct and e.errno == errno.EINVAL):
                    raise
                _set_direct(self.fd, False)  # refused after all: write through the cache
                self.direct = False


def _set_direct(fd: int, on: bool) -> bool:
    """Turn O_DIRECT on or off for `fd`; whether that worked (False where the platform or
    the file system has no O_DIRECT)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return False
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | direct if on else flags & ~direct)
    except OSError:
        return False
    return True


class ShardReader:
    """Reads chunks of one shard file by their (row, column) in the shard's chunk grid."""

    def __init__(self, path: Path, geometry: ShardGeometry) -> None:
        self.path = path
        self.geometry = geometry
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

    def read_pixels(
        self,
        rows: NDArray[np.intp],
        cols: NDArray[np.intp],
        out: NDArray[np.float32],
        pool: Executor,
    ) -> None:
        """Pixel (rows[i], cols[i]) of the shard's first `out.shape[1]` frames into `out[i]`
        (a pixel may be asked for more than once). Each chunk holding some is read (with its
        neighbours in the file) and decompressed on the pool, and its asked pixels copied out
        at once while it is in the CPU's cache; a chunk not stored reads as zeros."""
        g = self.geometry
        keys = (rows // g.tile_h) * g.cols + cols // g.tile_w
        within = (rows % g.tile_h) * g.tile_w + cols % g.tile_w
        order = np.argsort(keys, kind="stable")
        chunks, first = np.unique(keys[order], return_index=True)
        ends = np.append(first[1:], len(order))
        picks = {
            int(c): (order[a:b], within[order[a:b]])
            for c, a, b in zip(chunks, first, ends, strict=True)
        }
        frames = out.shape[1]
        for c, (at, _) in picks.items():
            if self.offsets[c] == EMPTY:
                out[at] = 0

        def take(c: int, tile: NDArray[np.uint16]) -> None:
            at, where = picks[c]
            if g.time_last:  # each pixel's frames are a row
                out[at] = tile.reshape(-1, g.frames)[where, :frames]
            else:
                out[at] = tile.reshape(g.frames, -1)[:frames].T[where]

        self._decode_each(list(picks), take, pool)

    def add_frames(self, start: int, stop: int, total: NDArray[np.float64], pool: Executor) -> None:
        """Add the sum of the shard's frames [start, stop) to `total` ((height, width)):
        every chunk is read and decompressed on the pool and adds into its own tile."""
        g = self.geometry

        def add(c: int, tile: NDArray[np.uint16]) -> None:
            y, x = (c // g.cols) * g.tile_h, (c % g.cols) * g.tile_w
            h, w = min(g.tile_h, g.height - y), min(g.tile_w, g.width - x)
            if g.time_last:
                frames = tile.reshape(g.tile_h, g.tile_w, g.frames)[:h, :w, start:stop]
                total[y : y + h, x : x + w] += frames.sum(axis=2, dtype=np.float64)
            else:
                frames = tile.reshape(g.frames, g.tile_h, g.tile_w)[start:stop, :h, :w]
                total[y : y + h, x : x + w] += frames.sum(axis=0, dtype=np.float64)

        self._decode_each(list(range(len(self.offsets))), add, pool)

    def _decode_each(
        self,
        chunks: list[int],
        use: Callable[[int, NDArray[np.uint16]], None],
        pool: Executor,
    ) -> None:
        """Read the stored ones of `chunks` (neighbours in the file in one read, the disk
        given every read at once), decompress each on the pool and hand it to
        `use(chunk, tile)`, flat in the order stored ((tile_h, tile_w, frames) time-last,
        else (frames, tile_h, tile_w)), one chunk at a time per thread."""
        g = self.geometry
        runs = self._runs([c for c in chunks if self.offsets[c] != EMPTY])
        reads = [(run, *self._span(run)) for run in runs]  # (chunks, first byte, bytes)
        for _, start, size in reads:
            os.posix_fadvise(self._fd, start, size, os.POSIX_FADV_WILLNEED)

        def fetch(share: list[tuple[list[int], int, int]]) -> None:
            tile = np.empty(g.frames * g.tile_h * g.tile_w, dtype="<u2")
            for run, start, size in share:
                data = memoryview(os.pread(self._fd, size, start))
                for c in run:
                    lo = int(self.offsets[c]) - start
                    # into the flat tile: blosc's header says how many bytes it holds
                    decompress(data[lo : lo + int(self.lengths[c])], tile)
                    use(c, tile)

        # a few large tasks, not one a read: their hand-overs cost more than the pool saved
        # (a shard's 241 reads for 100 particles took 30 ms as 241 tasks, 20 ms as 4)
        shares = [reads[i::TASKS_PER_READ] for i in range(min(TASKS_PER_READ, len(reads)))]
        for _ in pool.map(fetch, shares):
            pass

    def _span(self, run: list[int]) -> tuple[int, int]:
        """(first byte, bytes) of the file holding chunks `run`, which lie one after another."""
        start = int(self.offsets[run[0]])
        return start, int(self.offsets[run[-1]] + self.lengths[run[-1]]) - start

    def _runs(self, chunks: list[int]) -> list[list[int]]:
        """Chunks grouped into reads: by file offset, a new read where the gap is large or
        the read would pass MAX_READ."""
        ordered = sorted(chunks, key=lambda c: int(self.offsets[c]))
        runs: list[list[int]] = []
        end = first = -1
        for c in ordered:
            start = int(self.offsets[c])
            if runs and 0 <= start - end <= MERGE_GAP and start - first < MAX_READ:
                runs[-1].append(c)
            else:
                runs.append([c])
                first = start
            end = start + int(self.lengths[c])
        return runs


def sharded_geometry(metadata: dict[str, Any]) -> ShardGeometry | None:
    """The shard geometry of an array's zarr.json when it is what `write_shard` writes
    (uint16; sharding with [transpose [1, 2, 0], bytes little, blosc] inside, or without
    the transpose as earlier exports wrote, and the index at the end with [bytes little,
    crc32c]; one shard spans whole frames); else None."""
    try:
        shape = [int(n) for n in metadata["shape"]]
        grid = [int(n) for n in metadata["chunk_grid"]["configuration"]["chunk_shape"]]
        (codec,) = metadata["codecs"]
        config = codec["configuration"]
        inner, index = config["codecs"], config["index_codecs"]
        time_last = inner[0]["name"] == "transpose"
        if time_last:
            if [int(n) for n in inner[0]["configuration"]["order"]] != TIME_LAST:
                return None
            inner = inner[1:]
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
        geometry = ShardGeometry(chunk[0], shape[1], shape[2], chunk[1], chunk[2], time_last)
        if [geometry.rows * chunk[1], geometry.cols * chunk[2]] != grid[1:]:
            return None
        return geometry
    except (KeyError, TypeError, ValueError):
        return None
